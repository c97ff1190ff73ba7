import { queryRecord } from './query-record.js';

describe('queryRecord', () => {
  it('keeps one value as text and repeats as a list, in order', () => {
    expect(queryRecord('a=1&b=2&a=3&a=4')).toEqual({ a: ['1', '3', '4'], b: '2' });
  });

  it('reads a form of 150,000 repeats (a body may hold that many) in one pass', () => {
    // Until 2026-12-07 each repeat copied the list before it: this held the event loop for
    // minutes, every request and /health waiting behind it.
    const record = queryRecord(Array.from({ length: 150_000 }, (_, i) => `_id=${i}`).join('&'));
    expect(record._id).toHaveLength(150_000);
    expect((record._id as string[]).at(-1)).toBe('149999');
  });
});
