import type { AuthenticatedUser } from './authenticated-user.js';
import type { FhirInteraction } from './permissions.js';

/** A SMART on FHIR resource scope: `patient/Observation.rs`, `user/*.cruds`, `system/*.read`. */
export interface SmartScope {
  context: 'patient' | 'user' | 'system';
  type: string;
  /** SMART v2 permission letters: c create, r read, u update, d delete, s search. */
  permissions: ReadonlySet<string>;
  /** Written in SMART v1 (`.read`, `.write`, `.*`): what is granted of it is answered so. */
  v1?: boolean;
}

const SCOPE = /^(patient|user|system)\/([A-Z][A-Za-z]{0,63}|\*)\.(read|write|\*|c?r?u?d?s?)$/;

const V1: Record<string, string> = { read: 'rs', write: 'cud', '*': 'cruds' };

/** The letter an interaction needs (history and export are reads of what search would find). */
const LETTER: Record<FhirInteraction, string> = {
  create: 'c',
  read: 'r',
  update: 'u',
  delete: 'd',
  search: 's',
  history: 'r',
  export: 's',
};

/**
 * The resource scopes of a token's space-separated `scope` claim. Other scopes (openid,
 * offline_access, launch...) and malformed ones grant nothing and are dropped, and so are SMART
 * v2 scopes narrowed by search parameters (`patient/Observation.rs?category=laboratory`): they
 * are not enforced here, and read without their parameters they would grant more than asked.
 * Undefined when the token has no `scope` claim, which means "the role's rights" (CareVault's
 * own logins).
 */
export function parseScopes(claim: unknown): SmartScope[] | undefined {
  if (typeof claim !== 'string') {
    return undefined;
  }
  const scopes: SmartScope[] = [];
  for (const item of claim.split(/\s+/)) {
    const [, context, type, permissions] = SCOPE.exec(item) ?? [];
    if (context && type && permissions !== undefined && permissions !== '') {
      scopes.push({
        context: context as SmartScope['context'],
        type,
        permissions: new Set(V1[permissions] ?? permissions),
        ...(V1[permissions] !== undefined ? { v1: true } : {}),
      });
    }
  }
  return scopes;
}

/**
 * Whether the scopes allow an interaction on a type. `patient/` scopes count only when the
 * token names its patient; undefined scopes leave the decision to the role alone.
 */
export function scopesAllow(
  scopes: readonly SmartScope[] | undefined,
  hasPatientContext: boolean,
  type: string,
  interaction: FhirInteraction,
): boolean {
  if (scopes === undefined) {
    return true;
  }
  return scopes.some(
    (scope) =>
      (scope.context !== 'patient' || hasPatientContext) &&
      (scope.type === '*' || scope.type === type) &&
      scope.permissions.has(LETTER[interaction]),
  );
}

/**
 * Whether an interaction on a type is confined to the token's patient's compartment: the token
 * names a patient and only its `patient/` scopes allow it. A `user/` or `system/` scope frees
 * what it allows itself and nothing else: with `patient/Observation.rs user/Practitioner.rs`,
 * Observations stay the patient's (they reached every patient's when any scope was not a
 * `patient/` one).
 */
export function isPatientConfined(
  scopes: readonly SmartScope[] | undefined,
  patient: string | undefined,
  type: string,
  interaction: FhirInteraction,
): boolean {
  return (
    patient !== undefined &&
    scopes !== undefined &&
    !scopes.some(
      (scope) =>
        scope.context !== 'patient' &&
        (scope.type === '*' || scope.type === type) &&
        scope.permissions.has(LETTER[interaction]),
    )
  );
}

const LETTERS = 'cruds';

/** A scope as SMART v2 spells it: `system/Observation.rs` (letters in c r u d s order). */
export function formatScope(scope: SmartScope): string {
  const letters = [...LETTERS].filter((letter) => scope.permissions.has(letter)).join('');
  return `${scope.context}/${scope.type}.${letters}`;
}

/**
 * A granted scope in the words it was asked in: a v1 request (`patient/*.read`) is answered
 * `patient/*.read` when the grant is exactly what a v1 word means, else in v2 letters. A v1
 * app (and the (g)(10) test kit's SMART v1 launch) reads `read` and `write` only: answered
 * `patient/*.rs`, it found none of the scopes it asked for granted.
 */
export function formatGrantedScope(scope: SmartScope): string {
  const letters = [...LETTERS].filter((letter) => scope.permissions.has(letter)).join('');
  const word = scope.v1 ? Object.keys(V1).find((key) => V1[key] === letters) : undefined;
  return word ? `${scope.context}/${scope.type}.${word}` : formatScope(scope);
}

/**
 * What may be granted of the requested scopes within the allowed ones: for each pair of the
 * same context, the narrower type and the permissions both have. `system/*.rs` requested of a
 * client allowed `system/Observation.cruds` gives `system/Observation.rs`.
 */
export function grantedScopes(
  requested: readonly SmartScope[],
  allowed: readonly SmartScope[],
): SmartScope[] {
  const granted = new Map<string, SmartScope>();
  for (const want of requested) {
    for (const may of allowed) {
      if (want.context !== may.context) continue;
      if (want.type !== '*' && may.type !== '*' && want.type !== may.type) continue;
      const permissions = new Set([...want.permissions].filter((p) => may.permissions.has(p)));
      if (permissions.size === 0) continue;
      const scope: SmartScope = {
        context: want.context,
        type: want.type === '*' ? may.type : want.type,
        permissions,
        ...(want.v1 ? { v1: true } : {}),
      };
      const key = `${scope.context}/${scope.type}`;
      const merged = granted.get(key);
      granted.set(
        key,
        merged
          ? {
              ...scope,
              permissions: new Set([...merged.permissions, ...permissions]),
              v1: merged.v1 === true && scope.v1 === true,
            }
          : scope,
      );
    }
  }
  return [...granted.values()];
}

/** SMART launch context of a token: its resource scopes and the patient in context, if any. */
export function smartContext(
  scope: unknown,
  patient: unknown,
): Pick<AuthenticatedUser, 'scopes' | 'patient'> {
  const scopes = parseScopes(scope);
  return {
    ...(scopes !== undefined ? { scopes } : {}),
    ...(typeof patient === 'string' && patient.length > 0 ? { patient } : {}),
  };
}
