import { parseIsoDateOrInstant } from './iso-dates.js';

describe('parseIsoDateOrInstant', () => {
  it('reads a date as its first moment UTC and an instant at its offset', () => {
    expect(parseIsoDateOrInstant('2026-11-01')?.toISOString()).toBe('2026-11-01T00:00:00.000Z');
    expect(parseIsoDateOrInstant('2026-11-01T10:00-05:00')?.toISOString()).toBe(
      '2026-11-01T15:00:00.000Z',
    );
    expect(parseIsoDateOrInstant('2024-02-29T23:59:59.5Z')?.toISOString()).toBe(
      '2024-02-29T23:59:59.500Z',
    );
  });

  it('refuses what only the host or a guess could read', () => {
    for (const value of [
      '2026-11-01T10:00',
      '2026-11-01 10:00:00',
      '2026-02-30',
      '2025-02-29',
      '1',
      '2026',
      '2026-11',
      'Nov 1 2026',
      '2026-11-01T24:00Z',
      '',
    ]) {
      expect(parseIsoDateOrInstant(value)).toBeUndefined();
    }
  });
});
