import { Injectable } from '@nestjs/common';
import { AppError } from '../common/errors/app-error.js';
import { unencodedPlus } from '../common/http/media-types.js';
import type { CursorCodec } from '../fhir/cursor.js';
import { buildHistoryBundle, cursorLinks, entries, type Bundle } from '../fhir/bundle.js';
import {
  isValidId,
  type FhirResource,
  type HistoryParams,
  type StoredResource,
} from '../fhir/fhir-types.js';
import { showsOnlyVersion } from '../fhir/history-params.js';
import { dateRange } from '../fhir/search/date-range.js';
import { splitPrefix } from '../fhir/search/prefixes.js';
import { tokenParts, unescapeSearch } from '../fhir/search/search-escapes.js';
import { AuditContext } from './audit-context.js';
import { actionsFor, toAuditEvent } from './audit-event.mapper.js';
import type { ChainedAuditEntry } from './audit-record.js';
import { AuditRepository, type AuditQuery } from './audit.repository.js';

const DEFAULT_COUNT = 50;
const MAX_COUNT = 1000;
const SUPPORTED = [
  'patient',
  'agent',
  'agent-name',
  'agent-name:exact',
  'entity',
  'date',
  'action',
  'outcome',
  'subtype',
  '_count',
  '_cursor',
  // R4 takes these on every interaction: how the answer is written, not what it holds.
  '_format',
  '_pretty',
];

type Query = Record<string, string | string[] | undefined>;

/** A comma after an even number of backslashes (none, or escaped ones): FHIR's OR. */
const UNESCAPED_COMMA = /(?:^|[^\\])(?:\\\\)*,/;

/**
 * Reading the trail as FHIR: AuditEvent search (newest first, keyset paging on the chain
 * sequence) and the accounting of disclosures for one patient.
 */
@Injectable()
export class AuditEventService {
  constructor(
    private readonly repository: AuditRepository,
    private readonly context: AuditContext,
  ) {}

  async search(query: Query, baseUrl: string): Promise<Record<string, unknown>> {
    const criteria = parseQuery(query);
    if (criteria.patient !== undefined) {
      // Who read this patient's trail read who treated them: a disclosure about the patient,
      // recorded against them as a search of their records is.
      await this.touchStoredPatient(criteria.patient);
    }
    return this.bundle(criteria, query, baseUrl, `${baseUrl}/AuditEvent`);
  }

  async read(id: string): Promise<StoredResource> {
    const entry = await this.find(id);
    return {
      resourceType: 'AuditEvent',
      id: entry.id,
      versionId: 1,
      lastUpdated: entry.recordedAt,
      resource: toAuditEvent(entry) as FhirResource,
    };
  }

  /**
   * `AuditEvent/{id}/_history`: an AuditEvent is never changed (the chain forbids it), so its
   * history is its one version, 1, unless `_since` or `_at` leaves it out.
   */
  async history(
    id: string,
    params: HistoryParams,
    cursors: CursorCodec,
    baseUrl: string,
  ): Promise<Bundle> {
    const entry = await this.find(id);
    const versions = showsOnlyVersion(entry.recordedAt, params)
      ? [
          {
            resourceType: 'AuditEvent',
            id: entry.id,
            versionId: 1,
            lastUpdated: entry.recordedAt,
            resource: toAuditEvent(entry) as FhirResource,
          },
        ]
      : [];
    const self = `${baseUrl}/AuditEvent/${entry.id}/_history`;
    return buildHistoryBundle(
      versions,
      cursorLinks(params, self, undefined, cursors),
      baseUrl,
      // Its one version was committed with it: complete up to now.
      new Date(),
      versions.length,
    );
  }

  /** `AuditEvent/{id}/_history/1` is the event; it has no other version. */
  async vread(id: string, versionId: string): Promise<StoredResource> {
    const event = await this.read(id);
    if (versionId !== '1') {
      throw AppError.notFound('AuditEvent version not found: an AuditEvent has one version, 1');
    }
    return event;
  }

  /** Who accessed this patient's records, when and how (HIPAA 164.528 accounting). */
  async patientTrail(
    patientId: string,
    query: Query,
    baseUrl: string,
  ): Promise<Record<string, unknown>> {
    const criteria = parseQuery({ ...query, patient: patientId });
    // Like the CLI report, this reveals who treated the patient: it is recorded against them.
    await this.touchStoredPatient(patientId);
    return this.bundle(criteria, query, baseUrl, `${baseUrl}/Patient/${patientId}/$audit-trail`);
  }

  /** Every row that touched the patient, oldest first, for the CLI report. */
  async patientEntries(patientId: string): Promise<ChainedAuditEntry[]> {
    const rows: ChainedAuditEntry[] = [];
    let beforeSeq: number | undefined;
    for (;;) {
      const page = await this.repository.search({
        patient: patientId,
        limit: MAX_COUNT,
        ...(beforeSeq ? { beforeSeq } : {}),
      });
      rows.push(...page);
      if (page.length < MAX_COUNT) break;
      beforeSeq = page.at(-1)!.chainSeq;
    }
    return rows.reverse();
  }

  /** Whether a Patient of this id was ever stored (deleted since or not). */
  wasPatientStored(patientId: string): Promise<boolean> {
    return this.repository.isPatientId(patientId);
  }

  /**
   * Names the patient in the request's row if a Patient of that id was ever stored (a deleted
   * one's trail is still theirs). Anything else may be an MRN typed in place of the id, which
   * the row would keep in plaintext.
   */
  private async touchStoredPatient(patientId: string): Promise<void> {
    if (await this.repository.isPatientId(patientId)) {
      this.context.touchPatient(patientId);
    } else {
      this.context.forget([`Patient/${patientId}`]);
    }
  }

  private async find(id: string): Promise<ChainedAuditEntry> {
    const entry = /^[0-9a-f-]{36}$/.test(id) ? await this.repository.findById(id) : undefined;
    if (!entry) {
      throw AppError.notFound('AuditEvent resource not found');
    }
    return entry;
  }

  private async bundle(
    criteria: AuditQuery,
    query: Query,
    baseUrl: string,
    selfUrl: string,
  ): Promise<Record<string, unknown>> {
    const rows = await this.repository.search({ ...criteria, limit: criteria.limit + 1 });
    const page = rows.slice(0, criteria.limit);
    const link = [{ relation: 'self', url: withParams(selfUrl, query, {}) }];
    if (rows.length > criteria.limit) {
      link.push({
        relation: 'next',
        url: withParams(selfUrl, query, { _cursor: String(page.at(-1)!.chainSeq) }),
      });
    }
    return {
      resourceType: 'Bundle',
      type: 'searchset',
      link,
      ...entries(
        page.map((entry) => ({
          fullUrl: `${baseUrl}/AuditEvent/${entry.id}`,
          resource: toAuditEvent(entry),
          search: { mode: 'match' },
        })),
      ),
    };
  }
}

function values(query: Query, name: string): string[] {
  const value = query[name];
  return value === undefined ? [] : [value].flat();
}

/**
 * The parameter's one value, as sent. A comma separates values (FHIR's OR), which these searches
 * do not take; one inside a value is written `\,` (search escaping), as a subject may hold one.
 */
function single(query: Query, name: string): string | undefined {
  const all = values(query, name);
  if (all.length > 1 || all.some((value) => UNESCAPED_COMMA.test(value))) {
    throw AppError.invalid(
      `${name} takes one value here (a comma inside the value is written \\,)`,
      [name],
    );
  }
  return all[0];
}

function reference(value: string | undefined, type: string): string | undefined {
  if (value === undefined) return undefined;
  const id = value.startsWith(`${type}/`) ? value.slice(type.length + 1) : value;
  if (!isValidId(id)) {
    throw AppError.invalid(`${type} must be an id or ${type}/id`, [type]);
  }
  return id;
}

function parseQuery(query: Query): AuditQuery {
  for (const name of Object.keys(query)) {
    if (!SUPPORTED.includes(name)) {
      throw AppError.invalid(
        `Unknown AuditEvent search parameter ${name.slice(0, 64)}; supported: ${SUPPORTED.join(', ')}`,
      );
    }
  }
  const criteria: AuditQuery = { limit: DEFAULT_COUNT };
  const patient = reference(single(query, 'patient'), 'Patient');
  if (patient) criteria.patient = patient;
  const agent = single(query, 'agent');
  const token = agent === undefined ? undefined : tokenParts(agent);
  if (token?.system === 'urn:carevault:client') {
    // The client agent of a token's requests (toAuditEvent): what one SMART client did, whichever
    // account it acted as.
    criteria.client = token.code;
  } else if (agent !== undefined) {
    // A bar in a subject sent unescaped (`auth0|…`) names no system: the value is the id.
    const id = token?.system === 'urn:carevault:user' ? token.code : unescapeSearch(agent);
    // Rows record the account, not a FHIR identity (its fhirUser): `Practitioner/1` would match
    // none, an empty answer read as "never touched the record". An identity provider's account
    // is recorded as `oidc:<sub>`, and a subject is the provider's own string, `/` included.
    if (id.includes('/') && !id.startsWith('oidc:')) {
      throw AppError.invalid(
        'agent takes the user id (urn:carevault:user|<id>, as agent.who.identifier gives it) or a SMART client id (urn:carevault:client|<id>), not a reference: search agent-name for a username',
        ['agent'],
      );
    }
    criteria.agent = id;
  }
  const agentName = agentNameOf(query);
  if (agentName) criteria.agentName = agentName;
  const entity = single(query, 'entity');
  if (entity !== undefined) {
    if (!/^[A-Z][A-Za-z]{0,63}\/[A-Za-z0-9.-]{1,64}(\/_history\/\d+)?$/.test(entity)) {
      throw AppError.invalid('entity must be a reference such as Observation/123', ['entity']);
    }
    criteria.entity = entity.replace(/\/_history\/\d+$/, '');
  }
  const action = single(query, 'action');
  if (action !== undefined) {
    // The AuditEvent codes (C R U D E), or one of our actions (read, login...).
    criteria.actions = actionsFor(action) ?? [action];
  }
  const subtype = single(query, 'subtype');
  if (subtype !== undefined) criteria.subtype = subtype.replace(/^[^|]*\|/, '');
  const outcome = single(query, 'outcome');
  if (outcome !== undefined) {
    if (!['0', '4', '8', '12'].includes(outcome)) {
      throw AppError.invalid('outcome is one of 0 (success), 4, 8, 12 (failures)', ['outcome']);
    }
    criteria.outcome = outcome === '0' ? 'success' : outcome === '4' ? 'minor' : 'serious';
  }
  for (const value of values(query, 'date')) {
    // As FHIR searches do: an offset's + sent unencoded arrives as a space.
    const { prefix, rest } = splitPrefix(unencodedPlus(value));
    const range = dateRange(rest);
    if (!range || !['eq', 'ge', 'gt', 'le', 'lt'].includes(prefix)) {
      throw AppError.invalid('date takes eq, ge, gt, le or lt and a FHIR date or dateTime', [
        'date',
      ]);
    }
    if (prefix === 'eq' || prefix === 'ge') criteria.from = later(criteria.from, range.low);
    if (prefix === 'gt') criteria.from = later(criteria.from, range.high);
    if (prefix === 'eq' || prefix === 'le') criteria.to = earlier(criteria.to, range.high);
    if (prefix === 'lt') criteria.to = earlier(criteria.to, range.low);
  }
  const count = single(query, '_count');
  if (count !== undefined) {
    if (!/^\d{1,4}$/.test(count) || Number(count) < 1) {
      throw AppError.invalid(`_count must be between 1 and ${MAX_COUNT}`, ['_count']);
    }
    criteria.limit = Math.min(Number(count), MAX_COUNT);
  }
  const cursor = single(query, '_cursor');
  if (cursor !== undefined) {
    if (!/^\d{1,18}$/.test(cursor)) throw AppError.invalid('_cursor is not valid', ['_cursor']);
    criteria.beforeSeq = Number(cursor);
  }
  return criteria;
}

/** `agent-name` (the start of the name, any case, as FHIR's string search) or `:exact`. */
function agentNameOf(query: Query): AuditQuery['agentName'] {
  const start = single(query, 'agent-name');
  const exact = single(query, 'agent-name:exact');
  if (start !== undefined && exact !== undefined) {
    throw AppError.invalid('agent-name takes one value here, with :exact or without', [
      'agent-name',
    ]);
  }
  const given = exact ?? start;
  if (given === undefined) return undefined;
  const value = unescapeSearch(given);
  if (value.length === 0 || value.length > 128) {
    throw AppError.invalid('agent-name must be 1 to 128 characters', ['agent-name']);
  }
  return { value, exact: exact !== undefined };
}

function later(a: Date | undefined, b: Date): Date {
  return a && a > b ? a : b;
}

function earlier(a: Date | undefined, b: Date): Date {
  return a && a < b ? a : b;
}

function withParams(url: string, query: Query, extra: Record<string, string>): string {
  const params = new URLSearchParams();
  for (const [name, value] of Object.entries(query)) {
    if (name === '_cursor' || value === undefined) continue;
    for (const item of [value].flat()) params.append(name, item);
  }
  for (const [name, value] of Object.entries(extra)) params.set(name, value);
  const text = params.toString();
  return text ? `${url}?${text}` : url;
}
