import { ResourceIds } from './resource-ids.js';

describe('ResourceIds', () => {
  it('names the first place a Type/id was read, for each later one', () => {
    const ids = new ResourceIds();
    expect(ids.add('Patient', 'p1', { path: 'a.ndjson', line: 1 })).toBeUndefined();
    expect(ids.add('Observation', 'p1', { path: 'a.ndjson', line: 2 })).toBeUndefined();
    expect(ids.add('Patient', 'p2', { path: 'b.ndjson', line: 4_000_000_000 })).toBeUndefined();
    expect(ids.add('Patient', 'p1', { path: 'b.ndjson', line: 3 })).toEqual({
      path: 'a.ndjson',
      line: 1,
    });
    expect(ids.add('Patient', 'p2', { path: 'c.ndjson', line: 1 })).toEqual({
      path: 'b.ndjson',
      line: 4_000_000_000,
    });
  });
});
