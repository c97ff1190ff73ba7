import type { FastifyRequest } from 'fastify';
import { matchedRoute } from './matched-route.js';

/** A request whose routeOptions getter counts its calls, as Fastify's builds an object each. */
function requestFor(url: string | undefined): { request: FastifyRequest; reads: () => number } {
  let reads = 0;
  const request = {
    get routeOptions() {
      reads++;
      return { url };
    },
  } as unknown as FastifyRequest;
  return { request, reads: () => reads };
}

describe('matchedRoute', () => {
  it('gives the template without a trailing slash, reading routeOptions once a request', () => {
    const { request, reads } = requestFor('/fhir/:type/:id/');
    expect(matchedRoute(request)).toBe('/fhir/:type/:id');
    expect(matchedRoute(request)).toBe('/fhir/:type/:id');
    expect(matchedRoute(request)).toBe('/fhir/:type/:id');
    expect(reads()).toBe(1);
  });

  it('keeps the root, and null for an unknown route, each request on its own', () => {
    expect(matchedRoute(requestFor('/').request)).toBe('/');
    const unknown = requestFor(undefined);
    expect(matchedRoute(unknown.request)).toBeNull();
    expect(matchedRoute(unknown.request)).toBeNull();
    expect(unknown.reads()).toBe(1);
    expect(matchedRoute(requestFor('').request)).toBeNull();
    expect(matchedRoute(requestFor('/fhir').request)).toBe('/fhir');
  });
});
