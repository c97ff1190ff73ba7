import { AppError } from '../../common/errors/app-error.js';
import { splitCascade } from '../cascade-delete.js';
import type { FhirInteraction } from '../../auth/permissions.js';
import type { FhirResource } from '../fhir-types.js';
import { isEntryLink, narrativeLinks, replaceEntryLinks } from './entry-links.js';

export type Method = 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';

/** One entry of a batch or transaction, with its request URL taken apart. */
export interface ParsedEntry {
  index: number;
  fullUrl?: string;
  resource?: FhirResource;
  method: Method;
  /** The request URL as sent, relative to the base (`Patient/1`, `Patient?name=x`). */
  url: string;
  type: string;
  id?: string;
  /** The query of `Type?…` (a search, or conditional update or delete). */
  query?: string;
  ifNoneExist?: string;
  ifMatch?: string;
  /** A read's conditions: 304 for the version the client holds (as the headers on GET). */
  ifNoneMatch?: string;
  ifModifiedSince?: string;
  interaction: FhirInteraction;
  /** A GET of more than a resource or a search (see PART_URL). */
  part?: EntryPart;
}

/**
 * What a GET entry may read besides `Type/id` and `Type?…`: one version, a resource's history,
 * a patient's `$everything`, or a compartment search (`Patient/1/Observation`, whose entry
 * `type` is the type searched).
 */
export type EntryPart =
  | { kind: 'vread'; vid: string }
  | { kind: 'history' }
  | { kind: 'typeHistory' }
  | { kind: 'lastn' }
  | { kind: 'everything' }
  | { kind: 'compartment'; compartment: string; id: string };

/** A batch entry whose request could not be read: the batch answers it with this error. */
export interface RejectedEntry {
  index: number;
  error: AppError;
}

/**
 * The most entries one Bundle holds: as many as $everything returns, about nine times the
 * largest Synthea record here (1,145 entries), so that a record read out can be written back in
 * one transaction. Each entry is a request of its own, and a batch of 18,000 reads fitted in the
 * default 1 MB body.
 */
export const MAX_ENTRIES = 10_000;

/**
 * The most searches one Bundle holds (GET entries other than the read of one resource or
 * version: a search, a history, $everything, $lastn). The rate limit counts a Bundle as one
 * request and the ReadBudget only what the entries return, so 2,000 `_summary=count` searches
 * held a connection, and a core of the 2-core server, for 86 s. A SMART app's or a chart's
 * batch of searches is tens; more is sent in several Bundles, each counted by the rate limit.
 */
export const MAX_SEARCH_ENTRIES = 100;

/** FHIR's processing order inside a transaction: deletes, creates, updates, then reads. */
export const ORDER: Record<Method, number> = { DELETE: 0, POST: 1, PUT: 2, PATCH: 2, GET: 3 };

const URL = /^([A-Z][A-Za-z]{0,63})(?:\/([A-Za-z0-9.-]{1,64}))?(?:\?(.*))?$/;
/** What GET entries read besides Type, Type/id and Type?criteria (for errors). */
const GET_FORMS =
  'Type/id/_history[/vid], Type/_history, Patient/id/$everything, Patient/id/Type or Observation/$lastn';
/** Type/_history and Observation/$lastn, with a query. */
const TYPE_PART_URL = /^([A-Z][A-Za-z]{0,63})\/(_history|\$lastn)(?:\?(.*))?$/;
/** Type/id/_history[/vid], Type/id/$everything or Type/id/Type, with a query. */
const PART_URL =
  /^([A-Z][A-Za-z]{0,63})\/([A-Za-z0-9.-]{1,64})\/(?:_history(?:\/([A-Za-z0-9.-]{1,64}))?|(\$everything)|([A-Z][A-Za-z]{0,63}))(?:\?(.*))?$/;

export function parseEntries(
  body: unknown,
):
  | { type: 'transaction'; entries: ParsedEntry[] }
  | { type: 'batch'; entries: (ParsedEntry | RejectedEntry)[] } {
  const bundle = body as { resourceType?: unknown; type?: unknown; entry?: unknown } | null;
  if (typeof bundle !== 'object' || bundle === null || bundle.resourceType !== 'Bundle') {
    throw AppError.invalid('POST /fhir takes a Bundle of type batch or transaction');
  }
  if (bundle.type !== 'batch' && bundle.type !== 'transaction') {
    throw AppError.invalid('Bundle.type must be batch or transaction', ['Bundle.type']);
  }
  const raw = bundle.entry ?? [];
  if (!Array.isArray(raw)) {
    throw AppError.invalid('Bundle.entry must be an array', ['Bundle.entry']);
  }
  if (raw.length > MAX_ENTRIES) {
    throw AppError.of(
      400,
      'too-costly',
      `A Bundle holds at most ${MAX_ENTRIES} entries; this one has ${raw.length}: send it in parts`,
      ['Bundle.entry'],
    );
  }
  if (bundle.type === 'transaction') {
    const entries = raw.map((entry, index) => parseEntry(entry, index));
    assertSearchesWithinCap(entries);
    return { type: 'transaction', entries };
  }
  // A batch's entries stand alone (FHIR R4 3.1.0.11.1): one that cannot be read fails by
  // itself, and the others still run.
  const entries = raw.map((entry, index) => {
    try {
      return parseEntry(entry, index);
    } catch (error) {
      if (!(error instanceof AppError)) throw error;
      return { index, error };
    }
  });
  assertSearchesWithinCap(entries);
  return { type: 'batch', entries };
}

/** Refuses the whole Bundle, before any entry runs, past MAX_SEARCH_ENTRIES searches. */
function assertSearchesWithinCap(entries: (ParsedEntry | RejectedEntry)[]): void {
  const searches = entries.filter(
    (entry) =>
      'method' in entry &&
      entry.method === 'GET' &&
      (entry.interaction !== 'read' || entry.part?.kind === 'everything'),
  ).length;
  if (searches > MAX_SEARCH_ENTRIES) {
    throw AppError.of(
      400,
      'too-costly',
      `A Bundle holds at most ${MAX_SEARCH_ENTRIES} searches (GET entries other than the read of a resource or version); this one has ${searches}: send them in several Bundles`,
      ['Bundle.entry'],
    );
  }
}

function parseEntry(raw: unknown, index: number): ParsedEntry {
  const where = `Bundle.entry[${index}]`;
  const entry = (typeof raw === 'object' && raw !== null ? raw : {}) as {
    fullUrl?: unknown;
    resource?: unknown;
    request?: {
      method?: unknown;
      url?: unknown;
      ifNoneExist?: unknown;
      ifMatch?: unknown;
      ifNoneMatch?: unknown;
      ifModifiedSince?: unknown;
    };
  };
  const badFullUrl = typeof entry.fullUrl === 'string' ? fullUrlProblem(entry.fullUrl) : undefined;
  if (badFullUrl) {
    throw AppError.invalid(`${where}.fullUrl ${badFullUrl}`, [`${where}.fullUrl`]);
  }
  const method = entry.request?.method;
  const url = entry.request?.url;
  if (typeof method !== 'string' || !['GET', 'POST', 'PUT', 'PATCH', 'DELETE'].includes(method)) {
    throw AppError.invalid(`${where}.request.method must be GET, POST, PUT, PATCH or DELETE`, [
      `${where}.request.method`,
    ]);
  }
  const relative = typeof url === 'string' ? url.replace(/^\//, '') : '';
  const match = URL.exec(relative);
  const part = method === 'GET' && !match ? partOf(relative) : undefined;
  if (part) {
    return { index, method: 'GET', url: relative, ...part, ...readConditions(entry.request) };
  }
  if (!match) {
    throw AppError.invalid(
      `${where}.request.url must be Type, Type/id or Type?criteria` +
        (method === 'GET' ? `, or ${GET_FORMS}` : ''),
      [`${where}.request.url`],
    );
  }
  const [, type, id, query] = match;
  if (method === 'POST' && id) {
    // The id was dropped and another one assigned: other entries' `Patient/{id}` then named
    // a resource that does not exist, or one that does.
    throw AppError.invalid(
      `${where}.request.url of a POST is the type alone (${type}): the server assigns the id (PUT ${type}/${id} chooses it)`,
      [`${where}.request.url`],
    );
  }
  if (method !== 'GET' && id && query !== undefined && splitCascade(query).criteria !== '') {
    // `PUT Patient/1?identifier=…` ran as a conditional update and wrote over whichever
    // patient the criteria found, where the REST API writes Patient/1 (a delete deleted the
    // match too). A write names its resource one way; `_cascade` on a delete is no criteria.
    throw AppError.invalid(
      `${where}.request.url names ${type}/${id} and search criteria too: ${method} ${type}/${id} or ${method} ${type}?criteria, not both`,
      [`${where}.request.url`],
    );
  }
  const interaction = interactionOf(method as Method, id);
  if (
    ['POST', 'PUT'].includes(method) &&
    (typeof entry.resource !== 'object' || entry.resource === null)
  ) {
    throw AppError.invalid(`${where}.resource is required for ${method}`, [`${where}.resource`]);
  }
  if (
    (method === 'PUT' || method === 'PATCH' || method === 'DELETE') &&
    !id &&
    query === undefined
  ) {
    throw AppError.invalid(`${where}.request.url needs an id or criteria for ${method}`, [
      `${where}.request.url`,
    ]);
  }
  return {
    index,
    ...(typeof entry.fullUrl === 'string' ? { fullUrl: entry.fullUrl } : {}),
    ...(entry.resource ? { resource: entry.resource as FhirResource } : {}),
    method: method as Method,
    url: relative,
    type: type!,
    ...(id ? { id } : {}),
    ...(query !== undefined ? { query } : {}),
    ...(typeof entry.request?.ifNoneExist === 'string'
      ? { ifNoneExist: entry.request.ifNoneExist }
      : {}),
    ...(typeof entry.request?.ifMatch === 'string' ? { ifMatch: entry.request.ifMatch } : {}),
    ...readConditions(entry.request),
    interaction,
  };
}

const UUID_URN = /^urn:uuid:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const OID_URN = /^urn:oid:[0-2](\.(0|[1-9][0-9]*))+$/;

/**
 * What is wrong with a fullUrl, if anything: a `urn:uuid:` that is no UUID, a `urn:oid:` that is
 * no OID (R4's uuid and oid types), or a version's URL (bdl-8). Each was taken until 2026-12-07,
 * and a placeholder that is no UUID was resolved in references but not in conditional URLs,
 * which read a placeholder as 36 characters. A UUID is taken in upper case too, as RFC 4122
 * reads it (R4 writes it in lower case; senders that do not are common).
 */
function fullUrlProblem(fullUrl: string): string | undefined {
  if (fullUrl.startsWith('urn:uuid:') && !UUID_URN.test(fullUrl)) {
    return 'is not a UUID: urn:uuid: then 8-4-4-4-12 hexadecimal digits';
  }
  if (fullUrl.startsWith('urn:oid:') && !OID_URN.test(fullUrl)) {
    return 'is not an OID: urn:oid: then numbers joined by dots, the first 0, 1 or 2';
  }
  if (fullUrl.includes('/_history/')) {
    return "is a version's URL: a fullUrl names the resource (bdl-8)";
  }
  return undefined;
}

/** A read's ifNoneMatch and ifModifiedSince, for a version's read (vread) too. */
function readConditions(
  request: { ifNoneMatch?: unknown; ifModifiedSince?: unknown } | undefined,
): Pick<ParsedEntry, 'ifNoneMatch' | 'ifModifiedSince'> {
  return {
    ...(typeof request?.ifNoneMatch === 'string' ? { ifNoneMatch: request.ifNoneMatch } : {}),
    ...(typeof request?.ifModifiedSince === 'string'
      ? { ifModifiedSince: request.ifModifiedSince }
      : {}),
  };
}

function interactionOf(method: Method, id: string | undefined): FhirInteraction {
  switch (method) {
    case 'POST':
      return 'create';
    case 'PUT':
    case 'PATCH':
      return 'update';
    case 'DELETE':
      return 'delete';
    case 'GET':
      return id ? 'read' : 'search';
  }
}

/** A GET entry's URL read as PART_URL, with what its permission check is on. */
function partOf(
  url: string,
): Pick<ParsedEntry, 'type' | 'id' | 'query' | 'interaction' | 'part'> | undefined {
  const typePart = TYPE_PART_URL.exec(url);
  if (typePart) {
    const [, type, what, query] = typePart;
    const withQuery = query !== undefined ? { query } : {};
    return what === '_history'
      ? { type: type!, interaction: 'history', part: { kind: 'typeHistory' }, ...withQuery }
      : { type: type!, interaction: 'search', part: { kind: 'lastn' }, ...withQuery };
  }
  const match = PART_URL.exec(url);
  if (!match) return undefined;
  const [, type, id, vid, everything, searched, query] = match;
  const withQuery = query !== undefined ? { query } : {};
  if (searched) {
    // A compartment search is a search of the type searched.
    const part = { kind: 'compartment' as const, compartment: type!, id: id! };
    return { type: searched, interaction: 'search', part, ...withQuery };
  }
  if (everything) {
    return {
      type: type!,
      id: id!,
      interaction: 'read',
      part: { kind: 'everything' },
      ...withQuery,
    };
  }
  const part: EntryPart = vid ? { kind: 'vread', vid } : { kind: 'history' };
  return { type: type!, id: id!, interaction: vid ? 'read' : 'history', part, ...withQuery };
}

/** An absolute fullUrl's base: `http://a.example/fhir/` of `http://a.example/fhir/Patient/1`. */
const FULL_URL_BASE = /^(https?:\/\/\S+\/)[A-Z][A-Za-z]+\/[A-Za-z0-9.-]{1,64}$/;
const RELATIVE = /^[A-Z][A-Za-z]+\/[A-Za-z0-9.-]{1,64}$/;

/** The base against which an entry's relative references are read, when its fullUrl has one. */
export function baseOf(entry: ParsedEntry): string | undefined {
  return entry.fullUrl === undefined ? undefined : FULL_URL_BASE.exec(entry.fullUrl)?.[1];
}

/**
 * Replaces `urn:uuid:` references (and references to other entries' fullUrls) with the ids the
 * transaction assigned, everywhere in a resource. In an entry whose fullUrl is absolute, a
 * relative reference means that base (FHIR's rule for Bundles): `Patient/123` beside
 * `http://a.example/fhir/Patient/123` is that entry, as an export from another server has it.
 */
export function resolveReferences(
  value: unknown,
  ids: ReadonlyMap<string, string>,
  where: string,
  base?: string,
): unknown {
  return resolve(value, { ids, where, base, links: false });
}

/**
 * A JSON Patch's operations with the references in their values resolved (resolveReferences),
 * and a string set at a `.../reference` path (`{"op":"replace","path":"/subject/reference",
 * "value":"urn:uuid:…"}`) too. Anything not an array of operations is left for the patch to
 * refuse.
 */
export function resolveJsonPatch(
  operations: unknown,
  ids: ReadonlyMap<string, string>,
  where: string,
  base?: string,
): unknown {
  if (!Array.isArray(operations)) return operations;
  return operations.map((operation: unknown) => {
    if (typeof operation !== 'object' || operation === null || !('value' in operation)) {
      return operation;
    }
    const { path, value } = operation as { path?: unknown; value: unknown };
    const atReference = typeof path === 'string' && /\/reference$/.test(path);
    return {
      ...operation,
      value:
        atReference && typeof value === 'string'
          ? (resolveReferences({ reference: value }, ids, where, base) as { reference: string })
              .reference
          : resolveReferences(value, ids, where, base),
    };
  });
}

/**
 * An entry's resource with its references resolved (resolveReferences), and the other entries'
 * fullUrls it holds in uri, url, oid and uuid elements or narrative links replaced too, as FHIR's
 * transaction rules say (see replaceEntryLinks). Until 2026-12-06 those were stored as sent: an
 * IHE MHD DocumentReference kept `urn:uuid:…` in `content.attachment.url` and lost its Binary.
 */
export function resolveEntry(
  resource: unknown,
  ids: ReadonlyMap<string, string>,
  where: string,
  base?: string,
): unknown {
  const walk: Walk = { ids, where, base, links: false };
  const resolved = resolve(resource, walk);
  if (walk.links) replaceEntryLinks(resolved, ids);
  return resolved;
}

interface Walk {
  ids: ReadonlyMap<string, string>;
  where: string;
  base: string | undefined;
  /** Set when a value outside a Reference may be another entry's fullUrl (see resolveEntry). */
  links: boolean;
}

function resolve(value: unknown, walk: Walk): unknown {
  if (Array.isArray(value)) {
    return value.map((item) => resolve(item, walk));
  }
  if (typeof value !== 'object' || value === null) {
    return value;
  }
  const { ids, where, base } = walk;
  const out: Record<string, unknown> = {};
  const bundle = isBundle(value);
  for (const [key, item] of Object.entries(value)) {
    if (bundle && key === 'entry') {
      // A Bundle stored by an entry (a document) keeps its own: see isBundle.
      out[key] = item;
      continue;
    }
    if (key !== 'reference' && typeof item === 'string') {
      // A uri or a narrative naming an entry: replaced afterwards, by the element's type.
      if (!walk.links && ids.size > 0) {
        walk.links = key === 'div' ? narrativeLinks(item, ids) : ids.has(item) && isEntryLink(item);
      }
      out[key] = item;
      continue;
    }
    const resolved =
      key === 'reference' && typeof item === 'string'
        ? (ids.get(item) ??
          (base !== undefined && RELATIVE.test(item) ? ids.get(base + item) : undefined))
        : undefined;
    if (resolved !== undefined) {
      out[key] = resolved;
    } else if (key === 'reference' && typeof item === 'string' && item.startsWith('urn:uuid:')) {
      throw AppError.invalid(`${where} refers to a urn:uuid that no entry of the Bundle has`);
    } else {
      out[key] = resolve(item, walk);
    }
  }
  return out;
}

/**
 * A Bundle resource inside an entry (a document, a message kept as sent): its entries' fullUrls
 * and references are its own, resolved among themselves, so the transaction neither rewrites nor
 * resolves them. Until 2026-12-06 a document's `urn:uuid:` references failed the transaction
 * (no entry of the outer Bundle had them), and one matching an outer fullUrl was rewritten.
 */
function isBundle(value: object): boolean {
  return (value as { resourceType?: unknown }).resourceType === 'Bundle';
}
