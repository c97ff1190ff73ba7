import type { V2Segment } from '../message/v2-message.js';
import { codeableConceptOf, dateTimeOf, type Identifier } from './datatypes.js';
import { locationChain, type LocationLevel } from './encounter.js';
import { orderIdentifiers } from './orders.js';

/**
 * The filler order number (ORC-3) CDC's immunization guide (release 1.5) has every sender give
 * a dose that was not given (a refusal, a contraindication): it names no dose.
 */
const NOT_GIVEN = '9999';

const fillerOf = (identifier: Identifier): boolean =>
  identifier.type?.coding.some((coding) => coding.code === 'FILL') ?? false;

/**
 * A dose's own identifiers: the order numbers of its ORC (ORC-2, ORC-3), but for a filler
 * number of 9999, which every refusal of every patient carries. Kept as the dose's identity
 * until 2026-12-07, one patient's refusal was written over the next one's.
 */
export function doseIdentifiers(orc: V2Segment | undefined, senderSystem?: string): Identifier[] {
  return orderIdentifiers(orc, senderSystem).filter(
    (identifier) => !(fillerOf(identifier) && identifier.value === NOT_GIVEN),
  );
}

/**
 * The identifier a dose is known by: the filler order number (ORC-3), which CDC's guide makes
 * the sender's unique id of the dose, else the placer's (ORC-2), whose one order may have
 * several doses.
 */
export function fillerFirst(identifiers: Identifier[]): Identifier | undefined {
  return identifiers.find(fillerOf) ?? identifiers[0];
}

/** LOINC codes of the OBX that CDC's guide has follow a dose's RXA, about that dose. */
const VFC_ELIGIBILITY = '64994-7';
const FUNDING_SOURCE = '30963-3';
const VIS_DOCUMENT = '69764-9';
const VIS_VACCINE = '30956-7';
const VIS_PUBLISHED = '29768-9';
const VIS_PRESENTED = '29769-7';

const ON_THE_DOSE: ReadonlySet<string> = new Set([
  VFC_ELIGIBILITY,
  FUNDING_SOURCE,
  VIS_DOCUMENT,
  VIS_VACCINE,
  VIS_PUBLISHED,
  VIS_PRESENTED,
]);

/**
 * Whether an OBX of a dose says what the Immunization itself keeps (see doseObservations);
 * the others (a reaction, a contraindication, evidence of immunity) are Observations of it.
 */
export function onTheDose(obx: V2Segment): boolean {
  return ON_THE_DOSE.has(obx.value(3) ?? '');
}

const CODED = new Set(['CE', 'CWE', 'CNE']);
const DATED = new Set(['DT', 'TS', 'DTM']);

/** Results withdrawn or deleted (OBX-11 W, D, X) say nothing of the dose. */
const VOID = new Set(['W', 'D', 'X']);

/**
 * The OBX after a dose's RXA (and RXR), CDC's way (release 1.5, section 6.3) of sending what
 * R4 keeps on the Immunization itself: the dose's VFC eligibility (64994-7) as its program
 * eligibility, its funding source (30963-3), and the vaccine information statements (VIS) the
 * patient was given, one per OBX-4 group: the statement's GS1 barcode (69764-9), else the
 * vaccine it is about (30956-7), with when it was published (29768-9) and presented (29769-7).
 * An OBX whose value is not of the type its code says (a date sent as a code) is left out, as
 * is a statement that names no document (R4's imm-1). Until 2026-12-07 all of them were dropped.
 */
export function doseObservations(observations: readonly V2Segment[]): Record<string, unknown> {
  const programEligibility: Record<string, unknown>[] = [];
  let fundingSource: Record<string, unknown> | undefined;
  const statements = new Map<string, Record<string, string>>();
  for (const obx of observations) {
    if (VOID.has(obx.value(11)?.toUpperCase() ?? '')) continue;
    const type = obx.value(2)?.toUpperCase() ?? '';
    const value = obx.repetitions(5)[0];
    const statement = () => {
      const group = obx.value(4) ?? '';
      const found = statements.get(group) ?? {};
      statements.set(group, found);
      return found;
    };
    const code = obx.value(3);
    if (CODED.has(type)) {
      const concept = codeableConceptOf(value);
      if (!concept) continue;
      if (code === VFC_ELIGIBILITY) programEligibility.push(concept);
      else if (code === FUNDING_SOURCE) fundingSource ??= concept;
      else if (code === VIS_DOCUMENT || code === VIS_VACCINE) {
        // The barcode names the statement and its edition; a vaccine, the statement about it.
        const name = code === VIS_DOCUMENT ? value?.value(1) : (value?.value(2) ?? value?.value(1));
        if (name) statement().documentType = name;
      }
    } else if (DATED.has(type) && (code === VIS_PUBLISHED || code === VIS_PRESENTED)) {
      const date = dateTimeOf(obx.value(5), obx.timeZone);
      if (!date) continue;
      statement()[code === VIS_PUBLISHED ? 'publicationDate' : 'presentationDate'] = date;
    }
  }
  const education = [...statements.values()].filter((entry) => entry['documentType']);
  return {
    ...(programEligibility.length > 0 ? { programEligibility } : {}),
    ...(fundingSource ? { fundingSource } : {}),
    ...(education.length > 0 ? { education } : {}),
  };
}

/**
 * Where the dose was given, as the places it names, broadest first (see locationChain): the
 * administer-at place (RXA-27, a PL, from v2.6), else the administered-at location (RXA-11, an
 * LA2, whose first eight components are a PL's), as the IG's RXA map has them. Dropped until
 * 2026-12-07.
 */
export function administeredAt(rxa: V2Segment): LocationLevel[] {
  const place = locationChain(rxa.repetitions(27)[0]);
  return place.length > 0 ? place : locationChain(rxa.repetitions(11)[0]);
}
