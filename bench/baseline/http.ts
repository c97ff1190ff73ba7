import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { BaselineUser } from './auth.js';
import { auditEntry, type GroupCommit, type RequestAudit } from './audit.js';

export const FHIR_JSON = 'application/fhir+json; charset=utf-8';

/** A refused request: its status and the OperationOutcome issue it answers with. */
export class Problem extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    diagnostics: string,
  ) {
    super(diagnostics);
  }
}

const users = new WeakMap<FastifyRequest, BaselineUser>();

export function setUser(request: FastifyRequest, user: BaselineUser): void {
  users.set(request, user);
}

export function userOf(request: FastifyRequest): BaselineUser {
  const user = users.get(request);
  if (!user) throw new Problem(401, 'login', 'Authentication is required');
  return user;
}

/** The FHIR base URL as the client addressed it, for Location and Bundle links. */
export function baseUrlOf(request: FastifyRequest): string {
  return `${request.protocol}://${request.host}/fhir`;
}

/** The route template Fastify matched, as CareVault's audit rows name it. */
function routeOf(request: FastifyRequest): string | null {
  const url = request.routeOptions.url;
  return typeof url === 'string' && url.length > 0 ? url.replace(/\/$/, '') || '/' : null;
}

const ACTIONS: Record<string, { action: string; subtype: string | null }> = {
  'POST /fhir/:type': { action: 'create', subtype: 'create' },
  'GET /fhir/:type': { action: 'search', subtype: 'search-type' },
  'GET /fhir/:type/:id': { action: 'read', subtype: 'read' },
};

/**
 * The request's side of its audit row (httpAuditEntry): who, from where, which route and
 * action, the parameter names of the query. The handler adds what it touched.
 */
export function requestFacts(
  request: FastifyRequest,
): Omit<
  RequestAudit,
  'resourceId' | 'resourceVersion' | 'patientIds' | 'entities' | 'statusCode' | 'detail'
> {
  const route = routeOf(request);
  const bundleType = (request.body as { type?: unknown } | undefined)?.type;
  const described =
    route === '/fhir' && request.method === 'POST'
      ? {
          action: 'execute',
          subtype: bundleType === 'transaction' || bundleType === 'batch' ? bundleType : 'bundle',
        }
      : (ACTIONS[`${request.method} ${route ?? ''}`] ?? { action: 'execute', subtype: null });
  const type = (request.params as { type?: unknown } | undefined)?.type;
  const userAgent = request.headers['user-agent'];
  return {
    requestId: request.id,
    user: users.get(request),
    ip: request.ip,
    userAgent: typeof userAgent === 'string' ? userAgent : undefined,
    method: request.method,
    route,
    ...described,
    resourceType:
      route === '/fhir'
        ? 'Bundle'
        : typeof type === 'string' && /^[A-Z][A-Za-z]{0,63}$/.test(type)
          ? type
          : null,
    queryParams: Object.keys((request.query as Record<string, unknown> | undefined) ?? {})
      .filter((name) => name.length <= 100)
      .sort(),
  };
}

/** A stored version's headers (sendStored), then its JSON as it was stored. */
export function sendStored(
  reply: FastifyReply,
  stored: {
    resourceType: string;
    id: string;
    versionId: number;
    lastUpdated: Date;
    content: string;
  },
  status: number,
  location?: string,
): FastifyReply {
  reply.status(status);
  reply.header('content-type', FHIR_JSON);
  reply.header('etag', `W/"${stored.versionId}"`);
  reply.header('last-modified', stored.lastUpdated.toUTCString());
  if (location) {
    reply.header(
      'location',
      `${location}/${stored.resourceType}/${stored.id}/_history/${stored.versionId}`,
    );
  }
  return reply.send(stored.content);
}

/**
 * Failures answer with an OperationOutcome and still get their audit row (the exception
 * filter's job in CareVault), through the group commit: a failed write has rolled back.
 */
export function handleErrors(app: FastifyInstance, audit: GroupCommit): void {
  app.setErrorHandler(async (error, request, reply) => {
    const status =
      error instanceof Problem
        ? error.status
        : typeof (error as { statusCode?: unknown }).statusCode === 'number'
          ? (error as { statusCode: number }).statusCode
          : 500;
    const code = error instanceof Problem ? error.code : status < 500 ? 'invalid' : 'exception';
    const diagnostics =
      error instanceof Problem
        ? error.message
        : status < 500
          ? 'The request is not valid'
          : 'Internal error';
    try {
      await audit.record(
        auditEntry({
          ...requestFacts(request),
          resourceId: null,
          resourceVersion: null,
          patientIds: [],
          entities: [],
          statusCode: status,
          detail: code,
        }),
      );
    } catch {
      // The answer below still goes out; a load test counts it as an error either way.
    }
    return reply
      .status(status)
      .header('content-type', FHIR_JSON)
      .send(
        JSON.stringify({
          resourceType: 'OperationOutcome',
          issue: [{ severity: 'error', code, diagnostics }],
        }),
      );
  });
}
