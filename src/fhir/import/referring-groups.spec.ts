import { referringGroups, storableParts } from './referring-groups.js';

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

describe('storableParts', () => {
  it('splits a group into what must be stored together, what it refers to first', () => {
    const entries = [
      put('Observation', 'o1', { subject: { reference: 'Patient/p1' } }),
      put('Patient', 'p1', { link: [{ other: { reference: 'Patient/p2' } }] }),
      put('Patient', 'p2', { link: [{ other: { reference: 'Patient/p1' } }] }),
      { resource: { resourceType: 'Observation', subject: { reference: 'Patient/p2' } } },
      put('Observation', 'o2', { hasMember: [{ reference: 'Observation/o1' }] }),
    ];
    expect(ids(storableParts(entries, (entry) => entry))).toEqual([
      ['p1', 'p2'],
      ['o1'],
      ['-'],
      ['o2'],
    ]);
  });

  it('keeps each cycle whole, and one that waits for another after it', () => {
    const entries = [
      put('Encounter', 'e1', { diagnosis: [{ condition: { reference: 'Condition/c1' } }] }),
      put('Condition', 'c1', {
        encounter: { reference: 'Encounter/e1' },
        subject: { reference: 'Patient/p1' },
      }),
      put('Patient', 'p1', { link: [{ other: { reference: 'Patient/p2' } }] }),
      put('Patient', 'p2', { link: [{ other: { reference: 'Patient/p1' } }] }),
    ];
    expect(ids(storableParts(entries, (entry) => entry))).toEqual([
      ['p1', 'p2'],
      ['e1', 'c1'],
    ]);
  });

  it('follows a chain of references longer than a call stack', () => {
    const length = 30_000;
    const entries = Array.from({ length }, (_, i) =>
      put(
        'Observation',
        `o${i}`,
        i > 0 ? { hasMember: [{ reference: `Observation/o${i - 1}` }] } : {},
      ),
    ).reverse();
    const parts = ids(storableParts(entries, (entry) => entry));
    expect(parts).toHaveLength(length);
    expect(parts[0]).toEqual(['o0']);
    expect(parts.at(-1)).toEqual([`o${length - 1}`]);
  });
});
