import type { FastifyRequest } from 'fastify';

/**
 * The methods routes are declared with. OPTIONS is left out: with CORS on, @fastify/cors
 * declares it on every path (`OPTIONS *`), which says nothing about the path.
 */
const METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE'];

/**
 * For a request no route matched: the methods Fastify's route table serves at its path (HEAD
 * wherever GET is), for the Allow header of a 405. Empty when no route has the path (a 404),
 * or when one takes the request's own method (the target was refused for another reason). Read
 * from the router, so a new route needs no second list.
 */
export function allowedMethods(request: FastifyRequest): string[] {
  const url = request.url.split('?', 1)[0] ?? '';
  const allowed = METHODS.filter((method) => request.server.findRoute({ method, url }) !== null);
  return allowed.includes(request.method) ? [] : allowed;
}
