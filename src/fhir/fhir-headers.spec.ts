import type { StoredResource } from './fhir-types.js';
import { notModified } from './fhir-headers.js';

/** A version written at 10:00:00.435 UTC. */
const stored: StoredResource = {
  resourceType: 'Patient',
  id: 'p1',
  versionId: 2,
  lastUpdated: new Date('2026-03-01T10:00:00.435Z'),
  resource: { resourceType: 'Patient', id: 'p1' },
};

describe('notModified: whether the copy a client holds is current', () => {
  it('takes an HTTP date, which has whole seconds, as covering the second it names', () => {
    expect(notModified(undefined, 'Sun, 01 Mar 2026 10:00:00 GMT', stored)).toBe(true);
    expect(notModified(undefined, 'Sun, 01 Mar 2026 09:59:59 GMT', stored)).toBe(false);
  });

  it('compares a FHIR instant with milliseconds to the millisecond', () => {
    // A Bundle entry's ifModifiedSince is an instant: one from before the write, in its second.
    expect(notModified(undefined, '2026-03-01T10:00:00.200Z', stored)).toBe(false);
    expect(notModified(undefined, '2026-03-01T10:00:00.435Z', stored)).toBe(true);
    expect(notModified(undefined, '2026-03-01T11:00:00.435+01:00', stored)).toBe(true);
    expect(notModified(undefined, '2026-03-01T10:00:00Z', stored)).toBe(true);
  });

  it('prefers If-None-Match to the date', () => {
    expect(notModified('W/"1"', 'Sun, 01 Mar 2026 11:00:00 GMT', stored)).toBe(false);
    expect(notModified('W/"2"', 'Sun, 01 Mar 2026 09:00:00 GMT', stored)).toBe(true);
  });
});
