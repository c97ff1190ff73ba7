import { Injectable } from '@nestjs/common';
import { AuditContext } from '../audit/audit-context.js';
import type { AuthenticatedUser } from '../auth/authenticated-user.js';
import { hasAppPermission, type FhirInteraction } from '../auth/permissions.js';
import { isPatientConfined } from '../auth/smart-scopes.js';
import { AppError } from '../common/errors/app-error.js';
import type { FhirResource } from '../fhir/fhir-types.js';
import { SECURITY_CONTEXT_PARAM } from '../fhir/search/index-rows.js';
import type { BreakGlassGrantEntity } from './break-glass.entity.js';
import { BreakGlassService } from './break-glass.service.js';
import { PatientCompartment, patientIdOf } from './patient-compartment.js';

export const CONFIDENTIALITY = 'http://terminology.hl7.org/CodeSystem/v3-Confidentiality';

/** The `meta.security` label of a restricted record (see isRestricted). */
export const RESTRICTED_LABEL = { system: CONFIDENTIALITY, code: 'R' } as const;

/**
 * The confidentiality codes that restrict a record: R, and V (very restricted), which is
 * stricter still. V used to open to every role, so labelling a record V protected it less
 * than labelling it R.
 */
export const RESTRICTING_CODES: readonly string[] = ['R', 'V'];

interface Coding {
  system?: unknown;
  code?: unknown;
}

/** `meta.security` code R or V: open only through break-glass. */
export function isRestricted(resource: FhirResource): boolean {
  return securityLabels(resource).some(
    (label) => label.system === CONFIDENTIALITY && RESTRICTING_CODES.includes(label.code as string),
  );
}

/** Restricted itself, or through the resource its securityContext names (a Binary's document). */
export function isRestrictedIn(resource: FhirResource, context?: FhirResource): boolean {
  return isRestricted(resource) || (context !== undefined && isRestricted(context));
}

function securityLabels(resource: FhirResource | undefined): Coding[] {
  const labels = (resource?.meta as { security?: unknown } | undefined)?.security;
  return Array.isArray(labels) ? (labels as Coding[]) : [];
}

function labelKey(labels: Coding[]): string {
  return JSON.stringify(
    labels.map((label) => `${String(label.system)}|${String(label.code)}`).sort(),
  );
}

/**
 * Whether `next` carries the labels of `current` (absent for a create) and the restricted label
 * it did not have: a change that only tightens access.
 */
function onlyRestricts(next: FhirResource, current: FhirResource | undefined): boolean {
  if (current && isRestricted(current)) return false;
  return (
    labelKey(securityLabels(next)) === labelKey([...securityLabels(current), RESTRICTED_LABEL])
  );
}

/**
 * Access rules that depend on a resource's content, on top of the role and scope check the
 * permission guard makes from the URL: the patient compartment of a patient-scoped token,
 * restricted records (break-glass), and who may change security labels. Every resource a
 * request reads, lists or writes passes here, so this is also where the audit trail learns
 * which records and patients the request touched (denied ones included).
 */
/** Why a stored resource is opened (break-glass records it), and the scope letter that needs. */
export type OpenedFor = 'read' | 'vread' | 'history' | 'update' | 'patch' | 'delete';

const WRITES: ReadonlySet<FhirInteraction> = new Set(['create', 'update', 'delete']);

/**
 * Types whose records list patients as members: R4 puts a Group in the compartment of each, so
 * that a patient's app read the whole list of a cohort (a clinic, a trial) and who else is in
 * it. A patient-scoped token sees one only when its patient is the only patient it names.
 */
export const MEMBER_LISTS: ReadonlySet<string> = new Set(['Group']);

/**
 * Types R4 puts in no patient's compartment whose records are about patients all the same: a
 * Subscription (its criteria name patients, its endpoint receives their notifications), a
 * stored Bundle (a document, a message, a collection: whole records), a MessageHeader (the
 * event and its focus), a Linkage (which records are the same person), payment notices and
 * reconciliations, enrollment responses. A patient-scoped token neither reads nor lists them
 * (404, counted 0) nor writes them (403): until 2026-12-07 all but Subscriptions were shared
 * records, and a patient's app read another patient's documents kept as Bundles.
 */
const IN_NO_COMPARTMENT: ReadonlySet<string> = new Set([
  'Subscription',
  'Bundle',
  'MessageHeader',
  'Linkage',
  'PaymentNotice',
  'PaymentReconciliation',
  'EnrollmentResponse',
]);
const SHARED_RECORDS =
  'A patient-scoped token changes no records outside patient compartments (Practitioner, Organization…)';

/**
 * What a list's SQL leaves out for a patient-scoped token, before it reads and decrypts a row:
 * records of `linked` types that do not, as they are now, refer to `patient` by one of the
 * parameters its compartment names (a Patient: or are not that patient), or are restricted, and
 * every record of the `none` types. Types in neither are left to the check made once a row is
 * read (a Binary's patient is its securityContext's, another resource's), which stays the final
 * word.
 */
export interface CompartmentScope {
  patient: string;
  /** `sole`: and refer to no other patient by them (see MEMBER_LISTS). */
  linked: { type: string; params: readonly string[]; sole: boolean }[];
  none: string[];
  /**
   * Binaries are listed: of them, the SQL keeps those whose securityContext (its index rows,
   * SECURITY_CONTEXT_PARAM) names the patient, a record in the patient's compartment now by
   * one of `contextLinks` (every type's links, and a Binary's own context), or a record deleted
   * since (which counts as it was: judged once read). The check of each row read decides.
   */
  binaries?: { contextLinks: { type: string; param: string }[] };
}

const OPENED_BY: Record<OpenedFor, FhirInteraction> = {
  read: 'read',
  vread: 'read',
  history: 'history',
  update: 'update',
  patch: 'update',
  delete: 'delete',
};

@Injectable()
export class ResourceAccess {
  constructor(
    private readonly compartment: PatientCompartment,
    private readonly breakGlass: BreakGlassService,
    private readonly audit: AuditContext,
  ) {}

  /** A resource the request named that is not stored: its id stays out of the audit row. */
  notStored(reference: string): void {
    this.audit.forget([reference]);
  }

  /** A patient-scoped token sees nothing outside its patient's compartment: such a resource is 404. */
  assertInCompartment(
    user: AuthenticatedUser,
    resource: FhirResource,
    interaction: FhirInteraction,
    context?: FhirResource,
  ): void {
    this.checkInCompartment(user, resource, interaction, context);
  }

  /**
   * Whether a patient-scoped token's compartment holds the resource (always, for any other
   * token), recording nothing: for a version a list leaves out rather than refuses.
   */
  isInCompartmentOf(
    user: AuthenticatedUser,
    resource: FhirResource,
    interaction: FhirInteraction,
    context?: FhirResource,
  ): boolean {
    return this.isInCompartment(user, resource, this.patientsOf(resource, context), interaction);
  }

  /**
   * Checks a stored resource before it is shown or changed; records break-glass use. `context`
   * is the resource a Binary's securityContext names, loaded by the caller: the Binary then
   * follows its rules too (its patients, and restricted when it is).
   */
  async assertMayOpen(
    user: AuthenticatedUser,
    resource: FhirResource,
    interaction: OpenedFor,
    context?: FhirResource,
  ): Promise<void> {
    const patients = this.checkInCompartment(user, resource, OPENED_BY[interaction], context);
    const grants = await this.grantsToOpen(user, resource, patients, context);
    if (grants === 'open') return;
    if (!grants) {
      throw AppError.of(
        403,
        'security',
        'This record is restricted: it opens only through break-glass (POST /auth/break-glass) for each patient it is about',
      );
    }
    this.audit.markBreakGlass();
    for (const grant of grants) {
      await this.breakGlass.recordUse(
        grant,
        resource.resourceType,
        String(resource.id),
        interaction,
      );
    }
  }

  /**
   * Whether a write by the user may refer to this stored resource (live, `context` as for
   * assertMayOpen): for a user confined to a compartment for its type (see confinesTo), when
   * the user may read it, by the rules a read follows (its patient's compartment, restricted
   * only through break-glass), recording nothing; any other user may refer to anything. A
   * reference to a record the user may not read is then answered as one to a record that does
   * not exist (ReferenceIntegrity): a patient's app attached results to another patient's
   * Encounter, and learnt which ids were stored, until 2026-12-07.
   */
  async mayReferTo(
    user: AuthenticatedUser,
    resource: FhirResource,
    context?: FhirResource,
  ): Promise<boolean> {
    if (!this.judgesReferencesTo(user, resource.resourceType)) return true;
    const patients = this.patientsOf(resource, context);
    if (!this.isInCompartment(user, resource, patients, 'read')) return false;
    return (await this.grantsToOpen(user, resource, patients, context)) !== null;
  }

  /** Whether mayReferTo judges the user's references to this type (they cost a read then). */
  judgesReferencesTo(user: AuthenticatedUser, type: string): boolean {
    return this.confinesTo(user, type, 'read');
  }

  /**
   * What opens a resource of these patients to the user: `open` when it is not restricted (or
   * the user is internal), the break-glass grants that open it, or null when nothing does.
   */
  private async grantsToOpen(
    user: AuthenticatedUser,
    resource: FhirResource,
    patients: string[],
    context: FhirResource | undefined,
  ): Promise<'open' | BreakGlassGrantEntity[] | null> {
    if (!isRestrictedIn(resource, context) || user.internal) return 'open';
    return this.breakGlass.active(user, patients);
  }

  /**
   * Checks new content before it is written over `current` (absent for a create): it must stay
   * in a patient-scoped token's compartment, and only users who may label records change
   * `meta.security` (a client cannot restrict or unrestrict a record by mass assignment).
   */
  assertMayWrite(
    user: AuthenticatedUser,
    next: FhirResource,
    current: FhirResource | undefined,
  ): void {
    const patients = this.patientsOf(next);
    this.audit.touch(next, patients);
    const interaction = current ? 'update' : 'create';
    if (!this.mayWriteWithin(user, next, patients, current, interaction)) {
      throw AppError.forbidden(
        this.confines(next.resourceType)
          ? "A patient-scoped token can only write its patient's records"
          : SHARED_RECORDS,
      );
    }
    if (
      labelKey(securityLabels(next)) !== labelKey(securityLabels(current)) &&
      !hasAppPermission(user.roles, 'security:label') &&
      !(user.internal && onlyRestricts(next, current))
    ) {
      throw AppError.forbidden('Changing meta.security needs the security:label permission');
    }
  }

  /**
   * What an internal account (the HL7 feed) writes over a record keeps the record's meta
   * (security labels, tags, profiles): its senders know nothing of them, so it neither sets nor
   * clears them, and a record it sends again as stored is unchanged whatever meta it has. One
   * exception: it may restrict the record (a v2 protection indicator, PD1-12 `Y`), which only
   * tightens access; lifting a restriction is for a person who may label records.
   */
  withMetaKept(user: AuthenticatedUser, next: FhirResource, current?: FhirResource): FhirResource {
    if (!user.internal || !current) return next;
    const meta: Record<string, unknown> = { ...current.meta };
    delete meta['versionId'];
    delete meta['lastUpdated'];
    if (isRestricted(next) && !isRestricted(current)) {
      meta['security'] = [...securityLabels(current), RESTRICTED_LABEL];
    }
    const content: FhirResource = { ...next };
    delete content.meta;
    return Object.keys(meta).length > 0 ? { ...content, meta } : content;
  }

  /**
   * A deletion has no content to place in a compartment: a patient-scoped token learns nothing
   * about deleted records of compartment types (404 rather than 410, and left out of lists).
   */
  maySeeDeletion(user: AuthenticatedUser, type: string, interaction: FhirInteraction): boolean {
    return !this.confinesTo(user, type, interaction);
  }

  /**
   * Whether the user sees records of this type only in its patient's compartment (a
   * patient-scoped token). Such a user sees a record's earlier versions only while the record,
   * as it is now, is live and in that compartment: a result filed under the wrong patient and
   * moved to the right one, or deleted, was read and listed through its old versions until
   * 2026-12-07, when its read and its history answered 404.
   */
  confinesTo(user: AuthenticatedUser, type: string, interaction: FhirInteraction): boolean {
    return isPatientConfined(user.scopes, user.patient, type, interaction) && this.confines(type);
  }

  /**
   * Whether a record, as it is now (`current`: its live content), may show its versions to the
   * user (see confinesTo); deleted, it shows none to a user confined to a compartment.
   */
  showsVersionsNow(
    user: AuthenticatedUser,
    type: string,
    current: FhirResource | undefined,
    interaction: FhirInteraction,
    context?: FhirResource,
  ): boolean {
    if (!this.confinesTo(user, type, interaction)) return true;
    if (current === undefined) return false;
    return this.isInCompartment(user, current, this.patientsOf(current, context), interaction);
  }

  /**
   * Whether a search's SQL applies every rule of who may list this type, so that its count
   * counts only what the caller may see. Not a Binary's: its patient and restriction are its
   * securityContext's, another resource's, read once the Binary is (see SecurityContexts).
   */
  countsInSql(type: string): boolean {
    return type !== 'Binary';
  }

  /**
   * Whether a search of this type lists nothing to the user: a patient-scoped token's of
   * Subscriptions and the other types IN_NO_COMPARTMENT, confined (see confines) yet in no
   * patient's compartment. Said to the SQL, so that a count counts nothing either: it counted
   * every clinician's Subscriptions until 2026-12-06.
   */
  listsNone(user: AuthenticatedUser, type: string): boolean {
    return (
      IN_NO_COMPARTMENT.has(type) && isPatientConfined(user.scopes, user.patient, type, 'search')
    );
  }

  /**
   * For a list of these types' records (their history), what its SQL may leave out for the
   * user (see CompartmentScope); undefined when the user is confined to no compartment. It
   * leaves out only what the check of each row read would: a version is listed while its
   * record, as it is now (its search index), is in the compartment and not restricted.
   */
  compartmentScope(
    user: AuthenticatedUser,
    types: readonly string[],
    interaction: FhirInteraction,
  ): CompartmentScope | undefined {
    const confined = types.filter((type) => this.confinesTo(user, type, interaction));
    if (confined.length === 0 || user.patient === undefined) return undefined;
    const linked: CompartmentScope['linked'] = [];
    const none: string[] = [];
    for (const type of confined) {
      if (type === 'Binary') continue;
      if (this.compartment.hasCompartment(type)) {
        const params = this.compartment.paramsOf(type);
        linked.push({ type, params, sole: MEMBER_LISTS.has(type) });
      } else {
        none.push(type);
      }
    }
    const scope = { patient: user.patient, linked, none };
    return confined.includes('Binary') ? { ...scope, binaries: this.binaryContexts() } : scope;
  }

  /** CompartmentScope.binaries: what a Binary's context may be to be the patient's. */
  binaryContexts(): NonNullable<CompartmentScope['binaries']> {
    const contextLinks = [...this.compartment.linkedTypes()].flatMap(([type, params]) =>
      params.map((param) => ({ type, param })),
    );
    // A Binary naming a Binary is its context's direct patient's (patientsOf, one level).
    contextLinks.push({ type: 'Binary', param: SECURITY_CONTEXT_PARAM });
    return { contextLinks };
  }

  /** Whether records of this type are shared by every patient (Practitioner, Medication). */
  isShared(type: string): boolean {
    return !this.confines(type);
  }

  /**
   * Whether a patient-scoped token sees resources of this type only in its compartment. The
   * types IN_NO_COMPARTMENT are in no one's: a patient's app neither lists nor takes over a
   * clinician's Subscription, nor reads another patient's document kept as a Bundle.
   */
  private confines(type: string): boolean {
    return (
      type === 'Binary' || IN_NO_COMPARTMENT.has(type) || this.compartment.hasCompartment(type)
    );
  }

  /**
   * Whether a version may appear in a list (history): no restricted records, no other patients.
   * `record: false` is for a list paged after the check: `recordListed` then records the page.
   */
  isListable(
    user: AuthenticatedUser,
    resource: FhirResource,
    record = true,
    context?: FhirResource,
    interaction: FhirInteraction = 'search',
  ): boolean {
    const patients = this.patientsOf(resource, context);
    const listable =
      this.isInCompartment(user, resource, patients, interaction) &&
      !isRestrictedIn(resource, context);
    // What a list leaves out was not disclosed: only listed resources are recorded.
    if (listable && record) this.audit.touch(resource, patients);
    return listable;
  }

  /**
   * Records the patients whose records a count covered, though it listed none: `_summary=count`
   * by a name, an MRN or a diagnosis says something about each (until 2026-12-06 such a count
   * named no patient, and was in no patient's accounting of disclosures).
   */
  recordCounted(patients: Iterable<string>): void {
    for (const patient of patients) this.audit.touchPatient(patient);
  }

  /** The patients of a resource, for a count that includes it (see recordCounted). */
  patientsCounted(resource: FhirResource): string[] {
    return this.patientsOf(resource);
  }

  /**
   * Records a resource found listable (isListable with `record: false`) as disclosed; `context`
   * as isListable was given it (a Binary's document, whose patients it names).
   */
  recordListed(resource: FhirResource, context?: FhirResource): void {
    this.audit.touch(resource, this.patientsOf(resource, context));
  }

  /** The compartment check, recording the resource as touched (a denied one too). */
  private checkInCompartment(
    user: AuthenticatedUser,
    resource: FhirResource,
    interaction: FhirInteraction,
    context?: FhirResource,
  ): string[] {
    const patients = this.patientsOf(resource, context);
    this.audit.touch(resource, patients);
    if (!this.isInCompartment(user, resource, patients, interaction)) {
      if (WRITES.has(interaction) && !this.confines(resource.resourceType)) {
        throw AppError.forbidden(SHARED_RECORDS);
      }
      throw AppError.notFound(`${resource.resourceType} resource not found`);
    }
    return patients;
  }

  /**
   * The patients whose compartment holds the resource, evaluated once per check: the
   * compartment rule, break-glass and the audit trail all use the same list. Types outside the
   * Patient compartment (Medication, Organization...) hold no patient's data: a patient-scoped
   * token may see them. Binary, outside it in R4, holds a document's bytes: its patients are
   * the one its securityContext names (`Patient/…`), or those of the resource it names, when
   * the caller loaded that (`context`).
   */
  patientsOf(resource: FhirResource, context?: FhirResource): string[] {
    if (resource.resourceType === 'Binary') {
      const direct = patientIdOf(resource['securityContext']);
      const patients = new Set([
        ...(direct ? [direct] : []),
        ...(context ? this.patientsOf(context) : []),
      ]);
      return [...patients];
    }
    return this.compartment.hasCompartment(resource.resourceType)
      ? this.compartment.patientsOf(resource)
      : [];
  }

  /**
   * Whether a patient-scoped token may write this content: a record of its patient's
   * compartment that names no other patient the record did not name already (an Observation
   * about B naming A as performer is in A's compartment, yet writes into B's record; a merged
   * Patient's `link` stays). Shared types it changes none of (see isInCompartment).
   */
  private mayWriteWithin(
    user: AuthenticatedUser,
    next: FhirResource,
    patients: string[],
    current: FhirResource | undefined,
    interaction: FhirInteraction,
  ): boolean {
    if (!isPatientConfined(user.scopes, user.patient, next.resourceType, interaction)) return true;
    if (!this.confines(next.resourceType)) return false;
    const named = new Set([user.patient, ...(current ? this.patientsOf(current) : [])]);
    return patients.includes(user.patient!) && patients.every((patient) => named.has(patient));
  }

  /**
   * Types outside any patient compartment (Practitioner, Organization, Medication) are shared:
   * a patient-scoped token reads them, and changes none of them, whatever its letters say.
   */
  private isInCompartment(
    user: AuthenticatedUser,
    resource: FhirResource,
    patients: string[],
    interaction: FhirInteraction,
  ): boolean {
    if (!isPatientConfined(user.scopes, user.patient, resource.resourceType, interaction)) {
      return true;
    }
    if (!this.confines(resource.resourceType)) return !WRITES.has(interaction);
    if (MEMBER_LISTS.has(resource.resourceType)) {
      return patients.length > 0 && patients.every((patient) => patient === user.patient);
    }
    return patients.includes(user.patient!);
  }
}
