import type { FastifyRequest } from 'fastify';

/**
 * The methods routes are declared with. OPTIONS is left out: with CORS on, @fastify/cors
 * declares it on every path (`OPTIONS *`), which says nothing about the path.
 */
export const METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE'];

/**
 * The methods Fastify's route table serves at a request's path (HEAD wherever GET is), for the
 * Allow header of a 405; empty when none does (a 404), or when one takes the request's own
 * method (refused for another reason). Read from the router, so a new route needs no second
 * list. A route that takes the path only as parameters, where another method's takes it as a
 * fixed one (fewer parameters) and a value it took as a type or id is none, does not serve it:
 * `DELETE /fhir/metadata` is not a conditional delete of a type "metadata" (a 404 naming an
 * unknown type) but a method the CapabilityStatement is not served with.
 */
export function allowedMethods(request: FastifyRequest): string[] {
  // Checked first: every request a route matched passes here (the onRequest hook). An OPTIONS
  // that matched is @fastify/cors's (`OPTIONS *`, the whole path its parameter), which answers
  // or passes it on as unrouted.
  if (!request.is404 && (!METHODS.includes(request.method) || fitsAll(request.params))) return [];
  const url = request.url.split('?', 1)[0] ?? '';
  const found = METHODS.flatMap((method) => {
    const route = request.server.findRoute({ method, url });
    return route ? [{ method, params: route.params }] : [];
  });
  const fewest = Math.min(...found.map(({ params }) => count(params)));
  const allowed = found
    .filter(({ params }) => count(params) === fewest || fitsAll(params))
    .map(({ method }) => method);
  return allowed.includes(request.method) ? [] : allowed;
}

function count(params: unknown): number {
  return Object.keys(params ?? {}).length;
}

function fitsAll(params: unknown): boolean {
  return Object.entries((params ?? {}) as Record<string, unknown>).every(([name, value]) =>
    fitsParameter(name, value),
  );
}

/**
 * FHIR's syntax of a type name and of an id (and a version id): a fixed segment such as
 * `metadata`, `_history` or `$everything` has neither, where `AuditEvent`, a type whose writes
 * the permissions refuse, does.
 */
const SYNTAX: Record<string, RegExp> = {
  type: /^[A-Z][A-Za-z]{0,63}$/,
  id: /^[A-Za-z0-9.-]{1,64}$/,
};

function fitsParameter(name: string, value: unknown): boolean {
  return typeof value === 'string' && (SYNTAX[name] ?? SYNTAX['id']!).test(value);
}

/**
 * What a request to AuditEvent may do: read, vread, history of one, search (GET, or POST
 * `_search`), as the CapabilityStatement declares. The trail is written by the server alone,
 * so any other interaction is refused to every user with a 405 and the methods the path takes
 * (R4 http.html), before the guards (without a valid token, a 401 instead): until 2026-12-06
 * a create, update, patch, delete or `$validate` was a 403 "Access denied" and the type
 * history a 400. Undefined when the request is one of those offered (or not about
 * AuditEvent). `url` is the path under the FHIR base (`AuditEvent/1`, with or without a
 * query): a Bundle's entries are held to the same rule.
 */
export function auditEventRefusal(method: string, url: string): string[] | undefined {
  const path = url.split('?', 1)[0] ?? '';
  const match = /^AuditEvent(?:\/([^/]*))?(\/.*)?$/.exec(path);
  if (!match) return undefined;
  const [, first, rest] = match;
  const reads = method === 'GET' || method === 'HEAD';
  // The type's history lists nothing the search does not: not offered, by any method.
  if (first === '_history' && rest === undefined) return [];
  if (first === '_search' && rest === undefined) {
    return method === 'POST' ? undefined : ['POST'];
  }
  return reads ? undefined : ['GET', 'HEAD'];
}

/** Why auditEventRefusal refused: the diagnostics of its 405, direct or in a Bundle. */
export const AUDIT_EVENT_READ_ONLY =
  'AuditEvent is read-only (the server writes the audit trail): read, vread, the history of ' +
  'one, and search (GET /fhir/AuditEvent, newest first) are offered';

/**
 * A request refused with a 405 before the guards, as a request no route matched is: one that
 * a route matched only by taking a fixed path as parameters (allowedMethods), or an interaction
 * a type does not offer (auditEventRefusal). `allow` is the Allow header's methods.
 */
export class FixedPathMethodError extends Error {
  constructor(
    readonly allow: string[],
    readonly diagnostics?: string,
  ) {
    super('Method not allowed at a fixed path');
  }
}
