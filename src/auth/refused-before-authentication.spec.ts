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
  ])('%s refused with %i', (url, status) => {
    expect(awaitsAuthentication(url, status)).toBe(true);
  });

  it.each([
    ['/fhir/metadata', 405],
    ['/fhir/metadata/', 405],
    ['/fhir/metadata?_format=xml', 406],
    ['/fhir/%24versions', 405],
    ['/fhir/.well-known/smart-configuration', 405],
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
    ['/auth/login', 400],
  ])('keeps %s refused with %i as it is', (url, status) => {
    expect(awaitsAuthentication(url, status)).toBe(false);
  });
});
