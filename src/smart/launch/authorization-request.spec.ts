import { checkAuthorizationRequest, isAuthorizationRequest } from './authorization-request.js';

const BASE = 'https://ehr.example/fhir';
const CHALLENGE = 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM';

const request = (overrides: Record<string, unknown> = {}): Record<string, unknown> => ({
  response_type: 'code',
  scope: 'launch/patient patient/*.rs',
  state: 'abc',
  aud: BASE,
  code_challenge: CHALLENGE,
  code_challenge_method: 'S256',
  ...overrides,
});

describe('checkAuthorizationRequest', () => {
  it('accepts a standalone launch, granting the scope within the registration', () => {
    expect(
      checkAuthorizationRequest(
        request({ scope: 'launch/patient patient/*.cruds openid', nonce: 'n1', aud: `${BASE}/` }),
        'launch/patient patient/*.rs',
        BASE,
      ),
    ).toEqual({
      scope: 'launch/patient patient/*.rs',
      state: 'abc',
      codeChallenge: CHALLENGE,
      nonce: 'n1',
    });
  });

  it('carries an EHR launch with its scope', () => {
    expect(
      checkAuthorizationRequest(
        request({ scope: 'launch patient/*.rs', launch: 'sealed' }),
        'launch patient/*.rs',
        BASE,
      ),
    ).toMatchObject({ scope: 'launch patient/*.rs', launch: 'sealed' });
    expect(
      checkAuthorizationRequest(
        request({ scope: 'launch patient/*.rs' }),
        'launch patient/*.rs',
        BASE,
      ),
    ).toMatchObject({ error: 'invalid_scope' });
  });

  it.each([
    [{ response_type: 'token' }, 'unsupported_response_type'],
    [{ response_type: undefined }, 'unsupported_response_type'],
    [{ state: undefined }, 'invalid_request'],
    [{ state: 'x'.repeat(1025) }, 'invalid_request'],
    [{ state: ['a', 'b'] }, 'invalid_request'],
    [{ scope: ['patient/*.rs', 'user/*.rs'] }, 'invalid_request'],
    [{ nonce: 'n'.repeat(1025) }, 'invalid_request'],
    [{ launch: 'abc' }, 'invalid_scope'],
    [{ aud: 'https://other.example/fhir' }, 'invalid_request'],
    [{ aud: undefined }, 'invalid_request'],
    [{ code_challenge_method: 'plain' }, 'invalid_request'],
    [{ code_challenge: 'short' }, 'invalid_request'],
    [{ code_challenge: undefined }, 'invalid_request'],
    [{ scope: 'openid offline_access' }, 'invalid_scope'],
    [{ scope: 'system/*.rs' }, 'invalid_scope'],
  ])('refuses %p with %s, keeping the state it can', (overrides, error) => {
    const result = checkAuthorizationRequest(
      request(overrides),
      'launch/patient patient/*.rs',
      BASE,
    );
    expect(result).toMatchObject({ error });
    const given = 'state' in overrides ? (overrides as { state?: unknown }).state : 'abc';
    expect((result as { state?: string }).state).toBe(
      typeof given === 'string' ? given : undefined,
    );
  });
});

describe('isAuthorizationRequest', () => {
  it('tells an authorization request posted as a form from the sign-in form', () => {
    expect(isAuthorizationRequest(request({ client_id: 'a' }))).toBe(true);
    // The sign-in form carries the sealed request (and whatever else a client adds).
    expect(isAuthorizationRequest({ request: 'sealed', username: 'u' })).toBe(false);
    expect(isAuthorizationRequest(request({ request: 'sealed' }))).toBe(false);
    expect(isAuthorizationRequest({ username: 'u' })).toBe(false);
    expect(isAuthorizationRequest(undefined)).toBe(false);
  });
});
