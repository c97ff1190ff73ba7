import type { FastifyReply } from 'fastify';
import { addVary } from './vary.js';

/** A reply that keeps its headers, as Fastify's does (names in lower case). */
function reply(vary?: string): FastifyReply & { headers: Record<string, string> } {
  const headers: Record<string, string> = vary === undefined ? {} : { vary };
  return {
    headers,
    getHeader: (name: string) => headers[name.toLowerCase()],
    header(name: string, value: string) {
      headers[name.toLowerCase()] = value;
      return this;
    },
  } as unknown as FastifyReply & { headers: Record<string, string> };
}

describe('addVary', () => {
  it.each([
    [undefined, 'Accept', 'Accept'],
    ['', 'Accept', 'Accept'],
    ['Origin', 'Accept', 'Origin, Accept'],
    ['Origin, Accept', 'Accept-Encoding', 'Origin, Accept, Accept-Encoding'],
    ['origin, accept', 'Accept', 'origin, accept'],
    ['Origin,Accept-Encoding', 'accept-encoding', 'Origin,Accept-Encoding'],
    ['*', 'Accept', '*'],
  ])('%p with %p gives %p', (before, name, after) => {
    const answer = reply(before);
    addVary(answer, name);
    expect(answer.headers['vary']).toBe(after);
  });
});
