import type { V2Segment } from '../message/v2-message.js';
import {
  codeableConceptOf,
  dateOf,
  dateTimeOf,
  practitionerOf,
  type Identifier,
} from './datatypes.js';
import { locationChain, type LocationLevel } from './encounter.js';
import { exactNumberOf } from './numeric.js';
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

/** Provider roles (table 0443): an Immunization performer's function. */
const PROVIDER_ROLES = 'http://terminology.hl7.org/CodeSystem/v2-0443';

/** The historical codes of CDC's NIP001 (immunization information source). */
const HISTORICAL: ReadonlySet<string> = new Set(['01', '02', '03', '04', '05', '06', '07', '08']);

/** RXA-6 of CDC's guide: the amount given is not known. */
const UNKNOWN_AMOUNT = 999;

/** CVX 998, no vaccine administered, of a dose not given. */
const CVX = 'http://hl7.org/fhir/sid/cvx';
const NO_VACCINE = '998';

/** RXA-20 completion status (table 0322) to Immunization.status. */
const IMMUNIZATION_STATUS: Record<string, string> = {
  CP: 'completed',
  PA: 'completed',
  RE: 'not-done',
  NA: 'not-done',
};

/**
 * RXA, with the RXR after it, to an Immunization (v2-to-FHIR RXA[Immunization], RXR[Immunization]);
 * undefined without a vaccine code.
 */
export function immunizationFromRxa(
  rxa: V2Segment,
  patientId: string,
  identifiers: Identifier[],
  rxr?: V2Segment,
  orc?: V2Segment,
  senderSystem?: string,
): Record<string, unknown> | undefined {
  const vaccineCode = codeableConceptOf(rxa.repetitions(5)[0]);
  const occurrence = dateTimeOf(rxa.value(3), rxa.timeZone);
  if (!vaccineCode || !occurrence) return undefined;
  // 999 is CDC's "amount unknown", however written: `999.0` was a 999 mL dose until 2026-12-07.
  const amount = exactNumberOf(rxa.value(6), 'RXA-6');
  const dose =
    amount !== undefined && amount >= 0 && amount !== UNKNOWN_AMOUNT ? amount : undefined;
  const unit = rxa.repetitions(7)[0];
  const information = rxa.value(9)?.toUpperCase();
  const lot = rxa.value(15);
  const expiration = dateOf(rxa.value(16));
  const manufacturer = manufacturerOf(rxa);
  const route = codeableConceptOf(rxr?.repetitions(1)[0]);
  const site = codeableConceptOf(rxr?.repetitions(2)[0]);
  const status = rxa.value(20)?.toUpperCase();
  const recorded = dateTimeOf(rxa.value(22), rxa.timeZone);
  // Why a dose was not given (a refusal, table NIP002), as the IG maps RXA-18.
  const refusal = codeableConceptOf(rxa.repetitions(18)[0]);
  // Who gave the dose (RXA-10) and who ordered it (ORC-12), by their function (table 0443), as
  // the IG's RXA and ORC maps have them: dropped until 2026-12-06.
  const performer = (
    [
      ['AP', 'Administering Provider', rxa.repetitions(10)[0]],
      ['OP', 'Ordering Provider', orc?.repetitions(12)[0]],
    ] as const
  ).flatMap(([code, display, xcn]) => {
    const actor = practitionerOf(xcn, senderSystem);
    return actor
      ? [
          {
            function: { coding: [{ system: PROVIDER_ROLES, code, display }] },
            actor: { type: 'Practitioner', ...actor },
          },
        ]
      : [];
  });
  // No RXA-20 is CP in CDC's guide, but a refusal's reason (RXA-18) or CVX 998 (no vaccine
  // administered) says no dose was given: until 2026-12-07 such a dose was filed as completed,
  // and counted as given.
  const notGiven =
    !!refusal ||
    (vaccineCode['coding'] as { system?: string; code?: string }[] | undefined)?.some(
      (coding) => coding.system === CVX && coding.code === NO_VACCINE,
    );
  return {
    resourceType: 'Immunization',
    ...(identifiers.length > 0 ? { identifier: identifiers } : {}),
    status: IMMUNIZATION_STATUS[status ?? ''] ?? (notGiven ? 'not-done' : 'completed'),
    // PA, partially administered: the dose given was less than the full one.
    ...(status === 'PA' ? { isSubpotent: true } : {}),
    ...(refusal ? { statusReason: refusal } : {}),
    vaccineCode,
    patient: { reference: `Patient/${patientId}` },
    occurrenceDateTime: occurrence,
    // When the sender's system recorded it (RXA-22), as the IG maps it: dropped until 2026-12-07.
    ...(recorded ? { recorded } : {}),
    // NIP001: 00 is a new record from the one who gave it; 01 to 08 are historical, of an
    // origin (another provider, a parent's recall, a school record...) kept as the IG's RXA map
    // has it. Until 2026-12-07 only 01 was, and a dose a parent recalled was of no source.
    ...(information === '00' ? { primarySource: true } : {}),
    ...(information && HISTORICAL.has(information)
      ? { primarySource: false, reportOrigin: codeableConceptOf(rxa.repetitions(9)[0]) }
      : {}),
    ...(lot ? { lotNumber: lot } : {}),
    ...(expiration?.length === 10 ? { expirationDate: expiration } : {}),
    ...(manufacturer ? { manufacturer } : {}),
    ...(performer.length > 0 ? { performer } : {}),
    ...(site ? { site } : {}),
    ...(route ? { route } : {}),
    ...(dose !== undefined
      ? {
          doseQuantity: {
            value: dose,
            ...(unit?.value(1) ? { unit: unit.value(2) ?? unit.value(1) } : {}),
            ...(unit?.value(3)?.toUpperCase() === 'UCUM'
              ? { system: 'http://unitsofmeasure.org', code: unit.value(1) }
              : {}),
          },
        }
      : {}),
  };
}

/**
 * RXA-17, the manufacturer: its name, and CDC's MVX code as the organization's identifier
 * where the sender codes it so (until 2026-12-06 the code was dropped).
 */
function manufacturerOf(rxa: V2Segment): Record<string, unknown> | undefined {
  const code = rxa.value(17, 1);
  const name = rxa.value(17, 2);
  const mvx = code && rxa.value(17, 3)?.toUpperCase() === 'MVX';
  if (!name && !code) return undefined;
  return {
    ...(mvx ? { identifier: { system: 'http://hl7.org/fhir/sid/mvx', value: code } } : {}),
    display: name ?? code,
  };
}
