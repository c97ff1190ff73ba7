import type { AuthenticatedUser } from './authenticated-user.js';
import type { Role } from './roles.js';
import { isPatientConfined, scopesAllow } from './smart-scopes.js';

/**
 * The permission matrix: every role's rights, in one place. A route declares what it needs
 * (@FhirInteraction or @RequirePermission); a route that declares nothing is denied.
 */

export const FHIR_INTERACTIONS = [
  'read',
  'search',
  'create',
  'update',
  'delete',
  'history',
  'export',
] as const;
export type FhirInteraction = (typeof FHIR_INTERACTIONS)[number];

/** Rights that are not about FHIR resources. */
export const APP_PERMISSIONS = [
  'users:manage',
  'account:self',
  'break-glass',
  'security:label',
  'fhir:bundle',
  'fhir:system',
  'fhir:terminology',
  'hl7:feed',
  'hl7:manage',
  'hl7:dismiss',
  'subscriptions:manage',
] as const;
export type AppPermission = (typeof APP_PERMISSIONS)[number];

interface FhirRule {
  /** Resource types, or '*' for every type except those in `except`. */
  types: '*' | readonly string[];
  except?: readonly string[];
  interactions: readonly FhirInteraction[];
}

const READ: readonly FhirInteraction[] = ['read', 'search', 'history'];
const WRITE: readonly FhirInteraction[] = ['create', 'update'];

/** Who and what a record is about, without clinical content: what billing may read. */
const DEMOGRAPHICS = [
  'Patient',
  'RelatedPerson',
  'Person',
  'Practitioner',
  'PractitionerRole',
  'Organization',
  'Location',
];

const FINANCIAL = [
  'Account',
  'ChargeItem',
  'Claim',
  'ClaimResponse',
  'Coverage',
  'CoverageEligibilityRequest',
  'CoverageEligibilityResponse',
  'EnrollmentRequest',
  'EnrollmentResponse',
  'ExplanationOfBenefit',
  'Invoice',
  'PaymentNotice',
  'PaymentReconciliation',
];

/**
 * The audit trail: readable by auditors only, written by the service itself. Provenance is not
 * part of it: it is who authored a record and from what (an outside source, a transformation),
 * clinical context that those treating the patient read beside it, as US Core's
 * `_revinclude=Provenance:target` asks, and that those who write records may record.
 */
const AUDIT = ['AuditEvent'];

/** What nurses record at the bedside. */
const NURSING = [
  'Observation',
  'Encounter',
  'MedicationAdministration',
  'AllergyIntolerance',
  'Immunization',
  'Condition',
  'Procedure',
];

export const FHIR_PERMISSIONS: Record<Role, readonly FhirRule[]> = {
  // Administrators manage accounts and review the audit trail; minimum necessary: they do
  // not read records.
  admin: [{ types: ['AuditEvent'], interactions: ['read', 'search'] }],
  // Bulk export (with a recent MFA, checked by the export routes) is theirs and exporters'
  // alone: it discloses whole populations, which only those who treat patients, or a system
  // registered for it, may take out.
  doctor: [{ types: '*', except: AUDIT, interactions: [...READ, ...WRITE, 'delete', 'export'] }],
  nurse: [
    { types: '*', except: [...AUDIT, ...FINANCIAL], interactions: READ },
    { types: NURSING, interactions: WRITE },
  ],
  billing: [
    { types: [...DEMOGRAPHICS, ...FINANCIAL], interactions: READ },
    { types: FINANCIAL, interactions: WRITE },
  ],
  auditor: [{ types: [...AUDIT, 'Provenance'], interactions: READ }],
  // System accounts such as the HL7 feed: they file results, they do not delete.
  integration: [{ types: '*', except: AUDIT, interactions: [...READ, ...WRITE] }],
  // System accounts that take population exports (SMART Backend Services clients): they read.
  exporter: [{ types: '*', except: AUDIT, interactions: [...READ, 'export'] }],
};

export const APP_PERMISSION_ROLES: Record<AppPermission, readonly Role[] | 'any'> = {
  'users:manage': ['admin'],
  'account:self': 'any',
  // Emergency access to restricted records, for those who treat patients.
  'break-glass': ['doctor', 'nurse'],
  // Marking a record restricted (meta.security) or lifting it is a clinical decision.
  'security:label': ['doctor'],
  // POST /fhir: the Bundle service checks every entry against the matrix and the scopes.
  'fhir:bundle': 'any',
  // GET /fhir/_history: the service lists only the types the caller may read the history of.
  'fhir:system': 'any',
  // ValueSet/$expand, $validate-code, CodeSystem/$lookup: the R4 definitions, no patient data.
  'fhir:terminology': 'any',
  // HL7 over HTTPS: feeds post as system accounts. Not administrators, who manage accounts and
  // do not write records: a message of theirs wrote results and names, restricted records
  // included, until 2026-12-06.
  'hl7:feed': ['integration'],
  // The stored messages and the outbox (lists, reprocess, resend): administrators look after
  // what the feeds sent, as do the feeds' own accounts.
  'hl7:manage': ['admin', 'integration'],
  // Setting a failed message aside takes it off the error list and its gauge: a person's
  // decision, not a feed account's (one feed would hide another's failures).
  'hl7:dismiss': ['admin'],
  // The list of Subscriptions in error and why (GET /subscriptions): fixed reasons and counts,
  // never an endpoint or criteria, for the administrators who look after the service.
  'subscriptions:manage': ['admin'],
};

export function canAccessFhir(
  roles: readonly Role[],
  type: string,
  interaction: FhirInteraction,
): boolean {
  return roles.some((role) =>
    FHIR_PERMISSIONS[role].some(
      (rule) =>
        rule.interactions.includes(interaction) &&
        (rule.types === '*' ? !(rule.except ?? []).includes(type) : rule.types.includes(type)),
    ),
  );
}

/**
 * Types served apart from the records, which no patient compartment narrows: the audit trail,
 * whose events may each name several patients and the staff who treated them. A token confined
 * to one patient uses none of them: until 2026-12-07 an auditor's or administrator's app given
 * `patient/*.rs` for one patient listed and read every patient's events.
 */
const NOT_CONFINABLE: ReadonlySet<string> = new Set(['AuditEvent']);

/** The matrix for the user's roles, narrowed (never widened) by the token's SMART scopes. */
export function mayUseFhir(
  user: AuthenticatedUser,
  type: string,
  interaction: FhirInteraction,
): boolean {
  return (
    canAccessFhir(user.roles, type, interaction) &&
    scopesAllow(user.scopes, user.patient !== undefined, type, interaction) &&
    !(NOT_CONFINABLE.has(type) && isPatientConfined(user.scopes, user.patient, type, interaction))
  );
}

export function hasAppPermission(roles: readonly Role[], permission: AppPermission): boolean {
  const allowed = APP_PERMISSION_ROLES[permission];
  return allowed === 'any' || roles.some((role) => allowed.includes(role));
}

/** The rights a scoped token keeps besides its FHIR scopes: its own account, Bundles, history. */
const SCOPED_TOKEN_PERMISSIONS: ReadonlySet<AppPermission> = new Set([
  'account:self',
  'fhir:bundle',
  'fhir:system',
]);

/**
 * Whether the token may use a right that is not about FHIR resources. A scoped token (a SMART
 * app's, a backend client's, one exchanged at /auth/token/scoped) is for FHIR data: it does not
 * administer users or break the glass, nor use a grant its person opened (see
 * BreakGlassService.active), whatever its account's roles.
 */
export function mayUseAppPermission(user: AuthenticatedUser, permission: AppPermission): boolean {
  return (
    hasAppPermission(user.roles, permission) &&
    (user.scopes === undefined || SCOPED_TOKEN_PERMISSIONS.has(permission))
  );
}
