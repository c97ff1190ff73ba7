import { awaitsAuthentication } from './refused-before-authentication.js';

describe('awaitsAuthentication: which refusals made before the guard give way to a 401', () => {
  it.each([
    ['/fhir/$foo', 400],
    ['/fhir/Patient/1/$foo?x=1', 400],
    ['/fhir/Patient/1/$everything', 405],
    ['/fhir/Patient', 406],
    ['/fhir/Patient', 413],
    ['/fhir/Patient', 415],
    ['/fhir/no/such/path', 404],
    ['/fhir/Patient/%FF', 400],
    ['/fhir', 405],
    ['/fhir/', 404],
    ['/admin/users', 405],
    ['/admin/users/someone/disable', 415],
    ['/admin/nothing', 404],
    ['/admin', 404],
    ['/subscriptions', 405],
    ['/subscriptions/x', 404],
    ['/hl7/v2', 415],
    ['/hl7/messages/x/reprocess', 400],
    ['/hl7/outbox/x/resend', 405],
    ['/auth/token/scoped', 415],
    ['/auth/mfa/enroll', 405],
    ['/auth/break-glass', 400],
    ['/auth/launch', 405],
    ['/auth/nothing', 404],
    ['/%61dmin/users', 405],
  ])('%s refused with %i', (url, status) => {
    expect(awaitsAuthentication(url, status)).toBe(true);
  });

  it.each([
    ['/fhir/metadata', 405],
    ['/fhir/metadata/', 405],
    ['/fhir/metadata?_format=xml', 406],
    ['/fhir/%24versions', 405],
    ['/fhir/.well-known/smart-configuration', 405],
    ['/auth/login', 400],
    ['/auth/login/mfa', 405],
    ['/auth/refresh', 415],
    ['/auth/token', 405],
    ['/auth/logout', 400],
    ['/auth/authorize', 415],
  ])('keeps the refusal of the public %s', (url, status) => {
    expect(awaitsAuthentication(url, status)).toBe(false);
  });

  it.each([
    ['/fhir/Patient', 401],
    ['/fhir/Patient', 429],
    ['/fhir/Patient', 503],
    ['/fhir/Patient', 200],
    ['/health', 405],
    ['/fhirish', 404],
    ['/administrator', 404],
    ['/hl7v2', 404],
    ['/health/x', 404],
    ['/metrics', 405],
    ['/.well-known/jwks.json', 405],
    ['/.well-known/nothing', 404],
    ['/smart/style.json', 405],
    ['/docs/nothing', 404],
    ['/no/such/route', 404],
  ])('keeps %s refused with %i as it is', (url, status) => {
    expect(awaitsAuthentication(url, status)).toBe(false);
  });
});
