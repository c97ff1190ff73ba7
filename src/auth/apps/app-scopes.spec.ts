import { AppError } from '../../common/errors/app-error.js';
import { format, grantAppScope, narrowedGrant, registeredAppScope } from './app-scopes.js';

describe('SMART app scopes', () => {
  it('normalizes a registration to v2 resource scopes and the launch scopes', () => {
    expect(
      registeredAppScope('launch/patient patient/*.read  offline_access user/Observation.rs'),
    ).toBe('launch/patient offline_access patient/*.rs user/Observation.rs');
  });

  it.each([
    [''],
    ['system/*.rs'],
    ['patient/*.rs profile'],
    ['patient/Observation.rs?category=laboratory'],
    ['launch/encounter'],
  ])('refuses the registration %p', (scope) => {
    expect(() => registeredAppScope(scope)).toThrow(AppError);
  });

  it('grants what both the request and the registration allow, narrowing each scope', () => {
    const granted = grantAppScope(
      'launch/patient patient/*.cruds openid fhirUser online_access user/Patient.rs',
      'launch/patient patient/Observation.rs patient/Patient.r offline_access',
    );
    expect(format(granted)).toBe('launch/patient patient/Observation.rs patient/Patient.r');
  });

  it('grants fhirUser only with openid, which carries it', () => {
    const registered = 'openid fhirUser patient/*.rs';
    expect(format(grantAppScope('fhirUser patient/*.rs', registered))).toBe('patient/*.rs');
    expect(format(grantAppScope('openid fhirUser patient/*.rs', registered))).toBe(
      'openid fhirUser patient/*.rs',
    );
  });

  it('grants no resource scope the registration lacks', () => {
    expect(grantAppScope('user/*.rs system/*.rs', 'patient/*.rs').resources).toEqual([]);
  });
});

describe('narrowedGrant', () => {
  const grant = 'launch/patient offline_access patient/*.rs patient/Observation.rs';

  it('takes the grant itself, and narrower scopes in the words asked', () => {
    expect(narrowedGrant(grant, grant)).toBe(grant);
    expect(narrowedGrant(grant, 'patient/Observation.r')).toBe('patient/Observation.r');
    expect(narrowedGrant(grant, 'patient/Patient.read')).toBe('patient/Patient.read');
    expect(narrowedGrant(grant, 'offline_access patient/*.s')).toBe('offline_access patient/*.s');
  });

  it('refuses anything wider, another context, or a scope it does not know', () => {
    for (const asked of [
      'patient/*.cruds',
      'patient/Observation.c',
      'user/Observation.rs',
      'openid',
      'system/*.rs',
      'patient/*.rs nonsense',
      '',
    ]) {
      expect({ asked, narrowed: narrowedGrant(grant, asked) }).toEqual({
        asked,
        narrowed: undefined,
      });
    }
    // `*` is covered by `*` alone.
    expect(narrowedGrant('patient/Observation.rs', 'patient/*.rs')).toBeUndefined();
  });
});
