import { Injectable } from '@nestjs/common';
import { ResourceAccess } from '../access/resource-access.js';
import type { AuthenticatedUser } from '../auth/authenticated-user.js';
import { AppError } from '../common/errors/app-error.js';
import { UnitOfWork } from '../database/unit-of-work.js';
import type { FhirResource } from './fhir-types.js';
import { literalReference } from './literal-reference.js';
import { ReferenceIntegrity } from './reference-integrity.js';
import { ResourceRepository } from './resource.repository.js';
import { withoutWriteOnly } from './write-only-elements.js';

/**
 * Records about other records, not of the patient's chart: a Provenance of the merge itself
 * names the retired Patient as one of its targets, as R5's Patient $merge writes one.
 */
const ABOUT_RECORDS = new Set(['Provenance', 'AuditEvent']);

/** How many merges (A into B, B into C...) are followed to name the patient to refer to. */
export const MAX_MERGES = 10;

/**
 * The Patients this transaction read and locked for the check, by id (null: none live), while
 * no savepoint of it was rolled back (UnitOfWork.rollbacks).
 */
interface Checked {
  rollbacks: number;
  patients: Map<string, FhirResource | null>;
}

/**
 * Patients a merge retired: inactive, with a `replaced-by` link to the survivor (as an HL7 A40
 * or FHIR's Patient $merge leaves them). FHIR R4 says such a record "must no longer be used",
 * and the merge moved its records to the survivor: a record written to it afterwards is missing
 * from the survivor's searches and $everything, the chart a clinician opens (until 2026-12-07
 * `POST Observation` with its subject answered 201). So a write may not add a reference to one
 * (a record already on it, one a merge left there, stays updatable), and a retired Patient may
 * not be revived by an edit, nor given an identifier: made active again with its old MRN, or
 * given it back, the MRN named two patients and every later HL7 message with it was refused
 * (AE 205).
 */
@Injectable()
export class RetiredPatients {
  constructor(
    private readonly resources: ResourceRepository,
    private readonly access: ResourceAccess,
    private readonly unitOfWork: UnitOfWork,
    private readonly integrity: ReferenceIntegrity,
  ) {}

  /** `next` is about to replace `previous` (undefined for a create), after the access checks. */
  async assertWritable(
    user: AuthenticatedUser,
    next: FhirResource,
    previous: FhirResource | undefined,
  ): Promise<void> {
    if (user.loadsRecords || ABOUT_RECORDS.has(next.resourceType)) return;
    if (previous?.resourceType === 'Patient') assertStillRetired(previous, next);
    if (previous?.id && next.resourceType === 'Patient' && retires(previous, next)) {
      // The lock an HL7 merge (A40) takes on its prior patient, for a merge made through FHIR:
      // a write that checked the patient first (under FOR KEY SHARE) commits before the merge
      // does, and one that checks it after waits and reads it merged (a 422). An update's own
      // FOR NO KEY UPDATE holds neither off: until 2026-12-07 a record created as a PUT retired
      // the patient committed onto it after the merge, unseen by whoever moved its records.
      await this.resources.lockAgainstReferences('Patient', previous.id);
    }
    // A Patient this transaction writes is read again by the next check: a merge retires it.
    if (next.resourceType === 'Patient' && next.id) {
      this.unitOfWork.existingStateOf<Checked>(this)?.patients.delete(next.id);
    }
    const before = previous ? patientsReferred(previous) : new Set<string>();
    const added = [...patientsReferred(next)].filter((id) => !before.has(id) && id !== next.id);
    const patients = await this.locked(added);
    for (const id of added) {
      const patient = patients.get(id);
      if (!patient || !replacedBy(patient)) continue;
      // One the caller may not read is refused at commit as one never stored (ReferenceIntegrity):
      // a 422 here told a patient's app that another patient exists, and was merged.
      if (!(await this.access.mayReferTo(user, patient))) continue;
      const survivor = await this.survivorShown(user, patient);
      throw AppError.of(
        422,
        'processing',
        `Patient/${id} was merged into ${survivor ? `Patient/${survivor}` : 'another Patient'} ` +
          `(its link is replaced-by), and a merged record must no longer be used: refer to ` +
          `${survivor ? `Patient/${survivor}` : 'the Patient it was merged into'}`,
      );
    }
  }

  /**
   * Whether the Patient exists and is not deleted, locked FOR KEY SHARE until commit (as
   * CriteriaMatches.lockLive locks a match) and read in the same statement for this check, which
   * then reads it no more in the transaction: an HL7 message locks the patient its PID names,
   * then writes records about them, and the patient was read again, locked the same way, at the
   * first of those writes until 2026-12-07 (one round trip per message).
   */
  async lockLive(id: string): Promise<boolean> {
    if (!(await this.locked([id], true)).get(id)) return false;
    // Read earlier in the transaction (then told, or in a savepoint since released): told now.
    this.integrity.lockedLive('Patient', id);
    return true;
  }

  /**
   * The Patients, live ones read under the FOR KEY SHARE lock a reference to them takes until
   * commit anyway (ReferenceIntegrity, which then need not take it again). Each is read once
   * per transaction: an ORU's ten results, or a Bundle's hundred records of one patient, read
   * and decrypted it once per record until 2026-12-07. Read again after a savepoint was rolled
   * back: one a lock was taken in releases it (a write retried after a unique violation).
   * `asMatch`: with the statement CriteriaMatches.lockLive locks a match with (its content
   * added), as a session waiting for the lock shows it in pg_stat_activity.
   */
  private async locked(ids: string[], asMatch = false): Promise<Map<string, FhirResource | null>> {
    const checked = this.unitOfWork.inTransaction
      ? this.unitOfWork.stateOf<Checked>(
          this,
          () => ({ rollbacks: this.unitOfWork.rollbacks, patients: new Map() }),
          () => Promise.resolve(),
        )
      : { rollbacks: 0, patients: new Map<string, FhirResource | null>() };
    if (checked.rollbacks !== this.unitOfWork.rollbacks) {
      checked.patients.clear();
      checked.rollbacks = this.unitOfWork.rollbacks;
    }
    const unread = ids.filter((id) => !checked.patients.has(id));
    const rows = asMatch
      ? await this.resources.lockLiveContents(unread.map((id) => ({ type: 'Patient', id })))
      : await this.resources.lockLiveRows('Patient', unread);
    for (const id of unread) checked.patients.set(id, null);
    for (const row of rows) {
      if (row.content) {
        checked.patients.set(row.id, withoutWriteOnly(JSON.parse(row.content) as FhirResource));
      }
      this.integrity.lockedLive('Patient', row.id);
    }
    return checked.patients;
  }

  private async current(id: string): Promise<FhirResource | undefined> {
    const row = await this.resources.findCurrent('Patient', id);
    if (!row?.content || row.deleted) return undefined;
    return withoutWriteOnly(JSON.parse(row.content) as FhirResource);
  }

  /**
   * The id of the patient a merged one ends in, through a chain of merges, if the caller may
   * read it: a restricted survivor's id, or one outside a patient-scoped token's compartment,
   * is not told (as $match offers no such survivor).
   */
  private async survivorShown(
    user: AuthenticatedUser,
    patient: FhirResource,
  ): Promise<string | undefined> {
    let current = patient;
    for (let merges = 0; merges < MAX_MERGES; merges++) {
      const next = replacedBy(current);
      if (!next) return current.id;
      const survivor = await this.current(next);
      if (!survivor || !this.access.isListable(user, survivor, false)) return undefined;
      current = survivor;
    }
    return undefined;
  }
}

/**
 * A retired Patient keeps what the merge made it: inactive, `replaced-by` the same survivor, and
 * with no identifier it did not hold. Its other elements may still be corrected. Pointed at
 * another survivor, it would name that one while the records and numbers the merge moved stay
 * with the first: a wrong merge is corrected on the survivors, around it. An identifier
 * added to it (the MRN the merge moved to the survivor, typed back in) named it beside the
 * survivor: every later HL7 message with that MRN was refused (AE 205), as after a revival.
 */
function assertStillRetired(previous: FhirResource, next: FhirResource): void {
  const survivor = replacedBy(previous);
  if (!survivor) return;
  if (replacedBy(next) !== survivor || next['active'] === true) {
    throw AppError.of(
      422,
      'processing',
      `Patient/${String(previous.id)} was merged into Patient/${survivor}: an edit does not undo ` +
        `a merge. Keep its replaced-by link and active false, and update Patient/${survivor}; ` +
        'a wrong merge is corrected by registering the patient again and moving their records',
    );
  }
  const held = new Set(identifierKeys(previous));
  if (identifierKeys(next).some((key) => !held.has(key))) {
    throw AppError.of(
      422,
      'processing',
      `Patient/${String(previous.id)} was merged into Patient/${survivor}: it takes no new ` +
        `identifier, which would name it beside the survivor. Add it to Patient/${survivor}`,
      ['Patient.identifier'],
    );
  }
}

/** Whether this write is the merge that retires the Patient (it gains a `replaced-by` link). */
function retires(previous: FhirResource, next: FhirResource): boolean {
  return replacedBy(previous) === undefined && replacedBy(next) !== undefined;
}

/** A Patient's identifiers as `system|value`, as an identifier search tells them apart. */
function identifierKeys(patient: FhirResource): string[] {
  const identifiers = patient['identifier'];
  if (!Array.isArray(identifiers)) return [];
  const text = (value: unknown): string => (typeof value === 'string' ? value : '');
  return (identifiers as { system?: unknown; value?: unknown }[]).map(
    (identifier) => `${text(identifier?.system)}|${text(identifier?.value)}`,
  );
}

/**
 * The id of the Patient a `replaced-by` link names, if the patient has one: a literal reference
 * to a Patient here, relative or under this server's base URL, as the search index reads it.
 */
export function replacedBy(patient: FhirResource): string | undefined {
  const links = patient['link'];
  if (!Array.isArray(links)) return undefined;
  const reference = (links as { type?: unknown; other?: { reference?: unknown } }[]).find(
    (link) => link?.type === 'replaced-by',
  )?.other?.reference;
  const literal = typeof reference === 'string' ? literalReference(reference) : undefined;
  return literal?.type === 'Patient' && !literal.foreign ? literal.id : undefined;
}

/**
 * The ids of the stored Patients a resource refers to anywhere (contained resources and
 * extensions included), except in a Patient's own `link`: the survivor's `replaces` link and
 * a `seealso` name the merged record as the merge wants it named.
 */
function patientsReferred(resource: FhirResource): Set<string> {
  const ids = new Set<string>();
  const visit = (value: unknown, top: boolean): void => {
    if (Array.isArray(value)) {
      for (const item of value) visit(item, false);
      return;
    }
    if (typeof value !== 'object' || value === null) return;
    for (const [key, child] of Object.entries(value as Record<string, unknown>)) {
      if (top && key === 'link' && resource.resourceType === 'Patient') continue;
      if (key === 'reference' && typeof child === 'string') {
        const literal = literalReference(child);
        if (literal?.type === 'Patient' && !literal.foreign) ids.add(literal.id);
      } else {
        visit(child, false);
      }
    }
  };
  visit(resource, true);
  return ids;
}
