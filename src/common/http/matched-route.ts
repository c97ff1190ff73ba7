import type { FastifyRequest } from 'fastify';

const routes = new WeakMap<FastifyRequest, string | null>();

/**
 * The route template Fastify matched (`/fhir/:type/:id`, no trailing slash), or null for an
 * unknown route, read once per request. Fastify's `request.routeOptions` is a getter that builds
 * an object of a dozen fields (and looks up the version constraint) on every access, and the
 * hooks, guards, audit and metrics of one request asked for it about eight times: a read spent
 * more on that than on choosing its audit row's action.
 */
export function matchedRoute(request: FastifyRequest): string | null {
  let route = routes.get(request);
  if (route === undefined) {
    const url = request.routeOptions?.url;
    route = typeof url === 'string' && url.length > 0 ? url.replace(/\/$/, '') || '/' : null;
    routes.set(request, route);
  }
  return route;
}
