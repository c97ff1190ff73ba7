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

  it('finds each repeat among many Type/ids, wherever its digest puts it', () => {
    // V8 holds 2^24 entries at most in one Map: the digests are spread over several. Past that
    // number (a check of some minutes, run by hand) one Map failed the import with a RangeError.
    const ids = new ResourceIds();
    const firsts = Array.from({ length: 5_000 }, (_, i) =>
      ids.add('Observation', `o${i}`, { path: 'a.ndjson', line: i + 1 }),
    );
    expect(firsts.every((first) => first === undefined)).toBe(true);
    const repeats = Array.from({ length: 5_000 }, (_, i) =>
      ids.add('Observation', `o${i}`, { path: 'b.ndjson', line: 1 }),
    );
    expect(repeats).toEqual(
      Array.from({ length: 5_000 }, (_, i) => ({ path: 'a.ndjson', line: i + 1 })),
    );
  });
});
