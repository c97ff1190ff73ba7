import type { ChainedAuditEntry } from './audit-record.js';

const DCM = 'http://dicom.nema.org/resources/ontology/DCM';
const REST = 'http://terminology.hl7.org/CodeSystem/audit-event-type';
const INTERACTION = 'http://hl7.org/fhir/restful-interaction';
const ENTITY_TYPE = 'http://terminology.hl7.org/CodeSystem/audit-entity-type';
const OBJECT_ROLE = 'http://terminology.hl7.org/CodeSystem/object-role';
const BALP_ENTITY = 'https://profiles.ihe.net/ITI/BALP/CodeSystem/BasicAuditEntityType';
const ACT_REASON = 'http://terminology.hl7.org/CodeSystem/v3-ActReason';
const SOURCE_TYPE = 'http://terminology.hl7.org/CodeSystem/security-source-type';
const CAREVAULT_USER = 'urn:carevault:user';
const CAREVAULT_CLIENT = 'urn:carevault:client';

/** The SMART client a row's scope names (`client=<id>`, see http-audit's scopeText). */
export function clientOf(actorScope: string | null): string | undefined {
  return actorScope === null ? undefined : /(?:^| )client=(\S+)/.exec(actorScope)?.[1];
}

/** Our actions as the AuditEvent.action codes (Create, Read, Update, Delete, Execute). */
const ACTION_CODES: Record<string, 'C' | 'R' | 'U' | 'D' | 'E'> = {
  create: 'C',
  read: 'R',
  vread: 'R',
  search: 'E',
  history: 'R',
  update: 'U',
  patch: 'U',
  delete: 'D',
};

export function actionCode(action: string): 'C' | 'R' | 'U' | 'D' | 'E' {
  return ACTION_CODES[action] ?? 'E';
}

/** The actions that have an AuditEvent.action code, for searching by that code. */
export function actionsFor(code: string): string[] | undefined {
  if (!['C', 'R', 'U', 'D', 'E'].includes(code)) return undefined;
  const known = Object.entries(ACTION_CODES)
    .filter(([, value]) => value === code)
    .map(([action]) => action);
  return code === 'E' ? [...known, 'execute', 'login', 'logout', 'export', 'import'] : known;
}

/** AuditEvent.outcome: 0 success, 4 minor failure (refused), 8 serious failure (server error). */
function outcomeCode(entry: ChainedAuditEntry): '0' | '4' | '8' {
  if (entry.outcome === 'success') return '0';
  return (entry.statusCode ?? 500) >= 500 ? '8' : '4';
}

function eventType(entry: ChainedAuditEntry): Record<string, string> {
  if (entry.action === 'login' || entry.action === 'logout') {
    return entry.action === 'login'
      ? { system: DCM, code: '110122', display: 'Login' }
      : { system: DCM, code: '110123', display: 'Logout' };
  }
  if (entry.route?.startsWith('/fhir')) {
    return { system: REST, code: 'rest', display: 'RESTful Operation' };
  }
  return { system: DCM, code: '110100', display: 'Application Activity' };
}

/** One chain row as a FHIR R4 AuditEvent, shaped after IHE Basic Audit Log Patterns. */
export function toAuditEvent(entry: ChainedAuditEntry): Record<string, unknown> {
  const client = clientOf(entry.actorScope);
  const restful =
    entry.route?.startsWith('/fhir') && entry.subtype && !entry.subtype.startsWith('$');
  const entities: Record<string, unknown>[] = [
    ...entry.patientIds.map((id) => ({
      what: { reference: `Patient/${id}` },
      type: { system: ENTITY_TYPE, code: '1', display: 'Person' },
      role: { system: OBJECT_ROLE, code: '1', display: 'Patient' },
    })),
    ...entry.entities.map((reference) => ({
      what: { reference },
      type: { system: ENTITY_TYPE, code: '2', display: 'System Object' },
    })),
  ];
  if (entry.queryParams.length > 0) {
    entities.push({
      type: { system: ENTITY_TYPE, code: '2', display: 'System Object' },
      role: { system: OBJECT_ROLE, code: '24', display: 'Query' },
      // Parameter names only: the values of a search can be PHI.
      detail: [{ type: 'parameters', valueString: entry.queryParams.join(',') }],
    });
  }
  if (entry.requestId) {
    entities.push({
      what: { identifier: { value: entry.requestId } },
      type: { system: BALP_ENTITY, code: 'XrequestId', display: 'X-Request-Id' },
    });
  }
  return {
    resourceType: 'AuditEvent',
    id: entry.id,
    meta: { versionId: '1', lastUpdated: entry.recordedAt.toISOString() },
    type: eventType(entry),
    ...(entry.subtype
      ? {
          subtype: [
            restful
              ? { system: INTERACTION, code: entry.subtype }
              : { system: 'urn:carevault:audit-subtype', code: entry.subtype },
          ],
        }
      : {}),
    action: actionCode(entry.action),
    recorded: entry.recordedAt.toISOString(),
    outcome: outcomeCode(entry),
    outcomeDesc: [
      entry.statusCode !== null ? `HTTP ${entry.statusCode}` : entry.outcome,
      entry.detail,
    ]
      .filter(Boolean)
      .join(' '),
    ...(entry.breakGlass
      ? {
          purposeOfEvent: [
            { coding: [{ system: ACT_REASON, code: 'BTG', display: 'break the glass' }] },
          ],
        }
      : {}),
    agent: [
      {
        type: {
          coding: [{ system: DCM, code: '110153', display: 'Source Role ID' }],
        },
        who: entry.actorUserId
          ? {
              identifier: { system: CAREVAULT_USER, value: entry.actorUserId },
              ...(entry.actorName ? { display: entry.actorName } : {}),
            }
          : { display: entry.source === 'cli' ? (entry.actorName ?? 'cli') : 'anonymous' },
        // What the `agent-name` search matches (R4's expression: AuditEvent.agent.name).
        ...(entry.actorName ? { name: entry.actorName } : {}),
        requestor: true,
        ...(entry.actorRoles.length > 0
          ? { role: entry.actorRoles.map((role) => ({ text: role })) }
          : {}),
        // SMART scopes of a narrowed token: the rights the request was made under.
        ...(entry.actorScope ? { policy: entry.actorScope.split(' ') } : {}),
        ...(entry.sourceIp ? { network: { address: entry.sourceIp, type: '2' } } : {}),
      },
      // BALP's client agent: the app or backend client the token was issued to. What the
      // `agent=urn:carevault:client|<id>` search matches.
      ...(client
        ? [
            {
              type: { coding: [{ system: DCM, code: '110150', display: 'Application' }] },
              who: { identifier: { system: CAREVAULT_CLIENT, value: client } },
              requestor: false,
            },
          ]
        : []),
    ],
    source: {
      site: entry.source,
      observer: { display: 'CareVault' },
      type: [{ system: SOURCE_TYPE, code: '4', display: 'Application Server' }],
    },
    ...(entities.length > 0 ? { entity: entities } : {}),
  };
}
