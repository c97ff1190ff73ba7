import { conditionalReferences } from './conditional-references.js';

describe('conditionalReferences', () => {
  it('finds Type?criteria references at any depth, with the path of the element holding them', () => {
    const found = conditionalReferences({
      resourceType: 'DiagnosticReport',
      subject: { reference: 'Patient?identifier=http://mrn|1' },
      result: [{ reference: 'Observation/1' }, { reference: 'Observation?code=x&date=2024' }],
      contained: [
        { resourceType: 'Observation', performer: [{ reference: 'Practitioner?identifier=9' }] },
      ],
    });
    expect(found).toEqual([
      {
        path: 'DiagnosticReport.subject',
        reference: 'Patient?identifier=http://mrn|1',
        type: 'Patient',
        criteria: 'identifier=http://mrn|1',
      },
      {
        path: 'DiagnosticReport.result',
        reference: 'Observation?code=x&date=2024',
        type: 'Observation',
        criteria: 'code=x&date=2024',
      },
      {
        path: 'DiagnosticReport.contained.performer',
        reference: 'Practitioner?identifier=9',
        type: 'Practitioner',
        criteria: 'identifier=9',
      },
    ]);
  });

  it('leaves literal, absolute, urn:uuid and contained references alone', () => {
    expect(
      conditionalReferences({
        resourceType: 'Observation',
        subject: { reference: 'Patient/123' },
        focus: [
          { reference: 'https://other.example/fhir/Patient/9' },
          { reference: 'urn:uuid:0b5e1a52-3f5c-4a4e-9a9a-2f1d6c3b7e10' },
          { reference: '#contained-1' },
          { reference: 'patient?identifier=lowercase-is-not-a-type' },
          { reference: 'Patient?' },
        ],
        note: [{ text: 'Patient?identifier=in a string that is not a reference' }],
      }),
    ).toEqual([]);
    expect(conditionalReferences(undefined)).toEqual([]);
  });

  it("leaves a Bundle resource's entries as they are (a document kept as sent)", () => {
    expect(
      conditionalReferences({
        resourceType: 'Bundle',
        type: 'document',
        entry: [
          { resource: { resourceType: 'Composition', subject: { reference: 'Patient?x=1' } } },
        ],
      }),
    ).toEqual([]);
  });
});
