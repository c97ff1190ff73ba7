import { randomUUID } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import { canAccessFhir, type FhirInteraction } from '../../src/auth/permissions.js';
import { isValidId } from '../../src/fhir/fhir-types.js';
import { auditEntry, type GroupCommit } from './audit.js';
import type { BaselineAuth, BaselineUser } from './auth.js';
import {
  baseUrlOf,
  FHIR_JSON,
  Problem,
  requestFacts,
  sendStored,
  setUser,
  userOf,
} from './http.js';
import { criterionHash, searchBundle } from './search.js';
import { CONFIDENTIALITY, RESTRICTING_CODES } from './statements.js';
import { INDEXED_TYPES, type BaselineStore, type Json } from './store.js';
import {
  inWriteOrder,
  patientsOf,
  patientsReferred,
  planTransaction,
  transactionResponse,
} from './transaction.js';

function authorize(user: BaselineUser, type: string, interaction: FhirInteraction): void {
  if (!canAccessFhir(user.roles, type, interaction)) {
    throw new Problem(403, 'forbidden', 'Access denied');
  }
}

/** `meta.security` code R or V: CareVault opens such a record only through break-glass. */
function isRestricted(resource: Json): boolean {
  const labels = (resource['meta'] as { security?: unknown } | undefined)?.security;
  return (
    Array.isArray(labels) &&
    labels.some(
      (label: { system?: unknown; code?: unknown }) =>
        label.system === CONFIDENTIALITY && RESTRICTING_CODES.includes(label.code as string),
    )
  );
}

/**
 * The benchmark's five requests, each with CareVault's database work: a write and its audit
 * row in one transaction, a read or search and then its audit row through the group commit.
 */
export function registerRoutes(
  app: FastifyInstance,
  { store, audit, auth }: { store: BaselineStore; audit: GroupCommit; auth: BaselineAuth },
): void {
  app.addHook('onRequest', async (request, reply) => {
    void reply.header('x-request-id', request.id);
    const user = await auth.verify(request.headers.authorization);
    if (!user) throw new Problem(401, 'login', 'Authentication is required');
    setUser(request, user);
  });

  app.post('/fhir/:type', async (request, reply) => {
    const user = userOf(request);
    const { type } = request.params as { type: string };
    const body = request.body as Json | null;
    if (!INDEXED_TYPES.has(type)) throw new Problem(404, 'not-supported', 'Not in the baseline');
    authorize(user, type, 'create');
    if (typeof body !== 'object' || body === null || body['resourceType'] !== type) {
      throw new Problem(400, 'invalid', 'resourceType in the body must match the URL');
    }
    const id = randomUUID();
    const written = await store.transaction(async (client) => {
      await store.lockReferredPatients(client, [
        { type, id, referred: patientsReferred(type, id, body) },
      ]);
      // One create through the many-creates path, as FhirService.create does.
      const [written] = await store.insertFirst(client, [{ resource: body, id }]);
      if (!written) throw new Error('insertFirst wrote nothing');
      await store.appendAudit(
        client,
        auditEntry({
          ...requestFacts(request),
          resourceId: written.id,
          resourceVersion: '1',
          patientIds: patientsOf(written),
          entities: [`${type}/${written.id}`],
          statusCode: 201,
        }),
      );
      return written;
    });
    return sendStored(reply, { ...written, versionId: 1 }, 201, baseUrlOf(request));
  });

  app.get('/fhir/:type/:id', async (request, reply) => {
    const user = userOf(request);
    const { type, id } = request.params as { type: string; id: string };
    if (type !== 'Patient') throw new Problem(404, 'not-supported', 'Not in the baseline');
    authorize(user, type, 'read');
    if (!isValidId(id)) throw new Problem(400, 'invalid', 'Invalid resource id');
    const current = await store.findCurrent(type, id);
    if (!current) throw new Problem(404, 'not-found', `${type} resource not found`);
    if (current.deleted || current.content === null) {
      throw new Problem(410, 'deleted', `${type} resource was deleted`);
    }
    const content = current.content;
    if (isRestricted(JSON.parse(content) as Json)) {
      throw new Problem(403, 'security', 'This record is restricted');
    }
    await audit.record(
      auditEntry({
        ...requestFacts(request),
        resourceId: id,
        resourceVersion: String(current.versionId),
        patientIds: [id],
        entities: [`${type}/${id}`],
        statusCode: 200,
      }),
    );
    return sendStored(reply, { resourceType: type, id, ...current, content }, 200);
  });

  app.get('/fhir/:type', async (request, reply) => {
    const user = userOf(request);
    const { type } = request.params as { type: string };
    if (type !== 'Patient') throw new Problem(404, 'not-supported', 'Not in the baseline');
    authorize(user, type, 'search');
    const query = request.query as Record<string, unknown>;
    const { param, hash } = criterionHash(store.blind, type, query);
    const rows = await store.searchOneHash(type, param, hash);
    const { json, page } = searchBundle(baseUrlOf(request), type, query, rows);
    const only = page.length === 1 ? page[0] : undefined;
    await audit.record(
      auditEntry({
        ...requestFacts(request),
        resourceId: only?.id ?? null,
        resourceVersion: only ? String(only.version_id) : null,
        patientIds: page.map((row) => row.id),
        entities: page.map((row) => `${row.resource_type}/${row.id}`),
        statusCode: 200,
      }),
    );
    return reply.header('content-type', FHIR_JSON).send(json);
  });

  app.post('/fhir', async (request, reply) => {
    const user = userOf(request);
    const creates = planTransaction(request.body);
    for (const create of creates) authorize(user, create.type, 'create');
    const ordered = inWriteOrder(creates);
    const written = await store.transaction(async (client) => {
      await store.lockReferredPatients(
        client,
        ordered.map(({ type, id, resource }) => ({
          type,
          id,
          referred: patientsReferred(type, id, resource),
        })),
      );
      const written = await store.insertFirst(client, ordered);
      const only = written.length === 1 ? written[0] : undefined;
      await store.appendAudit(
        client,
        auditEntry({
          ...requestFacts(request),
          resourceId: only?.id ?? null,
          resourceVersion: null,
          patientIds: written.flatMap(patientsOf),
          entities: written.map((w) => `${w.resourceType}/${w.id}`),
          statusCode: 200,
        }),
      );
      return written;
    });
    // Answered in the Bundle's order.
    const byId = new Map(written.map((w) => [w.id, w]));
    const answered = creates.map(({ id }) => byId.get(id)!);
    return reply.header('content-type', FHIR_JSON).send(transactionResponse(answered));
  });
}
