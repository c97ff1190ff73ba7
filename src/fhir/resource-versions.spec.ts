import type { FhirResource } from './fhir-types.js';
import type { ResourceEntity } from './resource.entity.js';
import { assertVersionMatches, parseIfMatch, sameContent } from './resource-versions.js';

const stored: FhirResource = {
  resourceType: 'Patient',
  id: 'p1',
  meta: { versionId: '3', lastUpdated: '2026-01-02T03:04:05.000Z', tag: [{ code: 'vip' }] },
  name: [{ family: 'Smith', given: ['Ann', 'B'] }],
  active: true,
};

function without(resource: FhirResource, element: string): FhirResource {
  const copy: Record<string, unknown> = { ...resource };
  delete copy[element];
  return copy as FhirResource;
}

describe('sameContent: whether an update would store what is stored', () => {
  it("leaves out only the version's id and time, and the order of an object's keys", () => {
    const reordered = { active: true, ...without(stored, 'meta') };
    expect(
      sameContent({ ...reordered, meta: { tag: [{ code: 'vip' }], versionId: '1' } }, stored),
    ).toBe(true);
    expect(sameContent({ ...reordered, meta: { tag: [{ code: 'vip' }] } }, stored)).toBe(true);
  });

  it('counts the rest of meta, list order and every value as content', () => {
    expect(sameContent({ ...stored, meta: { versionId: '3' } }, stored)).toBe(false);
    expect(sameContent({ ...stored, meta: { ...stored.meta, source: '#x' } }, stored)).toBe(false);
    const reversed = [{ family: 'Smith', given: ['B', 'Ann'] }];
    expect(sameContent({ ...stored, name: reversed }, stored)).toBe(false);
    expect(sameContent({ ...stored, active: false }, stored)).toBe(false);
    expect(sameContent(without(stored, 'active'), stored)).toBe(false);
  });

  it('takes no meta and meta holding only the version as the same', () => {
    const bare = without(stored, 'meta');
    const versioned = { ...bare, meta: { versionId: '1', lastUpdated: '2026-01-01T00:00:00Z' } };
    expect(sameContent(bare, versioned)).toBe(true);
  });
});

describe('parseIfMatch: the versions an If-Match header names (RFC 9110 section 13.1.1)', () => {
  it.each([
    ['W/"3"', [3]],
    ['"3"', [3]],
    ['3', [3]],
    [' W/"3" ', [3]],
    ['W/"1", W/"2"', [1, 2]],
    ['W/"1",W/"2" ,"7"', [1, 2, 7]],
    // Empty list elements are allowed (RFC 9110 section 5.6.1.2), and a tag naming no version
    // here is one that cannot match, beside those that can.
    [', W/"1", , W/"abc",', [1]],
    ['W/"a,b", W/"4"', [4]],
    ['*', '*'],
    [' * ', '*'],
  ])('reads %j as %j', (header, expected) => {
    expect(parseIfMatch(header)).toEqual(expected);
  });

  it('reads no header as no condition', () => {
    expect(parseIfMatch(undefined)).toBeUndefined();
  });

  // A bare number is taken alone, as clients send it, but is no entity-tag in a list.
  it.each(['', ',', 'W/"1" W/"2"', 'W/"1", *', '*, W/"1"', 'W/1', '"1', 'abc', 'W/"1";', '2, 3'])(
    'refuses %j as malformed (400)',
    (header) => {
      expect(() => parseIfMatch(header)).toThrow(expect.objectContaining({ status: 400 }));
    },
  );

  // Tags are compared as written (RFC 9110 section 8.8.3.2): version 2's is W/"2", not W/"02".
  it.each(['W/"abc"', 'W/"1.0", W/""', 'W/"12345678901"', '12345678901', 'W/"02"', '02', 'W/"0"'])(
    'answers %j, which names no version, 412',
    (header) => {
      expect(() => parseIfMatch(header)).toThrow(expect.objectContaining({ status: 412 }));
    },
  );
});

describe('assertVersionMatches: whether the current version meets If-Match', () => {
  const current = (versionId: number, deleted = false) =>
    ({ resourceType: 'Patient', id: 'p1', versionId, deleted }) as ResourceEntity;

  it('holds when any version listed is the current one', () => {
    expect(() => assertVersionMatches(current(2), [1, 2])).not.toThrow();
    expect(() => assertVersionMatches(current(3), [1, 2])).toThrow(
      expect.objectContaining({ status: 412 }),
    );
  });

  it('holds for * when there is a current version, deleted or absent being none', () => {
    expect(() => assertVersionMatches(current(1), '*')).not.toThrow();
    for (const none of [current(2, true), null]) {
      expect(() => assertVersionMatches(none, '*')).toThrow(
        expect.objectContaining({ status: 412 }),
      );
      expect(() => assertVersionMatches(none, [2])).toThrow(
        expect.objectContaining({ status: 412 }),
      );
    }
  });
});
