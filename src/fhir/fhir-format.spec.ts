import { negotiateJson } from './fhir-format.js';

const FHIR = 'application/fhir+json';
const PLAIN = 'application/json';

describe('negotiateJson: the JSON media type an Accept header is answered in', () => {
  it.each([
    [undefined, FHIR],
    ['', FHIR],
    ['application/fhir+json', FHIR],
    ['APPLICATION/FHIR+JSON', FHIR],
    ['application/json+fhir', FHIR],
    ['application/json', PLAIN],
    ['*/*', FHIR],
    ['application/*', FHIR],
    // Weighed alike (axios, a browser): FHIR's own type is preferred.
    ['application/json, text/plain, */*', FHIR],
    ['text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8', FHIR],
    ['application/fhir+json;q=0.1, application/json;q=0.9', PLAIN],
    ['application/fhir+json;q=0.9, application/json', PLAIN],
    [' application/fhir+json ; q = 0.5 , application/json;q=0.4', FHIR],
    // q=0 refuses a type (RFC 9110 section 12.4.2), and a more specific range overrides a
    // broader one (section 12.5.1).
    ['application/fhir+json;q=0, */*', PLAIN],
    ['application/fhir+json;q=0, application/json', PLAIN],
    ['application/json;q=0, */*', FHIR],
    ['application/*;q=0, application/json', PLAIN],
    ['*/*;q=0, application/fhir+json', FHIR],
    ['application/fhir+json;q=0.000, */*;q=0.5', PLAIN],
    // The versions: R4 (4.0, 4.0.1) is served; a range naming another matches nothing.
    ['application/fhir+json; fhirVersion=4.0', FHIR],
    ['application/fhir+json; fhirVersion="4.0.1"', FHIR],
    ['application/fhir+json; fhirVersion=3.0, application/fhir+json; fhirVersion=4.0;q=0.5', FHIR],
    ['application/fhir+json; fhirVersion=5.0, */*;q=0.1', FHIR],
    ['application/fhir+json;q=0.2, application/fhir+json;fhirVersion=4.0', FHIR],
  ])('%p is answered as %p', (accept, type) => {
    expect(negotiateJson(accept)).toBe(type);
  });

  it.each([
    'application/fhir+json;q=0',
    'application/fhir+json;q=0, application/json;q=0, */*',
    'application/fhir+json;fhirVersion=4.0;q=0, application/fhir+json',
    '*/*;q=0',
    'text/html',
    'application/fhir+xml',
    'application/fhir+json; fhirVersion=5.0',
    'application/xml, text/*',
  ])('%p takes neither: a 406', (accept) => {
    expect(negotiateJson(accept)).toBeUndefined();
  });
});
