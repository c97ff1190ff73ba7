import { Injectable } from '@nestjs/common';
import { isDeepStrictEqual } from 'node:util';
import { isRestricted } from '../../access/resource-access.js';
import { AppError } from '../../common/errors/app-error.js';
import { CriteriaMatches } from '../../fhir/criteria-matches.service.js';
import { ResourceReferrers } from '../../fhir/resource-referrers.service.js';
import { FhirService } from '../../fhir/fhir.service.js';
import type { StoredResource } from '../../fhir/fhir-types.js';
import { HL7_USER } from '../hl7-user.js';
import {
  identifierOf,
  identifierType,
  sameAuthority,
  sameIdentifier,
  type Identifier,
} from '../mapping/datatypes.js';
import { applyPatient, identifierCriteria, patientFromSegments } from '../mapping/patient.js';
import { Hl7ProcessingError } from '../message/hl7-header.js';
import type { V2Message, V2Segment } from '../message/v2-message.js';
import { eventInstant } from './event-order.js';
import {
  whileChangedMeanwhile,
  MessagePatients,
  patientNamed,
  senderSystem,
} from './message-patients.js';
import { without, type Touched } from './processing.js';
import { conceptMatch } from './record-criteria.js';
import { moveRecords, recordsReferring } from './record-moves.js';

/**
 * The PID and MRG pairs of a merge or an identifier change, with the PD1 between them (ADT_A39
 * and ADT_A30 have PID, [PD1], MRG), MRG-1's identifiers (the prior or wrong ones) and the
 * criteria finding the patient they name.
 */
function priorPatients(
  message: V2Message,
  sender: string | undefined,
  what: 'a merge' | 'an identifier change',
): {
  pid: V2Segment;
  pd1: V2Segment | undefined;
  priorIdentifiers: Identifier[];
}[] {
  const segments = message.segments();
  const pairs = [];
  for (const [i, pid] of segments.entries()) {
    if (pid.name !== 'PID') continue;
    const pd1 = segments[i + 1]?.name === 'PD1' ? segments[i + 1] : undefined;
    const next = segments[pd1 ? i + 2 : i + 1];
    const mrg = next?.name === 'MRG' ? next : undefined;
    if (!mrg) {
      throw new Hl7ProcessingError('100', `Each PID of ${what} needs the MRG segment after it`);
    }
    const priorIdentifiers = mrg
      .repetitions(1)
      .map((cx) => identifierOf(cx, sender))
      .filter((identifier): identifier is Identifier => identifier !== undefined);
    if (!identifierCriteria(priorIdentifiers)) {
      throw new Hl7ProcessingError('101', 'MRG-1 holds no prior patient identifier');
    }
    pairs.push({ pid, pd1, priorIdentifiers });
  }
  if (pairs.length === 0) {
    throw new Hl7ProcessingError(
      '100',
      `${what[0]!.toUpperCase()}${what.slice(1)} needs a PID segment`,
    );
  }
  return pairs;
}

/**
 * The identifiers as a merge leaves them: PID-3's current and MRG-1's `old`, whatever they were.
 * The sender knows the patient by PID-3's from now on. A merge made the other way round before
 * (B into A, then A into B to correct it) left the survivor's number `old` here until
 * 2026-12-07, and every later update naming the patient by it changed nothing (see
 * MessagePatients.upsert): the registration system's new address or name was lost, with AA.
 */
function settled(held: Identifier[], surviving: Identifier[], retired: Identifier[]): Identifier[] {
  return held.map((identifier) => {
    if (surviving.some((one) => sameIdentifier(one, identifier))) {
      const { use, ...current } = identifier;
      return use === 'old' ? current : identifier;
    }
    return retired.some((one) => sameIdentifier(one, identifier))
      ? { ...identifier, use: 'old' }
      : identifier;
  });
}

/**
 * The identifiers an identifier correction (A47) leaves: `held` without the `wrong` ones (MRG-1),
 * and each of PID-3's new ones `old` where it corrects a wrong one a merge made `old` (of its
 * authority and type, and none of them current): a merge's prior MRN, mistyped, is corrected
 * as the prior number it is. Made current until 2026-12-07, the survivor held two current MRNs
 * of one authority, and a message naming it by the prior one alone (a clinic not told of the
 * merge) wrote the prior record's name and address over the survivor's.
 */
export function corrected(
  held: Identifier[],
  wrong: Identifier[],
  sent: Identifier[],
): Identifier[] {
  const isWrong = (identifier: Identifier) => wrong.some((one) => sameIdentifier(one, identifier));
  const replaced = held.filter(isWrong);
  const pairedUse = (identifier: Identifier) => {
    const paired = replaced.filter(
      (one) => sameAuthority(one, identifier) && identifierType(one) === identifierType(identifier),
    );
    return paired.length > 0 && paired.every((one) => one.use === 'old') ? 'old' : undefined;
  };
  const kept = held.filter((identifier) => !isWrong(identifier));
  const added = sent
    .filter((identifier) => !kept.some((known) => sameIdentifier(known, identifier)))
    .map((identifier) =>
      pairedUse(identifier) === 'old' ? { ...identifier, use: 'old' as const } : identifier,
    );
  return [...kept, ...added];
}

/** Patient merges (ADT^A40) and identifier corrections (ADT^A47), for Hl7Processor. */
@Injectable()
export class PatientMerges {
  constructor(
    private readonly fhir: FhirService,
    private readonly referrers: ResourceReferrers,
    private readonly matches: CriteriaMatches,
    private readonly patients: MessagePatients,
  ) {}

  /**
   * ADT^A40, merge: for each PID (the surviving patient) and the MRG after it (the prior
   * identifiers), the prior Patient is made inactive and `replaced-by` the survivor, which
   * `replaces` it and takes over its identifiers, so that later messages with the old MRN find
   * the survivor. A prior patient never seen here only adds its identifiers to the survivor.
   * The identifiers taken over are `old` there, as FHIR's Patient $merge marks them: a message
   * naming the patient only by one of them (a lab not told of the merge) files its records to
   * the survivor without changing its details (see MessagePatients.upsert). A restricted prior
   * patient makes the survivor restricted: it now answers to the prior identifiers and links to
   * the prior record, so leaving it open would show whom the restriction protects to anyone.
   * A merge never lifts a restriction, and its PD1-12 `Y` restricts the survivor as any PD1's.
   * What was recorded of the prior patient becomes the survivor's (see moveChart).
   */
  async merge(message: V2Message): Promise<Touched> {
    const sender = senderSystem(message);
    const touched: Touched = { entities: [], patientIds: [], kept: [] };
    const pairs = priorPatients(message, sender, 'a merge');
    const at = eventInstant(message);
    for (const { pid, pd1, priorIdentifiers } of pairs) {
      const priorId = await patientNamed(this.fhir, this.matches, priorIdentifiers, 'MRG-1');
      // Before the prior patient is read, and as the merge's first row lock: a write that
      // checked it (RetiredPatients, under FOR KEY SHARE) commits first, so moveChart lists
      // its record, and one that checks it after waits and reads it merged (a 422). Unlocked,
      // a record created on it as the merge ran was committed after moveChart listed its
      // records, and stayed on the retired patient (until 2026-12-07).
      if (priorId) await this.referrers.lockAgainstReferences('Patient', priorId);
      const prior = priorId && (await this.fhir.read(HL7_USER, 'Patient', priorId)).resource;
      const priorHolds = (prior && (prior['identifier'] as Identifier[] | undefined)) || [];
      // The survivor may be found by the prior numbers MRG-1 retires, which it takes over.
      const survivorId = await this.patients.upsert(
        pid,
        sender,
        touched,
        pd1,
        at,
        priorIdentifiers,
        true,
        priorHolds,
      );
      touched.entities.push(`Patient/${survivorId}`);
      touched.patientIds.push(survivorId);
      const survivor = await this.fhir.read(HL7_USER, 'Patient', survivorId);
      const { identifiers: surviving } = patientFromSegments(pid, sender, pd1);
      if (priorId === survivorId) {
        // Merged before: a resend, the same patient, or a merge made the other way since.
        await this.rewrite(survivor, (current) => {
          const held = (current['identifier'] as Identifier[] | undefined) ?? [];
          const next = settled(held, surviving, priorIdentifiers);
          return isDeepStrictEqual(next, held)
            ? undefined
            : { ...without(current, 'meta'), identifier: next };
        });
        continue;
      }
      let moved = priorIdentifiers;
      const replaces: unknown[] = [];
      if (priorId && prior) {
        moved = [...((prior['identifier'] as Identifier[] | undefined) ?? []), ...moved];
        // Over whatever version: its row has been locked since before it was read (above).
        await this.fhir.update(HL7_USER, 'Patient', priorId, {
          ...without(prior, 'meta', 'identifier'),
          active: false,
          link: [{ other: { reference: `Patient/${survivorId}` }, type: 'replaced-by' }],
        });
        replaces.push({ other: { reference: `Patient/${priorId}` }, type: 'replaces' });
        touched.entities.push(`Patient/${priorId}`);
        touched.patientIds.push(priorId);
        await this.moveChart(priorId, survivorId, touched);
      }
      await this.rewrite(survivor, (current) => {
        const restricts = !!prior && isRestricted(prior) && !isRestricted(current);
        const links = [...((current['link'] as unknown[] | undefined) ?? []), ...replaces];
        const merged = applyPatient(
          current,
          moved.map((identifier) => ({ ...identifier, use: 'old' })),
          {},
          restricts,
        );
        return {
          ...merged,
          identifier: settled(merged['identifier'] as Identifier[], surviving, priorIdentifiers),
          ...(links.length > 0 ? { link: links } : {}),
        };
      });
    }
    return touched;
  }

  /**
   * Writes what `change` makes of the patient over the version read only (If-Match), and when a
   * FHIR update committed meanwhile (a registrar's new phone), reads it again and has `change`
   * decide anew, as MessagePatients.upsert and PatientLinks do: until 2026-12-07 a merge's
   * survivor and an A47's patient were written over with what was read before that update.
   * Nothing is written when `change` gives nothing; what it gives is written whole, its meta
   * too, where a restriction the merge takes is a security label.
   */
  private async rewrite(
    read: StoredResource,
    change: (resource: StoredResource['resource']) => Record<string, unknown> | undefined,
  ): Promise<void> {
    const id = String(read.resource['id']);
    await whileChangedMeanwhile(async (attempt) => {
      const current = attempt === 1 ? read : await this.fhir.read(HL7_USER, 'Patient', id);
      const next = change(current.resource);
      if (!next) return;
      await this.fhir.update(HL7_USER, 'Patient', id, { ...next, id }, `W/"${current.versionId}"`, {
        matched: true,
      });
    });
  }

  /**
   * The prior patient's records (visits, results, orders, allergies, diagnoses, related persons:
   * whatever refers to the prior Patient) rewritten to refer to the survivor, as FHIR's Patient
   * $merge and HAPI's do. Until 2026-12-07 they stayed on the inactive prior record, so the
   * survivor's chart, the one a clinician opens, showed none of them: no penicillin allergy.
   * Patients stay as they are (the links between the two are the merge's own). An allergy, or a
   * diagnosis of no visit, that the survivor already holds by the same code (or the same text
   * alone) stays on the prior record: moved, the feed's next list would find two of it, which
   * no message could then update (AE).
   */
  private async moveChart(priorId: string, survivorId: string, touched: Touched): Promise<void> {
    const records = await recordsReferring(
      this.fhir,
      this.referrers,
      'Patient',
      priorId,
      'The prior patient',
    );
    const chart = records.filter((record) => record.type !== 'Patient');
    const moves = { from: `Patient/${priorId}`, to: `Patient/${survivorId}` };
    await moveRecords(this.fhir, chart, moves, touched, (type, record) =>
      this.heldBySurvivor(type, record, survivorId),
    );
  }

  private async heldBySurvivor(
    type: string,
    record: Record<string, unknown>,
    survivorId: string,
  ): Promise<boolean> {
    let scope: string;
    if (type === 'AllergyIntolerance') {
      scope = `patient=Patient/${survivorId}`;
    } else if (type === 'Condition' && record['encounter'] === undefined) {
      const category = (
        record['category'] as { coding?: { system?: string; code?: string }[] }[]
      )?.[0]?.coding?.[0];
      scope =
        `subject=Patient/${survivorId}&encounter:missing=true` +
        (category?.code
          ? `&category=${encodeURIComponent(`${category.system ?? ''}|${category.code}`)}`
          : '');
    } else {
      return false;
    }
    try {
      return (await conceptMatch(this.fhir, this.matches, type, scope, record)) !== undefined;
    } catch (error) {
      // Two such records there already (412): the survivor holds it.
      if (error instanceof AppError && error.status === 412) return true;
      throw error;
    }
  }

  /**
   * ADT^A47, change patient identifier list: an identifier of the patient (MRG-1) was wrong and
   * is replaced by PID-3's. Not a merge: when PID-3 already identifies another patient, the
   * message is refused (AE) rather than joining the two (that is A40's). The wrong identifier
   * is dropped, not kept as `old`: a later message carrying it must not find this patient. A
   * patient not known by it is updated or created from the PID, so a resend changes nothing.
   */
  async changeIdentifiers(message: V2Message): Promise<Touched> {
    const sender = senderSystem(message);
    const touched: Touched = { entities: [], patientIds: [], kept: [] };
    const pairs = priorPatients(message, sender, 'an identifier change');
    for (const { pid, pd1, priorIdentifiers } of pairs) {
      const priorId = await patientNamed(this.fhir, this.matches, priorIdentifiers, 'MRG-1');
      let patientId: string;
      if (!priorId) {
        patientId = await this.patients.upsert(pid, sender, touched, pd1);
      } else {
        const { identifiers, elements, restricted } = patientFromSegments(pid, sender, pd1);
        if (!identifierCriteria(identifiers)) {
          throw new Hl7ProcessingError(
            '101',
            'PID-3 holds no identifier with an assigning authority',
          );
        }
        const holder = await patientNamed(this.fhir, this.matches, identifiers, 'PID-3');
        if (holder && holder !== priorId) {
          throw new Hl7ProcessingError(
            '205',
            'PID-3 already identifies another patient: joining two patients is a merge (A40)',
          );
        }
        const read = await this.fhir.read(HL7_USER, 'Patient', priorId);
        await this.rewrite(read, (current) => {
          const held = (current['identifier'] as Identifier[] | undefined) ?? [];
          const next = corrected(held, priorIdentifiers, identifiers);
          // A PID naming the patient only by numbers a merge made old speaks of the prior
          // record (see MessagePatients.upsert): its name or address would undo what the merge
          // settled.
          const byCurrentId = identifiers.some((identifier) =>
            next.some((known) => known.use !== 'old' && sameIdentifier(known, identifier)),
          );
          return applyPatient(
            { ...current, identifier: next },
            identifiers,
            byCurrentId ? elements : {},
            restricted,
          );
        });
        patientId = priorId;
      }
      touched.entities.push(`Patient/${patientId}`);
      touched.patientIds.push(patientId);
    }
    return touched;
  }
}
