import { randomUUID } from 'node:crypto';
import { contentHash, storableEntry, type AuditEntry } from './audit-record.js';
import { appendStatement } from './audit.repository.js';

const entry: AuditEntry = {
  id: randomUUID(),
  recordedAt: new Date('2026-12-07T10:00:00.000Z'),
  source: 'http',
  requestId: 'req-1',
  actorUserId: randomUUID(),
  actorName: 'doctor',
  actorRoles: ['clinician'],
  actorScope: null,
  breakGlass: false,
  sourceIp: '127.0.0.1',
  userAgent: 'agent\u0000x',
  action: 'read',
  subtype: 'read',
  method: 'GET',
  route: '/fhir/:type/:id',
  resourceType: 'Patient',
  resourceId: 'p1',
  resourceVersion: '1',
  patientIds: ['p1'],
  entities: ['Patient/p1'],
  queryParams: ['a\uD800'],
  outcome: 'success',
  statusCode: 200,
  detail: null,
};

describe('appendStatement', () => {
  it('sends each entry storable, column by column in order, with the hash of that form', () => {
    const { text, values } = appendStatement([entry], 5000);
    expect(text).toContain('audit_append($1::jsonb)');
    const [record] = JSON.parse(values[0]!) as Record<string, unknown>[];
    const storable = storableEntry(entry);
    expect(Object.keys(record!)).toEqual([
      'id',
      'recorded_at',
      'source',
      'request_id',
      'actor_user_id',
      'actor_name',
      'actor_roles',
      'actor_scope',
      'break_glass',
      'source_ip',
      'user_agent',
      'action',
      'subtype',
      'method',
      'route',
      'resource_type',
      'resource_id',
      'resource_version',
      'patient_ids',
      'entities',
      'query_params',
      'outcome',
      'status_code',
      'detail',
      'content_hash',
    ]);
    expect(record!['user_agent']).toBe('agent\uFFFDx');
    expect(record!['query_params']).toEqual(['a\uFFFD']);
    expect(record!['recorded_at']).toBe('2026-12-07T10:00:00.000Z');
    expect(record!['content_hash']).toBe(contentHash(storable));
    expect(values[1]).toBe('5000ms');
  });
});
