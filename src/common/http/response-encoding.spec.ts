import { negotiate } from './response-encoding.js';

describe('negotiate (Accept-Encoding)', () => {
  it.each([
    [undefined, undefined],
    ['', undefined],
    ['identity', undefined],
    ['compress, deflate', undefined],
    ['gzip', 'gzip'],
    ['x-gzip', 'gzip'],
    ['GZIP', 'gzip'],
    ['gzip, deflate, br', 'br'],
    ['gzip;q=1, br;q=0.5', 'gzip'],
    ['gzip;q=0.5, br', 'br'],
    ['br;q=0, gzip', 'gzip'],
    ['gzip;q=0, identity', undefined],
    ['*', 'br'],
    ['*;q=0', undefined],
    ['gzip;q=0.8, *;q=0', 'gzip'],
    ['gzip ; q = 0.3', 'gzip'],
    ['gzip;q=abc', undefined],
  ])('%p gives %p', (header, coding) => {
    expect(negotiate(header)).toBe(coding);
  });
});
