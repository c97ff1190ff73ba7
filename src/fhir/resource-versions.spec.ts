import type { FhirResource } from './fhir-types.js';
import { sameContent } from './resource-versions.js';

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
