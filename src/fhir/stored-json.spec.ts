import { fhirJson, parseStored } from './stored-json.js';

const searchset = (entry: unknown[]) => ({
  resourceType: 'Bundle',
  id: 'b1',
  type: 'searchset',
  // A client's search text comes before the entries: it cannot pass for a stored resource.
  link: [{ relation: 'self', url: 'http://x/fhir/Patient?name="stored-json:"' }],
  entry,
});

describe('fhirJson', () => {
  it('sends stored entries as their stored text, and the same JSON value as JSON.stringify', () => {
    // Spaced as no serializer would write it: proof that the text itself went out.
    const text = '{ "resourceType": "Patient", "id": "p1", "name": [{ "family": "Ünal\\u2028" }] }';
    const stored = parseStored<{ id: string }>(text);
    const bundle = searchset([
      { fullUrl: 'http://x/fhir/Patient/p1', resource: stored, search: { mode: 'match' } },
      { fullUrl: 'http://x/fhir/Patient/p2', resource: { resourceType: 'Patient', id: 'p2' } },
      { resource: { resourceType: 'OperationOutcome', issue: [] }, search: { mode: 'outcome' } },
    ]);
    const json = fhirJson(bundle);
    expect(json).toContain(`"resource":${text},"search"`);
    expect(JSON.parse(json)).toEqual(JSON.parse(JSON.stringify(bundle)));
  });

  it('serializes a changed copy from the object, not from the text it was copied from', () => {
    const stored = parseStored<Record<string, unknown>>('{"resourceType":"Patient","id":"p1"}');
    const copy = { ...stored, active: true };
    const json = fhirJson(searchset([{ resource: copy }, { resource: stored }]));
    expect(JSON.parse(json).entry).toEqual([
      { resource: { resourceType: 'Patient', id: 'p1', active: true } },
      { resource: { resourceType: 'Patient', id: 'p1' } },
    ]);
  });

  it('is JSON.stringify for anything else', () => {
    const outcome = { resourceType: 'OperationOutcome', issue: [{ severity: 'error' }] };
    for (const payload of [outcome, searchset([]), { entry: 'x' }, null, 'text', 3]) {
      expect(fhirJson(payload)).toBe(JSON.stringify(payload));
    }
  });
});
