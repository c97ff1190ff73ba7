import {
  formatScope,
  grantedScopes,
  isPatientConfined,
  parseScopes,
  scopesAllow,
} from './smart-scopes.js';

describe('SMART scopes', () => {
  it('parses v2 and v1 resource scopes and drops the rest', () => {
    const scopes = parseScopes(
      'openid patient/Observation.rs user/*.read launch junk/x.y system/Patient.c',
    );
    expect(scopes?.map((s) => `${s.context}/${s.type}.${[...s.permissions].join('')}`)).toEqual([
      'patient/Observation.rs',
      'user/*.rs',
      'system/Patient.c',
    ]);
    expect(parseScopes(undefined)).toBeUndefined();
    expect(parseScopes('')).toEqual([]);
  });

  it('allows only what a scope grants', () => {
    const scopes = parseScopes('user/Observation.rs user/Patient.r');
    expect(scopesAllow(scopes, false, 'Observation', 'search')).toBe(true);
    expect(scopesAllow(scopes, false, 'Observation', 'read')).toBe(true);
    expect(scopesAllow(scopes, false, 'Observation', 'create')).toBe(false);
    expect(scopesAllow(scopes, false, 'Patient', 'search')).toBe(false);
    expect(scopesAllow(scopes, false, 'Condition', 'read')).toBe(false);
    expect(scopesAllow(parseScopes('user/*.cruds'), false, 'Condition', 'delete')).toBe(true);
    expect(scopesAllow(undefined, false, 'Condition', 'delete')).toBe(true);
    expect(scopesAllow([], false, 'Condition', 'read')).toBe(false);
  });

  it('counts patient scopes only with a patient in context, and confines such tokens', () => {
    const scopes = parseScopes('patient/*.rs');
    expect(scopesAllow(scopes, false, 'Observation', 'read')).toBe(false);
    expect(scopesAllow(scopes, true, 'Observation', 'read')).toBe(true);
    expect(isPatientConfined(scopes, 'p1', 'Observation', 'read')).toBe(true);
    expect(isPatientConfined(undefined, 'p1', 'Observation', 'read')).toBe(false);
    expect(isPatientConfined(scopes, undefined, 'Observation', 'read')).toBe(false);
  });

  it('grants nothing for a scope narrowed by search parameters, rather than the whole type', () => {
    expect(parseScopes('patient/Observation.rs?category=laboratory patient/Patient.r')).toEqual([
      { context: 'patient', type: 'Patient', permissions: new Set(['r']) },
    ]);
  });

  it('frees from the patient only what a user/ or system/ scope allows itself', () => {
    const mixed = parseScopes('patient/*.rs user/Patient.r user/Observation.c');
    // Observations are read as the patient's only; other patients' are not reachable.
    expect(isPatientConfined(mixed, 'p1', 'Observation', 'read')).toBe(true);
    expect(isPatientConfined(mixed, 'p1', 'Observation', 'search')).toBe(true);
    // What the user/ scopes allow is the user's, as without a patient.
    expect(isPatientConfined(mixed, 'p1', 'Patient', 'read')).toBe(false);
    expect(isPatientConfined(mixed, 'p1', 'Observation', 'create')).toBe(false);
    expect(isPatientConfined(mixed, 'p1', 'Patient', 'search')).toBe(true);
  });

  it('grants what was requested within what is allowed, never more', () => {
    const grant = (requested: string, allowed: string): string[] =>
      grantedScopes(parseScopes(requested)!, parseScopes(allowed)!).map(formatScope);
    expect(grant('system/*.cruds', 'system/*.rs')).toEqual(['system/*.rs']);
    expect(grant('system/*.rs', 'system/Observation.cruds system/Patient.r')).toEqual([
      'system/Observation.rs',
      'system/Patient.r',
    ]);
    expect(grant('system/Observation.read', 'system/*.rs')).toEqual(['system/Observation.rs']);
    expect(grant('system/Observation.c system/Patient.rs', 'system/*.rs')).toEqual([
      'system/Patient.rs',
    ]);
    expect(grant('system/*.r system/*.s', 'system/*.cruds')).toEqual(['system/*.rs']);
    expect(grant('system/Patient.c', 'system/*.rs')).toEqual([]);
    expect(grant('user/*.rs', 'system/*.rs')).toEqual([]);
  });
});
