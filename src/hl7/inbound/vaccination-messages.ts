import { Injectable } from '@nestjs/common';
import { CriteriaMatches } from '../../fhir/criteria-matches.service.js';
import { ResourceReferrers } from '../../fhir/resource-referrers.service.js';
import { FhirService } from '../../fhir/fhir.service.js';
import { HL7_USER } from '../hl7-user.js';
import {
  administeredAt,
  doseIdentifiers,
  doseObservations,
  fillerFirst,
  immunizationFromRxa,
  onTheDose,
} from '../mapping/immunization.js';
import { observationFromObx } from '../mapping/observation.js';
import { Hl7ProcessingError } from '../message/hl7-header.js';
import type { V2Message, V2Segment } from '../message/v2-message.js';
import type { RecordClock } from './event-order.js';
import { setsDemographics } from './message-patients.js';
import { PatientSegments } from './patient-segments.js';
import { Places } from './places.js';
import {
  ambiguous,
  byIdentifier,
  upsert,
  without,
  writeOver,
  type PatientOfMessage,
  type Touched,
} from './processing.js';
import {
  atInstant,
  codeCriteria,
  conceptCriteria,
  codeKey,
  repeatedCodes,
} from './record-criteria.js';
import { isPatientsRecord, visitOf } from './record-owners.js';

/**
 * A dose without an order number (older feeds send no ORC), known again by patient, vaccine
 * and time, as a registry has it: the same vaccine is not given twice at once.
 */
function sameDose(immunization: Record<string, unknown>, patientId: string): string | undefined {
  const vaccine = codeCriteria('patient', patientId, immunization, {
    element: 'vaccineCode',
    param: 'vaccine-code',
  });
  return vaccine && `${vaccine}&${atInstant('date', immunization['occurrenceDateTime'] as string)}`;
}

/**
 * The OBX of the dose whose RXA is at `at`, each with the NTE right after it: those after the
 * RXA, up to the next dose's ORC or RXA.
 */
function observationsOf(segments: readonly V2Segment[], at: number): [V2Segment, V2Segment[]][] {
  const next = segments.findIndex(
    (segment, i) => i > at && (segment.name === 'ORC' || segment.name === 'RXA'),
  );
  const groups: [V2Segment, V2Segment[]][] = [];
  for (const segment of segments.slice(at + 1, next < 0 ? undefined : next)) {
    if (segment.name === 'OBX') groups.push([segment, []]);
    else if (segment.name === 'NTE') groups.at(-1)?.[1].push(segment);
  }
  return groups;
}

/** A dose's patient as isPatientsRecord reads a record's: its `subject`. */
function doseOf(dose: Record<string, unknown>): Record<string, unknown> {
  return { subject: dose['patient'] };
}

/** Vaccinations (VXU^V04), for Hl7Processor, in its transaction. */
@Injectable()
export class VaccinationMessages {
  constructor(
    private readonly fhir: FhirService,
    private readonly referrers: ResourceReferrers,
    private readonly matches: CriteriaMatches,
    private readonly patientSegments: PatientSegments,
    private readonly places: Places,
  ) {}

  /**
   * VXU^V04: an Immunization per RXA, with what its OBX say of it (see doseObservations), keyed
   * by the order numbers of the ORC right before it, else by patient, vaccine and time. An RXA
   * whose action code (RXA-21) is D deletes the dose: a known one becomes entered in error, one
   * not on file leaves nothing to do. A message older than one already applied to a dose leaves
   * it as it is. The next of kin (NK1) and insurance (IN1) are filed as ADT's are.
   */
  async process(
    message: V2Message,
    { sender, patientId, touched, clock }: PatientOfMessage,
  ): Promise<Touched> {
    const encounter = await visitOf(this.fhir, this.matches, message, sender, patientId);
    // The kin and payer a registry keeps with the child's record (dropped until 2026-12-07):
    // new ones, as ADT owns those it filed (see setsDemographics).
    await this.patientSegments.kinAndCoverage(
      message,
      { sender, patientId, clock },
      touched,
      setsDemographics(message),
    );
    let orc: V2Segment | undefined;
    let doses = 0;
    const segments = message.segments();
    for (const [i, segment] of segments.entries()) {
      if (segment.name === 'ORC') orc = segment;
      if (segment.name !== 'RXA') continue;
      // The route and site of this dose: the RXR right after its RXA.
      const rxr = segments[i + 1]?.name === 'RXR' ? segments[i + 1] : undefined;
      doses += 1;
      // An ORC is its own RXA's: a dose after it without one is not the same order.
      const identifiers = doseIdentifiers(orc, sender);
      const immunization = immunizationFromRxa(segment, patientId, identifiers, rxr, orc, sender);
      orc = undefined;
      if (!immunization) {
        throw new Hl7ProcessingError(
          '101',
          'An RXA segment needs a vaccine (RXA-5) and a date (RXA-3)',
        );
      }
      const deletes = segment.value(21)?.toUpperCase() === 'D';
      // The patient's own dose of that number: until 2026-12-07 any patient's was taken, and a
      // number two patients' doses shared (a sender's reused numbers) moved the first one's
      // dose to the second, whose deletion then deleted it. The number is the filler's (ORC-3),
      // the sender's id of the dose in CDC's guide, else the placer's: the doses given on one
      // order (ORC-2) were taken for one until then, each written over the one before.
      const byNumber = byIdentifier(fillerFirst(identifiers));
      const byOrder = byNumber && `${byNumber}&patient=Patient/${patientId}`;
      const criteria = byOrder ?? sameDose(immunization, patientId);
      const lookup = criteria
        ? this.matches.uniqueMatch(HL7_USER, 'Immunization', criteria)
        : undefined;
      // Doses recorded twice before, matched by vaccine and time: a new one is added as then,
      // but which of them a deletion means cannot be told (412, AE).
      const match =
        (await (byOrder || deletes ? lookup : lookup?.catch(ambiguous))) ??
        (byNumber ? await this.numberedDose(byNumber, patientId) : undefined);
      // The patient's withdrawn dose sent again takes its number back, unless another patient's
      // live dose has it since (numberedDose refuses): two live doses would then share it.
      if (match && byNumber && !deletes && (await this.inError(match))) {
        await this.numberedDose(byNumber, patientId);
      }
      if (deletes && !match) continue;
      if (deletes) {
        // A deletion older than a message applied to the dose since leaves the dose, and what
        // is part of it: until 2026-12-07 the dose stayed, and its reaction was entered in error.
        if (await clock('Immunization', match!)) continue;
        // The dose as it was recorded, entered in error: a deletion names the dose and need not
        // repeat the rest (until 2026-12-07 its RXA was written over it, and the lot, dose and
        // route of what was given were lost from the record).
        const current = without(
          (await this.fhir.read(HL7_USER, 'Immunization', match!)).resource,
          'meta',
          'id',
        );
        const erred = { ...current, status: 'entered-in-error' };
        touched.entities.push(
          `Immunization/${await writeOver(this.fhir, 'Immunization', erred, match, clock)}`,
        );
        await this.observationsInError(match!, clock, touched);
        continue;
      }
      const place = administeredAt(segment);
      const observations = observationsOf(segments, i);
      const body = {
        ...immunization,
        ...doseObservations(observations.map(([obx]) => obx)),
        ...(place.length > 0
          ? {
              location: {
                reference: `Location/${await this.places.of(place)}`,
                display: place.at(-1)!.display,
              },
            }
          : {}),
        ...encounter,
      };
      const id = await writeOver(this.fhir, 'Immunization', body, match, clock);
      touched.entities.push(`Immunization/${id}`);
      const others = observations.filter(([obx]) => !onTheDose(obx));
      await this.observations(others, { id, patientId, sender, encounter, body, clock }, touched);
    }
    if (doses === 0) {
      throw new Hl7ProcessingError('100', 'A VXU message needs an RXA segment');
    }
    return touched;
  }

  /** Whether the dose was withdrawn (RXA-21 D, or the FHIR API). */
  private async inError(id: string): Promise<boolean> {
    const dose = (await this.fhir.read(HL7_USER, 'Immunization', id)).resource;
    return dose['status'] === 'entered-in-error';
  }

  /**
   * The dose of a number (ORC-3, else ORC-2) the patient has none of: one of a patient merged
   * into them (A40, see isPatientsRecord), theirs. Another patient's is refused (ERR 205) as
   * an order's is (see patientsNumbered): until 2026-12-07 a second dose was filed under the
   * number, and the sender's next message of it named two. Not one entered in error: the
   * wrong patient's, withdrawn, leaves the number to the right one.
   */
  private async numberedDose(byNumber: string, patientId: string): Promise<string | undefined> {
    // The number's lock, whoever's dose it is: two patients' doses sent at once under one
    // number would otherwise both be filed, each under its patient's lock.
    await this.matches.lockCriteria([{ type: 'Immunization', criteria: byNumber }]);
    let ours: string | undefined;
    for (const id of await this.matches.matchingIds(HL7_USER, 'Immunization', byNumber, 20)) {
      const dose = (await this.fhir.read(HL7_USER, 'Immunization', id)).resource;
      if (await isPatientsRecord(this.fhir, doseOf(dose), patientId)) ours ??= id;
      else if (dose['status'] !== 'entered-in-error') {
        throw new Hl7ProcessingError(
          '205',
          "ORC-3 (else ORC-2) names another patient's dose: correct the patient or the dose number",
        );
      }
    }
    return ours;
  }

  /**
   * The OBX of a dose that the Immunization does not keep (a reaction 31044-1, a
   * contraindication 30945-0, evidence of immunity 59784-9) as Observations part of it, as the
   * IG's VXU map has them: until 2026-12-07 they were dropped, and the ACK said AA. Each is
   * known again by the dose and its code (or its text, sent without one), so that a resent dose
   * does not add them again; one whose code the dose has twice is added, as a report's loose
   * results are (see looseResults).
   */
  private async observations(
    groups: [V2Segment, V2Segment[]][],
    dose: {
      id: string;
      patientId: string;
      sender: string | undefined;
      encounter: Record<string, unknown>;
      body: Record<string, unknown>;
      clock: RecordClock;
    },
    touched: Touched,
  ): Promise<void> {
    const partOf = `Immunization/${dose.id}`;
    const given = dose.body['occurrenceDateTime'] as string;
    const bodies = groups.map(([obx, notes]) => ({
      ...observationFromObx(obx, dose.patientId, given, notes, undefined, dose.sender),
      partOf: [{ reference: partOf }],
      ...dose.encounter,
    }));
    const twice = repeatedCodes(bodies);
    const scope = `subject=Patient/${dose.patientId}&part-of=${partOf}`;
    for (const body of bodies) {
      // An OBX-3 of a text alone (`^Reaction noted`) by that text, as ADT's are: until
      // 2026-12-07 it had no criteria, and each resent dose added it again.
      const criteria = twice.has(codeKey(body))
        ? undefined
        : await conceptCriteria(this.fhir, this.matches, 'Observation', scope, body);
      const id = await upsert(this.fhir, this.matches, 'Observation', body, criteria, dose.clock);
      touched.entities.push(`Observation/${id}`);
    }
  }

  /**
   * The Observations part of a deleted dose (a reaction, a contraindication), entered in error
   * with it: a reaction to a dose never given is not the patient's (until 2026-12-07 they
   * stayed final). A dose's own are a handful; a limit guards against a runaway list.
   */
  private async observationsInError(
    doseId: string,
    clock: RecordClock,
    touched: Touched,
  ): Promise<void> {
    const dose = `Immunization/${doseId}`;
    for (const { type, id } of await this.referrers.referrersOf('Immunization', doseId, 1000)) {
      if (type !== 'Observation') continue;
      const current = without((await this.fhir.read(HL7_USER, type, id)).resource, 'meta', 'id');
      const parts = (current['partOf'] as { reference?: string }[] | undefined) ?? [];
      if (!parts.some((part) => part.reference === dose)) continue;
      const erred = { ...current, status: 'entered-in-error' };
      touched.entities.push(`Observation/${await writeOver(this.fhir, type, erred, id, clock)}`);
    }
  }
}
