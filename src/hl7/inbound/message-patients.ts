import { Injectable } from '@nestjs/common';
import { isDeepStrictEqual } from 'node:util';
import { isRestricted } from '../../access/resource-access.js';
import { AppError } from '../../common/errors/app-error.js';
import { CriteriaMatches } from '../../fhir/criteria-matches.service.js';
import { FhirService } from '../../fhir/fhir.service.js';
import { HL7_USER } from '../hl7-user.js';
import {
  ASSIGNING_AUTHORITY_SYSTEM,
  sameIdentifier,
  systemOfHd,
  type Identifier,
} from '../mapping/datatypes.js';
import {
  applyPatient,
  conflictingRecordNumber,
  escapeSearch,
  identifierCriteria,
  patientFromSegments,
  type PatientElements,
} from '../mapping/patient.js';
import { Hl7ProcessingError } from '../message/hl7-header.js';
import type { V2Message, V2Segment } from '../message/v2-message.js';
import { Hl7EventClockRepository } from '../store/hl7-event-clock.repository.js';
import { eventInstant, isStale, keep, recordClock } from './event-order.js';
import { required, without, type PatientOfMessage, type Touched } from './processing.js';

/** Ids without an assigning authority are the sending facility's own (MSH-4, else MSH-3). */
export function senderSystem(message: V2Message): string | undefined {
  const msh = message.first('MSH')!;
  return (
    systemOfHd(msh.value(4, 1), msh.value(4, 2), msh.value(4, 3)) ??
    systemOfHd(msh.value(3, 1), msh.value(3, 2), msh.value(3, 3))
  );
}

/**
 * The one Patient the identifiers of a PID (or MRG) field name, if any. Identifiers naming two
 * patients are the sender's to sort out (ERR 205), not a storage error: its ADT system holds
 * one person where CareVault holds two, until a merge (A40) or a correction (A47) says which.
 */
export async function patientNamed(
  fhir: FhirService,
  matches: CriteriaMatches,
  identifiers: Identifier[],
  field: 'PID-3' | 'MRG-1',
): Promise<string | undefined> {
  const criteria = identifierCriteria(identifiers);
  if (!criteria) return undefined;
  try {
    return (
      (await matches.uniqueMatch(HL7_USER, 'Patient', criteria)) ??
      (await namedByNamespace(fhir, matches, identifiers))
    );
  } catch (error) {
    if (!(error instanceof AppError) || error.status !== 412) throw error;
    throw new Hl7ProcessingError(
      '205',
      `The identifiers in ${field} name more than one patient here: merge them (A40) or correct an identifier (A47) first`,
    );
  }
}

/** Patients holding an MRN's value, of whatever authority, compared one by one below. */
const SAME_VALUE_CANDIDATES = 100;

/**
 * The patient stored under an authority's universal id (HD-2) whom these identifiers name by
 * the authority's namespace id alone (see aliasSystem): no search finds it by system, so the
 * patients holding the value are read and their identifiers' authorities compared.
 */
async function namedByNamespace(
  fhir: FhirService,
  matches: CriteriaMatches,
  identifiers: Identifier[],
): Promise<string | undefined> {
  const bare = identifiers.filter((identifier) =>
    identifier.system?.startsWith(ASSIGNING_AUTHORITY_SYSTEM),
  );
  if (bare.length === 0) return undefined;
  const values = new Set(
    bare.map((identifier) => encodeURIComponent(escapeSearch(identifier.value))),
  );
  const candidates = await matches.matchingIds(
    HL7_USER,
    'Patient',
    `identifier=${[...values].join(',')}`,
    SAME_VALUE_CANDIDATES,
  );
  const found: string[] = [];
  for (const id of candidates) {
    const stored = (await fhir.read(HL7_USER, 'Patient', id)).resource['identifier'];
    const held = (stored as Identifier[] | undefined) ?? [];
    if (held.some((known) => known.assigner && bare.some((one) => sameIdentifier(known, one))))
      found.push(id);
  }
  if (found.length > 1) throw AppError.preconditionFailed('More than one Patient matches');
  return found[0];
}

/**
 * The message types whose PID and PD1 may change a patient already known here: the
 * registration system's (ADT), which is the patient's details' source of truth. A lab's,
 * scheduler's or pharmacy's PID carries what that system copied from ADT when it registered
 * the order, often before a correction: an A08 setting the birth date right, then a result
 * with the old one, wrote the old one back. Those messages still create a patient no one
 * knows yet, add identifiers and take a restriction (PD1-12), which undo nothing ADT said.
 */
const DEMOGRAPHIC_SOURCES: ReadonlySet<string> = new Set(['ADT']);

/** Whether the message may write its PID's details over a known patient's. */
export function setsDemographics(message: V2Message): boolean {
  return DEMOGRAPHIC_SOURCES.has(message.first('MSH')?.value(9, 1)?.toUpperCase() ?? '');
}

/** The patient of a message: matched on PID-3, updated from PID and PD1, or created. */
@Injectable()
export class MessagePatients {
  constructor(
    private readonly fhir: FhirService,
    private readonly matches: CriteriaMatches,
    private readonly clock: Hl7EventClockRepository,
  ) {}

  /**
   * The message's patient (its PID, matched or created), first of what the message touches,
   * and the clock of the records it writes, made once for all its handlers. A
   * message of one patient that has several PIDs is refused (AE) rather than filed under the
   * first: its segments after the second PID would be another patient's records.
   */
  async of(message: V2Message): Promise<PatientOfMessage> {
    const pids = message.all('PID').length;
    if (pids > 1) {
      throw new Hl7ProcessingError(
        '100',
        `This message type is about one patient, and this one has ${pids} PID segments: send one message per patient`,
      );
    }
    const sender = senderSystem(message);
    const touched: Touched = { entities: [], patientIds: [], kept: [] };
    const at = eventInstant(message);
    const patientId = await this.upsert(
      required(message, 'PID'),
      sender,
      touched,
      message.first('PD1'),
      at,
      [],
      setsDemographics(message),
    );
    touched.entities.push(`Patient/${patientId}`);
    touched.patientIds.push(patientId);
    return { sender, patientId, touched, clock: recordClock(this.clock, sender, at, touched) };
  }

  /**
   * Takes the criteria locks of all the patients of a message about several (each part's PID,
   * as upsert searches it) in one order, before the first is searched, as a transaction Bundle
   * does with its conditional criteria. Taken PID by PID, two results messages naming patients A and B,
   * one as A then B and the other as B then A, each held one and waited for the other: a
   * deadlock, met again on every retry (7 to 10 of 14 such ORUs sent at once got no ACK). The
   * locks are re-entrant: upsert takes each again at no cost. A PID that does not parse is
   * left to its part's processing, which refuses it.
   */
  async lockAll(parts: readonly V2Message[]): Promise<void> {
    const criteria = parts.flatMap((part) => {
      const pid = part.first('PID');
      if (!pid) return [];
      try {
        const { identifiers } = patientFromSegments(pid, senderSystem(part), part.first('PD1'));
        const text = identifierCriteria(identifiers);
        return text ? [{ type: 'Patient', criteria: text }] : [];
      } catch (error) {
        if (error instanceof Hl7ProcessingError) return [];
        throw error;
      }
    });
    if (criteria.length > 1) await this.matches.lockCriteria(criteria);
  }

  /**
   * The Patient matched on any PID-3 identifier (under the criteria's lock), or a new one. A
   * plain DELETE or PUT takes no criteria lock: one committed between the search and the
   * update (which writes only over the version it read) has the patient searched again, as a
   * conditional update sent again after its 409 would be, and so has one committed before the
   * patient found is locked against deletion. A deletion then leaves no match, and the message
   * creates a patient: written over, the deleted record came back. A message older
   * (`at`, see eventInstant) than one already applied to the patient leaves its details as the
   * newer one set them, and says so in `touched`. Without `demographics` (a message of no
   * DEMOGRAPHIC_SOURCES type), a patient found keeps their details, and one created keeps no
   * clock: the registration system's next message sets them whatever its time. A merge's
   * survivor is found by the identifiers its prior patient does not hold (`priorHolds`), when
   * PID-3 has any: it may also send one the prior holds (the SSN that showed them to be one
   * person), which named both and refused the merge that joins them (ERR 205).
   */
  async upsert(
    pid: V2Segment,
    sender: string | undefined,
    touched: Touched,
    pd1?: V2Segment,
    at?: Date,
    retiring: Identifier[] = [],
    demographics = true,
    priorHolds: Identifier[] = [],
  ): Promise<string> {
    const { identifiers, elements, restricted } = patientFromSegments(pid, sender, pd1);
    if (!identifierCriteria(identifiers)) {
      throw new Hl7ProcessingError('101', 'PID-3 holds no identifier with an assigning authority');
    }
    const survivors = identifiers.filter(
      (identifier) => !priorHolds.some((held) => sameIdentifier(held, identifier)),
    );
    const finding = identifierCriteria(survivors) ? survivors : identifiers;
    for (let attempt = 1; ; attempt++) {
      const match = await patientNamed(this.fhir, this.matches, finding, 'PID-3');
      if (!match) {
        const created = await this.fhir.create(
          HL7_USER,
          'Patient',
          applyPatient(undefined, identifiers, elements, restricted),
        );
        if (at && demographics) await this.clock.advance('Patient', created.id, sender, at, false);
        return created.id;
      }
      // Locked as the message's references to the patient are at commit, but now: a deletion
      // (plain or cascading) committed since the search is seen here and the patient searched
      // again. Until 2026-12-06 only a failed update searched again, so with a PID saying
      // nothing new the results' reference to the deleted patient was refused at commit (AE).
      if (!(await this.matches.lockLive('Patient', match))) {
        if (attempt === UPSERT_ATTEMPTS) {
          throw AppError.conflict(
            `The patients the message named were deleted meanwhile, ${UPSERT_ATTEMPTS} times; send it again`,
          );
        }
        continue;
      }
      try {
        const sent = { identifiers, retiring };
        const details = demographics ? elements : undefined;
        await this.updateMatch(match, sent, details, restricted, sender, at, touched);
        return match;
      } catch (error) {
        if (!changedMeanwhile(error) || attempt === UPSERT_ATTEMPTS) throw error;
      }
    }
  }

  /**
   * Writes what the PID says over the patient found, if it says anything new: its identifiers
   * and a restriction only, without `elements` (see DEMOGRAPHIC_SOURCES).
   */
  private async updateMatch(
    match: string,
    { identifiers, retiring }: { identifiers: Identifier[]; retiring: Identifier[] },
    elements: PatientElements | undefined,
    restricted: boolean,
    sender: string | undefined,
    at: Date | undefined,
    touched: Touched,
  ): Promise<void> {
    const current = await this.fhir.read(HL7_USER, 'Patient', match);
    const stored = (current.resource['identifier'] as Identifier[] | undefined) ?? [];
    if (conflictingRecordNumber(stored, identifiers, retiring)) {
      throw new Hl7ProcessingError(
        '205',
        'PID-3 names a patient here who has another medical record number (MR) of the same authority: merge them (A40) or correct an identifier (A47) first',
      );
    }
    // An ADT queue replayed out of order: the older message's name or address would undo the
    // newer one's. Its identifiers are still added and a restriction taken, as neither undoes.
    const stale =
      elements &&
      at &&
      isStale(at, (await this.clock.advance('Patient', match, sender, at, false)).detailsAt);
    if (stale) keep(touched, 'Patient');
    // A PID naming the patient only by identifiers a merge made old speaks of the prior record
    // as its sender still knows it: its name or address would undo what the merge settled.
    const byCurrentId = identifiers.some((identifier) =>
      stored.some((known) => known.use !== 'old' && sameIdentifier(known, identifier)),
    );
    // A restriction only tightens access, so it is taken whichever identifiers name the patient.
    const restricts = restricted && !isRestricted(current.resource);
    const next = {
      ...applyPatient(
        current.resource,
        identifiers,
        elements && byCurrentId && !stale ? elements : {},
        restricts,
      ),
      id: match,
    };
    // A feed repeats the PID with every result: what it already says makes no new version.
    if (restricts || !isDeepStrictEqual(next, without(current.resource, 'meta'))) {
      await this.fhir.update(HL7_USER, 'Patient', match, next, `W/"${current.versionId}"`, {
        matched: true,
      });
    }
  }
}

/** Searches of a message's patient, when each finds one deleted or changed before its update. */
const UPSERT_ATTEMPTS = 3;

/**
 * The patient found was deleted before it was read (404, 410), or deleted (409) or changed
 * (412) before its update took the row lock.
 */
export function changedMeanwhile(error: unknown): boolean {
  return error instanceof AppError && [404, 409, 410, 412].includes(error.status);
}

/**
 * Runs `write` again, up to UPSERT_ATTEMPTS times in all, while it fails because a patient it
 * read changed or was deleted before its write (changedMeanwhile): each try reads afresh.
 */
export async function whileChangedMeanwhile<T>(write: (attempt: number) => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await write(attempt);
    } catch (error) {
      if (!changedMeanwhile(error) || attempt === UPSERT_ATTEMPTS) throw error;
    }
  }
}
