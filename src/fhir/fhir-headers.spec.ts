import type { StoredResource } from './fhir-types.js';
import { notModified, parsePreferReturn } from './fhir-headers.js';

/** A version written at 10:00:00.435 UTC. */
const stored: StoredResource = {
  resourceType: 'Patient',
  id: 'p1',
  versionId: 2,
  lastUpdated: new Date('2026-03-01T10:00:00.435Z'),
  resource: { resourceType: 'Patient', id: 'p1' },
};

describe('notModified: whether the copy a client holds is current', () => {
  it('takes an If-None-Match list naming the version, or *, as current', () => {
    expect(notModified('W/"2"', undefined, stored)).toBe(true);
    expect(notModified('"2"', undefined, stored)).toBe(true);
    expect(notModified('W/"1", W/"2"', undefined, stored)).toBe(true);
    expect(notModified('W/"1",W/"2"', undefined, stored)).toBe(true);
    expect(notModified('*', undefined, stored)).toBe(true);
    expect(notModified('W/"1", W/"3"', undefined, stored)).toBe(false);
    expect(notModified('W/"12"', undefined, stored)).toBe(false);
    // An If-None-Match that holds wins over If-Modified-Since (RFC 9110 section 13.2.2).
    expect(notModified('W/"1"', 'Sun, 01 Mar 2026 10:00:00 GMT', stored)).toBe(false);
  });

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

  it('takes the three HTTP date forms RFC 9110 asks a recipient to read', () => {
    expect(notModified(undefined, 'Sunday, 01-Mar-26 10:00:00 GMT', stored)).toBe(true);
    expect(notModified(undefined, 'Sunday, 01-Mar-26 09:59:59 GMT', stored)).toBe(false);
    expect(notModified(undefined, 'Sun Mar  1 10:00:00 2026', stored)).toBe(true);
    expect(notModified(undefined, 'Sun Mar  1 09:59:59 2026', stored)).toBe(false);
  });

  it('ignores a date that is no HTTP date or instant, as RFC 9110 section 13.1.3 says', () => {
    // Date.parse reads each of these as some time; a client sending one is owed the resource.
    for (const since of [
      '3000',
      '99999',
      '2027',
      '2027-01-01',
      '2027-01-01T00:00',
      '2027-01-01T00:00:00',
      'Jan 1 2027',
      '1/1/2027',
      'Fri, 01 Jan 2027 00:00:00 GMT, Sat, 02 Jan 2027 00:00:00 GMT',
    ]) {
      expect([since, notModified(undefined, since, stored)]).toEqual([since, false]);
    }
  });

  it('prefers If-None-Match to the date', () => {
    expect(notModified('W/"1"', 'Sun, 01 Mar 2026 11:00:00 GMT', stored)).toBe(false);
    expect(notModified('W/"2"', 'Sun, 01 Mar 2026 09:00:00 GMT', stored)).toBe(true);
  });
});

describe('parsePreferReturn (RFC 7240)', () => {
  it.each([
    [undefined, 'representation'],
    ['return=minimal', 'minimal'],
    ['return=OperationOutcome', 'OperationOutcome'],
    ['handling=strict, return=minimal', 'minimal'],
    ['respond-async; return=minimal', 'minimal'],
    // A preference's value may be a quoted string, with optional whitespace around "=".
    ['return="minimal"', 'minimal'],
    ['return = minimal', 'minimal'],
    ['return="OperationOutcome"', 'OperationOutcome'],
    ['return=minimalist', 'representation'],
  ])('%p asks for %p', (prefer, expected) => {
    expect(parsePreferReturn(prefer)).toBe(expected);
  });
});
