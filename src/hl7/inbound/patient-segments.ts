import { Injectable } from '@nestjs/common';
import { CriteriaMatches } from '../../fhir/criteria-matches.service.js';
import { FhirService } from '../../fhir/fhir.service.js';
import { HL7_USER } from '../hl7-user.js';
import {
  allergyFromAl1,
  allergyFromIam,
  conditionFromDg1,
  procedureFromPr1,
} from '../mapping/clinical.js';
import { coverageFromIn1 } from '../mapping/coverage.js';
import type { Identifier } from '../mapping/datatypes.js';
import { observationFromObx } from '../mapping/observation.js';
import { escapeSearch, identifierCriteria } from '../mapping/patient.js';
import { relatedPersonFromNk1 } from '../mapping/related-person.js';
import type { V2Message, V2Segment } from '../message/v2-message.js';
import type { RecordClock } from './event-order.js';
import {
  ambiguous,
  byIdentifier,
  keepListed,
  upsert,
  withFollowing,
  writeOver,
  type Touched,
} from './processing.js';
import {
  atInstant,
  codeCriteria,
  codeKey,
  conceptCriteria,
  conceptMatch,
  conditionCategory,
  repeated,
  startOf,
  unnumberedObservationCriteria,
} from './record-criteria.js';

/**
 * A next of kin is the same person again when their own identifiers (NK1-33) match, else when
 * the patient's kin has the same family and given names; someone named by neither is new.
 */
function kinCriteria(
  patientId: string,
  identifiers: Identifier[],
  resource: Record<string, unknown>,
): string | undefined {
  const patient = `patient=Patient/${patientId}`;
  const byIds = identifierCriteria(identifiers);
  if (byIds) return `${byIds}&${patient}`;
  const name = (resource['name'] as { family?: string; given?: string[] }[] | undefined)?.[0];
  const parts = [name?.family, ...(name?.given ?? [])].filter((part): part is string => !!part);
  if (parts.length === 0) return undefined;
  return [
    patient,
    ...parts.map((part) => `name:exact=${encodeURIComponent(escapeSearch(part))}`),
  ].join('&');
}

/** Who and what a message's segments are about: the patient and, when there is one, the visit. */
export interface SegmentContext {
  sender: string | undefined;
  patientId: string;
  encounterId: string | undefined;
  /** The clock of the records the message writes (see recordClock). */
  clock: RecordClock;
}

/**
 * The segments that come with a patient in ADT, BAR, DFT and REF messages (AL1, IAM, DG1, PR1,
 * OBX, NK1, IN1), for Hl7Processor, in its transaction. Each record is matched again when a feed
 * repeats it with every update, so that lists do not pile up, and is left as it is by a message
 * older than one already applied to it (see eventInstant).
 */
@Injectable()
export class PatientSegments {
  constructor(
    private readonly fhir: FhirService,
    private readonly matches: CriteriaMatches,
  ) {}

  /** Gives the Procedure each PR1 was recorded as (`Procedure/<id>`), for a charge's service. */
  async record(
    message: V2Message,
    context: SegmentContext,
    touched: Touched,
  ): Promise<Map<V2Segment, string>> {
    const recorded = new Map<V2Segment, string>();
    const { sender, patientId, encounterId, clock } = context;
    // Allergies and diagnoses are matched on the patient and their code (a diagnosis on its
    // visit too), so that the same list sent again with every update does not pile up.
    for (const al1 of message.all('AL1')) {
      const allergy = allergyFromAl1(al1, patientId);
      if (!allergy) continue;
      const type = 'AllergyIntolerance';
      const match = await conceptMatch(
        this.fhir,
        this.matches,
        type,
        `patient=Patient/${patientId}`,
        allergy,
      );
      const id = await writeOver(this.fhir, type, allergy, match, clock);
      touched.entities.push(`AllergyIntolerance/${id}`);
    }
    await this.adverseReactions(message, patientId, sender, touched, clock);
    for (const dg1 of message.all('DG1')) {
      const condition = conditionFromDg1(dg1, patientId, encounterId);
      if (!condition) continue;
      const { match, body } = await this.diagnosis(condition, patientId, encounterId);
      const id = await writeOver(this.fhir, 'Condition', body, match, clock);
      touched.entities.push(`Condition/${id}`);
    }
    await this.procedures(message, context, touched, recorded);
    await this.admissionObservations(message, patientId, encounterId, touched, clock);
    await this.kinAndCoverage(message, context, touched);
    return recorded;
  }

  /**
   * The patient's next of kin (NK1) and insurance (IN1), each matched again when a feed repeats
   * it: as ADT has them, and VXU, whose kin and payer an immunization registry keeps. Without
   * `overwrite` (a message of no demographic source, see setsDemographics) those found are left
   * as they are and only new ones are added: a clinic's VXU carries its own copy of the mother's
   * number and the payer, and until 2026-12-07 its older copy was written over ADT's.
   */
  async kinAndCoverage(
    message: V2Message,
    { sender, patientId, clock }: Pick<SegmentContext, 'sender' | 'patientId' | 'clock'>,
    touched: Touched,
    overwrite = true,
  ): Promise<void> {
    const write = async (type: string, resource: Record<string, unknown>, criteria?: string) => {
      if (overwrite) return upsert(this.fhir, this.matches, type, resource, criteria, clock);
      const match = criteria ? await this.matches.uniqueMatch(HL7_USER, type, criteria) : undefined;
      return match ?? writeOver(this.fhir, type, resource, undefined, clock);
    };
    for (const nk1 of message.all('NK1')) {
      const kin = relatedPersonFromNk1(nk1, patientId, sender);
      if (!kin) continue;
      const id = await write(
        'RelatedPerson',
        kin.resource,
        kinCriteria(patientId, kin.identifiers, kin.resource),
      );
      touched.entities.push(`RelatedPerson/${id}`);
    }
    for (const in1 of message.all('IN1')) {
      const coverage = coverageFromIn1(in1, patientId, sender);
      if (!coverage) continue;
      const byPolicy = byIdentifier(coverage.identifier);
      const criteria = byPolicy
        ? `${byPolicy}&beneficiary=Patient/${patientId}`
        : coverage.plan
          ? `beneficiary=Patient/${patientId}&class-value=${encodeURIComponent(escapeSearch(coverage.plan))}`
          : undefined;
      const id = await write('Coverage', coverage.resource, criteria);
      touched.entities.push(`Coverage/${id}`);
    }
  }

  /**
   * The patient's record of a DG1 diagnosis, and what to write over it. A diagnosis is its
   * visit's: the same code at a later stay is another record. Matched on the patient and code
   * alone until 2026-12-06, the later stay took the earlier one's over, which was left with no
   * diagnosis; a message of no known visit (A28, A31) took it out of its visit. A visit's
   * diagnosis takes over the patient's of no visit (a registration's, sent before the stay); a
   * diagnosis of no known visit is the patient's of no visit, else their one of that code,
   * whose visit it keeps.
   */
  private async diagnosis(
    condition: Record<string, unknown>,
    patientId: string,
    encounterId: string | undefined,
  ): Promise<{ match: string | undefined; body: Record<string, unknown> }> {
    const scope = `subject=Patient/${patientId}&${conditionCategory('encounter-diagnosis')}`;
    const find = (criteria: string) =>
      conceptMatch(this.fhir, this.matches, 'Condition', criteria, condition);
    const unvisited = `${scope}&encounter:missing=true`;
    if (encounterId) {
      const match =
        (await find(`${scope}&encounter=Encounter/${encounterId}`)) ??
        (await find(unvisited).catch(ambiguous));
      return { match, body: condition };
    }
    const match = (await find(unvisited)) ?? (await find(scope).catch(ambiguous));
    if (!match) return { match, body: condition };
    const { encounter } = (await this.fhir.read(HL7_USER, 'Condition', match)).resource;
    return { match, body: encounter ? { ...condition, encounter } : condition };
  }

  /**
   * IAM (ADT^A60): each allergy as the sender keeps it, known by its unique identifier (IAM-7),
   * else by its allergen. A deletion marks a known one entered in error (kept, as every record
   * is, but off the patient's list); one not on file is already as the sender has it.
   */
  private async adverseReactions(
    message: V2Message,
    patientId: string,
    sender: string | undefined,
    touched: Touched,
    clock: RecordClock,
  ): Promise<void> {
    for (const [iam, following] of withFollowing(message, 'IAM', ['IAR', 'NTE'])) {
      const allergy = allergyFromIam(iam, following, patientId, sender);
      if (!allergy) continue;
      // Known by its IAM-7, else by its allergen: its code, or its text alone (`^PENICILLIN`),
      // which until 2026-12-07 left it no criteria, and every A60 repeating it filed it again.
      const byId = byIdentifier(allergy.identifier);
      const scope = `patient=Patient/${patientId}`;
      const criteria = byId
        ? `${byId}&${scope}`
        : await conceptCriteria(
            this.fhir,
            this.matches,
            'AllergyIntolerance',
            scope,
            allergy.resource,
          );
      const id = await keepListed(
        this.fhir,
        this.matches,
        'AllergyIntolerance',
        allergy.resource,
        criteria,
        allergy.deletes,
        clock,
      );
      if (id) touched.entities.push(`AllergyIntolerance/${id}`);
    }
  }

  /**
   * The OBX segments of an ADT message (height, weight, vital signs taken at admission) as
   * Observations of the visit, each known by its code, its time and its visit, so that the same
   * values sent again with every update are not added again; one whose OBX-3 is text alone by
   * that exact text; one of neither a time nor a visit by its code (or text) alone, among those
   * of neither. One whose code and time the message has twice, or that several stored ones
   * match, cannot be told from another and is added.
   */
  private async admissionObservations(
    message: V2Message,
    patientId: string,
    encounterId: string | undefined,
    touched: Touched,
    clock: RecordClock,
  ): Promise<void> {
    const observations = withFollowing(message, 'OBX', ['NTE', 'PRT']).map(
      ([obx, following]): Record<string, unknown> => ({
        ...observationFromObx(
          obx,
          patientId,
          undefined,
          following.filter((segment) => segment.name === 'NTE'),
        ),
        ...(encounterId ? { encounter: { reference: `Encounter/${encounterId}` } } : {}),
      }),
    );
    // Two of one code (or text) and time in one message are two: matched, the second was
    // written over the first (two comment lines of an admission). Of one code at two times
    // (a heart rate at arrival and an hour later) each is known by its time, as before: keyed
    // by code alone, both were added again each time the feed repeated them.
    const keyOf = (observation: Record<string, unknown>) =>
      `${codeKey(observation)}@${(observation['effectiveDateTime'] as string | undefined) ?? ''}`;
    const twice = repeated(observations.map(keyOf));
    for (const observation of observations) {
      const criteria = twice.has(keyOf(observation))
        ? undefined
        : await unnumberedObservationCriteria(
            this.fhir,
            this.matches,
            observation,
            patientId,
            encounterId,
          );
      // Several stored ones of its code, time and visit (two of one message, or those piled up
      // before they were matched): it cannot be told which it is, and is added, as a result
      // before any OBR is. Until 2026-12-07 the message was refused (AE), each time it came.
      const match = criteria
        ? await this.matches.uniqueMatch(HL7_USER, 'Observation', criteria).catch(ambiguous)
        : undefined;
      const id = await writeOver(this.fhir, 'Observation', observation, match, clock);
      touched.entities.push(`Observation/${id}`);
    }
  }

  /**
   * PR1: each procedure known by its identifier (PR1-19), else by the patient, code and time,
   * so that the list an ADT feed repeats with every update does not pile up. An action code D
   * marks a known one entered in error.
   */
  private async procedures(
    message: V2Message,
    { sender, patientId, encounterId, clock }: SegmentContext,
    touched: Touched,
    recorded: Map<V2Segment, string>,
  ): Promise<void> {
    for (const pr1 of message.all('PR1')) {
      const procedure = procedureFromPr1(pr1, patientId, encounterId, sender);
      if (!procedure) continue;
      const byId = byIdentifier(procedure.identifier);
      const byCode = codeCriteria('subject', patientId, procedure.resource);
      // The one of that code going on at the time this one started (a time or a period).
      const at = startOf(procedure.resource, 'performed');
      const criteria = byId
        ? `${byId}&subject=Patient/${patientId}`
        : byCode && at
          ? `${byCode}&${atInstant('date', at)}`
          : byCode;
      const id = await keepListed(
        this.fhir,
        this.matches,
        'Procedure',
        procedure.resource,
        criteria,
        procedure.deletes,
        clock,
      );
      if (!id) continue;
      touched.entities.push(`Procedure/${id}`);
      recorded.set(pr1, `Procedure/${id}`);
    }
  }
}
