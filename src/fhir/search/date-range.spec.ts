import { dateRange, sqlTimestamp } from './date-range.js';

const iso = (value: string) => {
  const range = dateRange(value);
  return range && [range.low.toISOString(), range.high.toISOString()];
};

describe('dateRange', () => {
  it('covers a value at its precision', () => {
    expect(iso('2020')).toEqual(['2020-01-01T00:00:00.000Z', '2021-01-01T00:00:00.000Z']);
    expect(iso('2020-02')).toEqual(['2020-02-01T00:00:00.000Z', '2020-03-01T00:00:00.000Z']);
    expect(iso('2020-02-29')).toEqual(['2020-02-29T00:00:00.000Z', '2020-03-01T00:00:00.000Z']);
    expect(iso('2020-02-29T10:00:00+02:00')).toEqual([
      '2020-02-29T08:00:00.000Z',
      '2020-02-29T08:00:01.000Z',
    ]);
    expect(iso('0050-06')).toEqual(['0050-06-01T00:00:00.000Z', '0050-07-01T00:00:00.000Z']);
  });

  it('refuses days and months that do not exist, rather than rolling them over', () => {
    for (const value of [
      '2021-02-29',
      '2020-02-30',
      '2020-04-31',
      '2020-04-00',
      '2020-00',
      '2020-13',
    ]) {
      expect([value, dateRange(value)]).toEqual([value, undefined]);
    }
    expect(dateRange('2020-01-01T24:00:00Z')).toBeUndefined();
  });

  it('keeps to the years 0001 to 9999 in UTC, which PostgreSQL reads', () => {
    for (const value of [
      '0000',
      '0000-06-01',
      '0001-01-01T00:00:00+01:00',
      '9999-12-31T23:00:00-05:00',
    ]) {
      expect([value, dateRange(value)]).toEqual([value, undefined]);
    }
    expect(iso('0001')).toEqual(['0001-01-01T00:00:00.000Z', '0002-01-01T00:00:00.000Z']);
    expect(iso('9999')).toEqual(['9999-01-01T00:00:00.000Z', '+010000-01-01T00:00:00.000Z']);
    expect(sqlTimestamp(dateRange('9999')!.high)).toBe('10000-01-01T00:00:00.000Z');
    expect(sqlTimestamp(dateRange('2024-05')!.low)).toBe('2024-05-01T00:00:00.000Z');
  });

  it('reads a leap second, which R4 allows, as the last millisecond of its minute', () => {
    expect(iso('2016-12-31T23:59:60Z')).toEqual([
      '2016-12-31T23:59:59.999Z',
      '2017-01-01T00:00:00.000Z',
    ]);
    expect(iso('2017-01-01T00:59:60.5+01:00')).toEqual([
      '2016-12-31T23:59:59.999Z',
      '2017-01-01T00:00:00.000Z',
    ]);
  });
});
