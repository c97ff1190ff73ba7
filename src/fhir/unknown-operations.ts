import type { FastifyReply, FastifyRequest, HookHandlerDoneFunction } from 'fastify';
import { METHODS } from '../common/http/allowed-methods.js';
import { unknownOperation } from './fhir-types.js';

/**
 * 400 for a FHIR operation (`$name`) the server does not offer at the path asked, whatever the
 * method: no route has it there as a fixed segment. Routes for any type or id took it as one
 * (`GET Patient/{id}/$foo` as a compartment search of a type `$foo`, `POST /fhir/$foo` as a
 * create), so until 2026-12-07 it was answered "Unknown resource type" (404), or a 405 whose
 * Allow named methods that answered no better. An operation offered at the path with other
 * methods is left to its 405 (allowedMethods), and a path no route takes to its 404.
 * Registered as an onRequest hook, before the guards: it depends on the route table alone. A
 * request without a valid token gets the 401 instead (awaitsAuthentication).
 */
export function refuseUnknownOperations(
  request: FastifyRequest,
  _reply: FastifyReply,
  done: HookHandlerDoneFunction,
): void {
  const path = request.url.split('?', 1)[0] ?? '';
  if (!path.startsWith('/fhir/') || (!path.includes('$') && !path.includes('%24'))) {
    done();
    return;
  }
  // The router decoded the path before any hook ran, so each segment decodes.
  const segments = path
    .slice('/fhir/'.length)
    .split('/')
    .filter((segment) => segment !== '')
    .map((segment) => decodeURIComponent(segment));
  const operation = operationOf(segments);
  if (operation === undefined) {
    done();
    return;
  }
  const routes = METHODS.flatMap((method) => request.server.findRoute({ method, url: path }) ?? []);
  const takenAsParameter = (params: unknown): boolean =>
    Object.values((params ?? {}) as Record<string, unknown>).includes(operation);
  if (routes.length === 0 || !routes.every(({ params }) => takenAsParameter(params))) {
    done();
    return;
  }
  done(unknownOperation(operation, segments.length > 1 ? segments[0] : undefined));
}

/**
 * The operation a path under the FHIR base invokes: `$name`, `{type}/$name` or
 * `{type}/{id}/$name` (operations.html); a `$` elsewhere (`_history/$1`) is some other error's.
 */
function operationOf(segments: string[]): string | undefined {
  const operation = segments.at(-1);
  if (!operation?.startsWith('$')) return undefined;
  const [type = '', id = ''] = segments;
  const placed =
    segments.length === 1 ||
    (TYPE.test(type) && (segments.length === 2 || (segments.length === 3 && ID.test(id))));
  return placed ? operation : undefined;
}

const TYPE = /^[A-Z][A-Za-z]{0,63}$/;
const ID = /^[A-Za-z0-9.-]{1,64}$/;
