import { isMalformedRelative, literalReference, setOwnFhirBase } from './literal-reference.js';

describe('literalReference', () => {
  afterEach(() => setOwnFhirBase(undefined));

  it('reads an absolute URL by its type and id while this server has no known base', () => {
    expect(literalReference('https://other.example/fhir/Patient/p4')).toEqual({
      type: 'Patient',
      id: 'p4',
      absolute: true,
      foreign: false,
    });
  });

  it("keeps another server's resource apart from this one's once PUBLIC_URL names it", () => {
    setOwnFhirBase('https://EHR.example.org/');
    expect(literalReference('https://ehr.example.org/fhir/Patient/p4')).toEqual({
      type: 'Patient',
      id: 'p4',
      absolute: true,
      foreign: false,
    });
    expect(literalReference('https://EHR.Example.ORG/fhir/Patient/p4')?.id).toBe('p4');
    // The same host under http, or with its default port: a TLS proxy's clients see either.
    for (const own of [
      'http://ehr.example.org/fhir/Patient/p4',
      'https://ehr.example.org:443/fhir/Patient/p4',
    ]) {
      expect(literalReference(own)).toMatchObject({ id: 'p4', foreign: false });
    }
    for (const [reference, id] of [
      ['https://other.example/fhir/Patient/p4', 'https://other.example/fhir/Patient/p4'],
      ['https://other.example/fhir/Patient/p4/_history/2', 'https://other.example/fhir/Patient/p4'],
      ['https://Other.EXAMPLE:443/fhir/Patient/p4', 'https://other.example/fhir/Patient/p4'],
      ['https://ehr.example.org/r4/Patient/p4', 'https://ehr.example.org/r4/Patient/p4'],
      [
        'https://ehr.example.org:8443/fhir/Patient/p4',
        'https://ehr.example.org:8443/fhir/Patient/p4',
      ],
    ]) {
      expect(literalReference(reference!)).toEqual({
        type: 'Patient',
        id,
        absolute: true,
        foreign: true,
      });
    }
    // An index key has a size limit: a longer URL of another server is read as no reference.
    expect(
      literalReference(`https://other.example/${'x'.repeat(1100)}/Patient/p4`),
    ).toBeUndefined();
    expect(literalReference('Patient/p4')).toEqual({
      type: 'Patient',
      id: 'p4',
      absolute: false,
      foreign: false,
    });
  });
});

describe('isMalformedRelative', () => {
  it('takes what R4 reads as a reference, and a conditional one, which a transaction resolves', () => {
    for (const reference of [
      'Patient/p4',
      'Patient/p4/_history/2',
      '#m1',
      'Patient?identifier=urn:oid:1.2|123',
      'urn:uuid:6e6b8a8c-2b1f-4c59-9d3e-0b1f0c1a2b3c',
      'https://other.example/fhir/Patient/p4',
    ]) {
      expect([reference, isMalformedRelative(reference)]).toEqual([reference, false]);
    }
  });

  it('refuses a relative reference with a query, which names no resource and is no conditional one', () => {
    for (const reference of [
      'Patient/p4?x=1',
      'Patient/p4/_history/2?x',
      'patient?x=1',
      '?x=1',
      'Patient?',
    ]) {
      expect([reference, isMalformedRelative(reference)]).toEqual([reference, true]);
    }
  });
});
