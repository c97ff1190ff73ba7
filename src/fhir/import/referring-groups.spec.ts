import { referringGroups } from './referring-groups.js';

const put = (type: string, id: string, resource: Record<string, unknown> = {}) => ({
  resource: { resourceType: type, id, ...resource },
  request: { method: 'PUT', url: `${type}/${id}` },
});
const ids = (groups: { resource?: object }[][]) =>
  groups.map((group) => group.map((entry) => (entry.resource as { id?: string }).id ?? '-'));

describe('referringGroups', () => {
  it('groups entries that refer to one another, either way and through a third', () => {
    const entries = [
      put('Observation', 'o1', { subject: { reference: 'Patient/p1' } }),
      put('Observation', 'orphan', { subject: { reference: 'Patient/none' } }),
      put('Patient', 'p1', { link: [{ other: { reference: 'Patient/p2' } }] }),
      put('Patient', 'p2', { link: [{ other: { reference: 'Patient/p1/_history/3' } }] }),
      { resource: { resourceType: 'Observation', subject: { reference: 'Patient/p2' } } },
    ];
    expect(ids(referringGroups(entries, (entry) => entry))).toEqual([
      ['o1', 'p1', 'p2', '-'],
      ['orphan'],
    ]);
  });

  it('leaves apart entries that only refer to what is not among them', () => {
    const entries = [
      put('Encounter', 'e1', { subject: { reference: 'Patient/x' } }),
      put('Condition', 'c1', { encounter: { reference: 'Encounter/e1' } }),
      put('Condition', 'c2', { subject: { reference: 'http://other.example/fhir/Patient/x' } }),
    ];
    expect(ids(referringGroups(entries, (entry) => entry))).toEqual([['e1', 'c1'], ['c2']]);
  });
});
