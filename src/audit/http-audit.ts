import { randomUUID } from 'node:crypto';
import type { FastifyRequest } from 'fastify';
import type { AuthenticatedUser } from '../auth/authenticated-user.js';
import { formatScope } from '../auth/smart-scopes.js';
import { isAuthorizationRequest } from '../smart/launch/authorization-request.js';
import type { ClientRefusal } from '../common/http/client-error.js';
import { matchedRoute } from '../common/http/matched-route.js';
import { isUuid } from '../common/ids.js';
import { isValidId } from '../fhir/fhir-types.js';
import type { AuditEntry } from './audit-record.js';
import type { AuditPart, AuditScope } from './audit-context.js';
import { knownParameter, knownType, UNKNOWN } from './audit-vocabulary.js';

interface RouteAction {
  action: string;
  subtype: string | null;
}

/**
 * What each route does, by method and route template. Every route of the service is listed, so
 * that a denied request (which never reaches its handler) is described like an allowed one.
 */
const ROUTE_ACTIONS: Record<string, RouteAction> = {
  'GET /fhir/metadata': { action: 'read', subtype: 'capabilities' },
  'POST /fhir/:type': { action: 'create', subtype: 'create' },
  'GET /fhir/:type': { action: 'search', subtype: 'search-type' },
  'POST /fhir/:type/_search': { action: 'search', subtype: 'search-type' },
  'POST /fhir/:type/$validate': { action: 'execute', subtype: '$validate' },
  // A compartment search searches a type (R4 has no interaction code of its own for it).
  'GET /fhir/:compartment/:id/:type': { action: 'search', subtype: 'search-type' },
  'POST /fhir/:compartment/:id/:type/_search': { action: 'search', subtype: 'search-type' },
  'PUT /fhir/:type': { action: 'update', subtype: 'update' },
  'PATCH /fhir/:type': { action: 'patch', subtype: 'patch' },
  'DELETE /fhir/:type': { action: 'delete', subtype: 'delete' },
  'GET /fhir/_history': { action: 'history', subtype: 'history-system' },
  'GET /fhir/:type/_history': { action: 'history', subtype: 'history-type' },
  'GET /fhir/:type/:id': { action: 'read', subtype: 'read' },
  'PUT /fhir/:type/:id': { action: 'update', subtype: 'update' },
  'PATCH /fhir/:type/:id': { action: 'patch', subtype: 'patch' },
  'DELETE /fhir/:type/:id': { action: 'delete', subtype: 'delete' },
  'GET /fhir/:type/:id/_history': { action: 'history', subtype: 'history-instance' },
  'GET /fhir/:type/:id/_history/:vid': { action: 'vread', subtype: 'vread' },
  'GET /fhir/Patient/:id/$everything': { action: 'execute', subtype: '$everything' },
  'POST /fhir/Patient/$match': { action: 'search', subtype: '$match' },
  'GET /fhir/ValueSet/$expand': { action: 'execute', subtype: '$expand' },
  'GET /fhir/ValueSet/$validate-code': { action: 'execute', subtype: '$validate-code' },
  'GET /fhir/CodeSystem/$lookup': { action: 'execute', subtype: '$lookup' },
  'POST /fhir/Patient/:id/$everything': { action: 'execute', subtype: '$everything' },
  'POST /fhir/ValueSet/$expand': { action: 'execute', subtype: '$expand' },
  'POST /fhir/ValueSet/$validate-code': { action: 'execute', subtype: '$validate-code' },
  'POST /fhir/CodeSystem/$lookup': { action: 'execute', subtype: '$lookup' },
  'POST /fhir/Observation/$lastn': { action: 'search', subtype: '$lastn' },
  'GET /fhir/AuditEvent': { action: 'search', subtype: 'search-type' },
  'GET /fhir/AuditEvent/:id': { action: 'read', subtype: 'read' },
  'GET /fhir/Patient/:id/$audit-trail': { action: 'execute', subtype: '$audit-trail' },
  'GET /fhir/$export': { action: 'export', subtype: '$export' },
  'GET /fhir/Patient/$export': { action: 'export', subtype: '$export' },
  'GET /fhir/Group/:id/$export': { action: 'export', subtype: '$export' },
  'POST /fhir/$export': { action: 'export', subtype: '$export' },
  'POST /fhir/Patient/$export': { action: 'export', subtype: '$export' },
  'POST /fhir/Group/:id/$export': { action: 'export', subtype: '$export' },
  'GET /fhir/$export-status/:job': { action: 'read', subtype: '$export-status' },
  'DELETE /fhir/$export-status/:job': { action: 'delete', subtype: '$export-status' },
  'GET /fhir/$export-file/:job/:file': { action: 'export', subtype: '$export-file' },
  'POST /auth/login': { action: 'login', subtype: 'password' },
  'POST /auth/login/mfa': { action: 'login', subtype: 'mfa' },
  'POST /auth/refresh': { action: 'login', subtype: 'refresh' },
  'POST /auth/token': { action: 'login', subtype: 'token' },
  // A SMART app's sign-in form takes the password (and MFA code): a login, failed ones too.
  'POST /auth/authorize': { action: 'login', subtype: 'smart-authorize' },
  'POST /auth/logout': { action: 'logout', subtype: null },
  'POST /auth/mfa/enroll': { action: 'update', subtype: 'mfa-enroll' },
  'POST /auth/mfa/activate': { action: 'update', subtype: 'mfa-activate' },
  'POST /auth/token/scoped': { action: 'execute', subtype: 'token-exchange' },
  'POST /auth/introspect': { action: 'execute', subtype: 'token-introspection' },
  'POST /auth/break-glass': { action: 'execute', subtype: 'break-glass' },
  'GET /admin/users': { action: 'read', subtype: 'user-list' },
  'POST /admin/users/:username/disable': { action: 'update', subtype: 'user-disable' },
  'POST /hl7/v2': { action: 'create', subtype: 'hl7-v2' },
  'GET /hl7/messages': { action: 'read', subtype: 'hl7-message-list' },
  'POST /hl7/messages/:id/reprocess': { action: 'execute', subtype: 'hl7-reprocess' },
  'POST /hl7/messages/:id/dismiss': { action: 'update', subtype: 'hl7-dismiss' },
  'GET /hl7/outbox': { action: 'read', subtype: 'hl7-outbox-list' },
  'POST /hl7/outbox/:id/resend': { action: 'execute', subtype: 'hl7-resend' },
  'GET /subscriptions': { action: 'read', subtype: 'subscription-list' },
  'GET /health': { action: 'read', subtype: 'health' },
  'GET /health/ready': { action: 'read', subtype: 'health' },
  'GET /metrics': { action: 'read', subtype: 'metrics' },
  'GET /.well-known/jwks.json': { action: 'read', subtype: 'jwks' },
  'GET /.well-known/smart-configuration': { action: 'read', subtype: 'smart-configuration' },
  'GET /fhir/.well-known/smart-configuration': { action: 'read', subtype: 'smart-configuration' },
};

const METHOD_ACTIONS: Record<string, string> = {
  GET: 'read',
  HEAD: 'read',
  POST: 'execute',
  PUT: 'update',
  PATCH: 'update',
  DELETE: 'delete',
};

/**
 * Routes that hold no PHI and must answer while the database is down (load-balancer probes):
 * their rows are written without holding the response.
 */
const BEST_EFFORT_ROUTES = new Set([
  'GET /health',
  'GET /health/ready',
  'GET /metrics',
  'GET /.well-known/jwks.json',
  'GET /.well-known/smart-configuration',
  'GET /fhir/.well-known/smart-configuration',
  'GET /fhir/metadata',
]);

/** The route template Fastify matched, or null for an unknown route (whose URL is not kept). */
export function routeOf(request: FastifyRequest): string | null {
  return matchedRoute(request);
}

export function isBestEffort(request: FastifyRequest): boolean {
  return BEST_EFFORT_ROUTES.has(`${request.method} ${routeOf(request) ?? ''}`);
}

/**
 * Writes that commit with their audit row: FHIR writes, transaction Bundles and break-glass
 * grants. Sign-in routes are left out on purpose: a failed login must keep its failure count
 * (the lockout) even though the request fails.
 */
export function isTransactionalWrite(request: FastifyRequest): boolean {
  const route = routeOf(request);
  if (route === '/auth/break-glass') {
    return request.method === 'POST';
  }
  if (request.method === 'GET' || request.method === 'HEAD' || !route?.startsWith('/fhir')) {
    return false;
  }
  if (route === '/fhir') {
    // A batch runs each entry in a transaction of its own; one outer transaction would let a
    // failed entry abort the others.
    return (request.body as { type?: unknown } | undefined)?.type === 'transaction';
  }
  return (
    route !== '/fhir/:type/_search' &&
    route !== '/fhir/:type/$validate' &&
    route !== '/fhir/Patient/$match' &&
    // A POST kick-off starts a job that outlives the request: in the request's transaction,
    // the job's reads would run on a connection released when the 202 is sent.
    !route.endsWith('/$export')
  );
}

/** A batch Bundle, whose entries each commit on their own, with a row of their own. */
export function isBatchBundle(request: FastifyRequest): boolean {
  return (
    request.method === 'POST' &&
    routeOf(request) === '/fhir' &&
    (request.body as { type?: unknown } | undefined)?.type === 'batch'
  );
}

/** A batch entry's request method as the FHIR interaction it performs. */
const ENTRY_INTERACTIONS: Record<string, string> = {
  POST: 'create',
  PUT: 'update',
  PATCH: 'patch',
  DELETE: 'delete',
};

/**
 * The row of one batch entry, written in the entry's transaction (or after it, for an entry that
 * failed): the request's row but for the entry's interaction, status and outcome, and what it
 * touched (the request's row no longer names it).
 */
export function batchEntryAuditEntry(
  request: FastifyRequest,
  part: AuditScope,
  outcome: AuditPart,
): AuditEntry {
  const interaction = ENTRY_INTERACTIONS[outcome.method] ?? outcome.interaction ?? 'execute';
  const single = part.entities.size === 1 ? part.primary : undefined;
  return {
    ...httpAuditEntry(request, outcome.status, part),
    action: interaction,
    subtype: interaction,
    // The entry's URL names the type: a word the client typed (`GET MRN77/1`), kept only when
    // it is a resource type.
    resourceType: part.primary?.type ?? knownType(outcome.type),
    resourceId: single?.id ?? null,
    resourceVersion: single ? (outcome.version ?? single.version) : null,
  };
}

/** The token endpoint's grants, as audit subtypes. */
const GRANTS = new Map([
  ['client_credentials', 'client-credentials'],
  ['authorization_code', 'authorization-code'],
  ['refresh_token', 'refresh'],
]);

export function describeRoute(
  method: string,
  route: string | null,
  body: unknown,
): RouteAction & { bundle: boolean } {
  if (route === '/fhir' && method === 'POST') {
    const type = (body as { type?: unknown } | undefined)?.type;
    return {
      action: 'execute',
      subtype: type === 'transaction' || type === 'batch' ? type : 'bundle',
      bundle: true,
    };
  }
  // An authorization request posted as a form (authorize-post) is the GET's page, not a login.
  if (route === '/auth/authorize' && method === 'POST' && isAuthorizationRequest(body)) {
    return { action: 'read', subtype: null, bundle: false };
  }
  if (route === '/auth/token' && method === 'POST') {
    const grant = (body as { grant_type?: unknown } | undefined)?.grant_type;
    return { action: 'login', subtype: GRANTS.get(String(grant)) ?? 'token', bundle: false };
  }
  const known = route ? ROUTE_ACTIONS[`${method} ${route}`] : undefined;
  return {
    ...(known ?? { action: METHOD_ACTIONS[method] ?? 'execute', subtype: null }),
    bundle: false,
  };
}

/**
 * The names of the parameters of a search (query string or form), never their values, and
 * only those FHIR defines for `type` (or for searches, operations and our lists): a name the
 * client made up may be a patient's name or MRN (`?Quixoticson=1`, `?name:Zebulon=…`), which
 * rows kept until 2026-12-06. Each of those is recorded once as `unknown`.
 */
function parameterNames(
  request: FastifyRequest,
  route: string | null,
  type: string | null,
): string[] {
  const names = new Set(Object.keys((request.query as Record<string, unknown> | undefined) ?? {}));
  if (route?.endsWith('/_search') && request.body && typeof request.body === 'object') {
    for (const name of Object.keys(request.body)) names.add(name);
  }
  return [...new Set([...names].map((name) => knownParameter(name, type)))].sort();
}

function param(
  request: FastifyRequest,
  name: string,
  valid: (value: string) => boolean,
): string | null {
  const value = (request.params as Record<string, unknown> | undefined)?.[name];
  return typeof value === 'string' && valid(value) ? value : null;
}

/** A narrowed token's scopes, patient in context and backend client, as SMART spells them. */
function scopeText(user: AuthenticatedUser): string {
  return [
    ...(user.scopes ?? []).map(formatScope),
    ...(user.patient ? [`patient=${user.patient}`] : []),
    ...(user.clientId ? [`client=${user.clientId}`] : []),
  ].join(' ');
}

/**
 * The patient a request refused by a guard (401, 403) names in its URL (`/fhir/Patient/{id}…`):
 * the attempt is on that patient's record though the record was never opened, which is when
 * nothing else names the patient. Not on a 404 (no such Patient: the id may be an MRN typed in
 * its place, and the row would keep it a second time), nor from a break-glass body, which the
 * guard refuses before anything checks that it names a stored Patient (RefusedRequests names
 * that one once it has checked).
 */
function namedPatients(
  route: string | null,
  resourceType: string | null,
  resourceId: string | null,
  statusCode: number,
): string[] {
  const refused = statusCode === 401 || statusCode === 403;
  return refused && route?.startsWith('/fhir/') && resourceType === 'Patient' && resourceId
    ? [resourceId]
    : [];
}

/**
 * A compartment search's compartment (`Patient` of `/fhir/Patient/1/Observation`): the resource
 * its URL names is the patient, whose id is `:id`; `:type` is what it searches for.
 */
function compartmentOf(request: FastifyRequest, route: string | null): string | null {
  return route?.startsWith('/fhir/:compartment/:id/')
    ? knownType(param(request, 'compartment', () => true))
    : null;
}

/** The resource a request's URL names (`/fhir/Observation/1`, `/fhir/Patient/1/$everything`). */
export function namedResource(request: FastifyRequest, route: string | null): string | null {
  const id = param(request, 'id', isValidId);
  if (!id || !route) return null;
  const type = route.startsWith('/fhir/:compartment/')
    ? compartmentOf(request, route)
    : (knownType(param(request, 'type', () => true)) ??
      /^\/fhir\/([A-Z][A-Za-z]{0,63})\/:id(\/|$)/.exec(route)?.[1]);
  // A resource of a type FHIR does not define cannot be stored: `MRN77/px` names nothing.
  return type && type !== UNKNOWN ? `${type}/${id}` : null;
}

/**
 * What the request touched, and first the resource its URL names: a request refused before it
 * opened that resource (by a guard) is about it all the same, and AuditEvent.entity and the
 * `entity` search read this list.
 */
function withNamed(touched: Set<string> | undefined, named: string | null): string[] {
  const entities = [...(touched ?? [])];
  return named && !entities.includes(named) ? [named, ...entities] : entities;
}

/**
 * What an id in the route may be to be kept. Outside `/fhir` every `:id` is a UUID the server
 * made (an HL7 message, an outbox entry): anything else was typed by the client, and may be an
 * MRN (`/hl7/messages/CANMRN778899/reprocess` refused 403 kept it until 2026-12-06).
 */
function idOf(route: string | null): (value: string) => boolean {
  return route?.startsWith('/fhir/') ? isValidId : (value) => isUuid(value.toLowerCase());
}

/** The type whose search parameters a request's may be (the searched one, in a compartment). */
function searchedType(request: FastifyRequest, fixedType: string | null): string | null {
  const type = knownType(param(request, 'type', () => true)) ?? fixedType;
  return type === UNKNOWN ? null : type;
}

/** One request's audit entry, from the request, its final status and what it touched. */
export function httpAuditEntry(
  request: FastifyRequest,
  statusCode: number,
  scope: AuditScope | undefined,
  refusal: { detail: string | null; neverStored: boolean } = { detail: null, neverStored: false },
): AuditEntry {
  const route = routeOf(request);
  const described = describeRoute(request.method, route, request.body);
  const user = (request as FastifyRequest & { user?: AuthenticatedUser }).user;
  const actor = scope?.actor;
  const fixedType = route?.startsWith('/fhir/Patient/')
    ? 'Patient'
    : route?.startsWith('/fhir/AuditEvent')
      ? 'AuditEvent'
      : null;
  // A compartment search (`/fhir/Patient/1/Observation`) is about the patient: until 2026-12-06
  // its row named `Observation/1`, a resource that need not exist.
  const resourceType = described.bundle
    ? 'Bundle'
    : (fixedType ??
      compartmentOf(request, route) ??
      // The type as typed only when FHIR defines it: `GET /fhir/MRN77/1` is `unknown`.
      knownType(param(request, 'type', () => true)) ??
      scope?.primary?.type ??
      null);
  // A Bundle request's resource is the Bundle, which has no id: the one resource its entries
  // touched is in `entities`, not a "Bundle/<its id>" that does not exist.
  // An id naming nothing stored (the resource read, changed or referred to is not there) may be
  // an MRN or a name typed in an id's place, which the row kept until 2026-12-06. Another
  // patient's record answered 404 to a patient-scoped token is stored, and stays named. A
  // request refused before the service looked (a guard's) is checked by RefusedRequests.
  const named = namedResource(request, route);
  const unknown = named !== null && (refusal.neverStored || scope?.unstored.has(named) === true);
  const resourceId = described.bundle
    ? null
    : ((unknown || resourceType === UNKNOWN ? null : param(request, 'id', idOf(route))) ??
      (scope?.entities.size === 1 ? scope.primary?.id : null) ??
      null);
  const primaryMatches = scope?.primary?.id === resourceId && scope?.primary?.type === resourceType;
  const patients = new Set(scope?.patients);
  for (const patient of namedPatients(route, resourceType, resourceId, statusCode)) {
    patients.add(patient);
  }
  const userAgent = request.headers['user-agent'];
  return {
    id: randomUUID(),
    recordedAt: new Date(),
    source: 'http',
    requestId: request.id,
    actorUserId: user?.id ?? actor?.id ?? null,
    actorName: user?.username ?? actor?.name ?? null,
    actorRoles: [...(user?.roles ?? actor?.roles ?? [])],
    // A token request has no token yet: its row names the client asking, as the token's will.
    actorScope: user?.scopes
      ? scopeText(user)
      : actor?.clientId
        ? `client=${actor.clientId}`
        : null,
    breakGlass: scope?.breakGlass ?? false,
    sourceIp: request.ip ?? null,
    userAgent: typeof userAgent === 'string' ? userAgent.slice(0, 200) : null,
    action: described.action,
    subtype: described.subtype,
    method: request.method,
    route,
    resourceType,
    resourceId,
    resourceVersion:
      param(request, 'vid', (value) => /^\d{1,10}$/.test(value)) ??
      (primaryMatches ? (scope?.primary?.version ?? null) : null),
    patientIds: [...patients].sort(),
    entities: withNamed(scope?.entities, unknown ? null : named),
    queryParams: parameterNames(request, route, searchedType(request, fixedType)),
    outcome: statusCode < 400 ? 'success' : 'failure',
    statusCode,
    detail: refusal.detail,
  };
}

/**
 * The row of a request Node's HTTP parser refused: nothing of it could be read (its method,
 * headers and user are in the bytes refused), so the row has the address, status and issue code.
 */
export function clientRefusalAuditEntry(refusal: ClientRefusal): AuditEntry {
  return {
    id: randomUUID(),
    recordedAt: new Date(),
    source: 'http',
    requestId: refusal.requestId,
    actorUserId: null,
    actorName: null,
    actorRoles: [],
    actorScope: null,
    breakGlass: false,
    sourceIp: refusal.sourceIp,
    userAgent: null,
    action: 'execute',
    subtype: null,
    method: null,
    route: null,
    resourceType: null,
    resourceId: null,
    resourceVersion: null,
    patientIds: [],
    entities: [],
    queryParams: [],
    outcome: 'failure',
    statusCode: refusal.status,
    detail: refusal.issue,
  };
}
