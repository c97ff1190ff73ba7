import type { FastifyReply, FastifyRequest } from 'fastify';
import { operationOutcome, type OperationOutcome } from '../common/errors/operation-outcome.js';
import { fhirJsonType } from '../common/http/media-types.js';
import { requestOrigin } from '../common/http/request-origin.js';
import { AppError } from '../common/errors/app-error.js';
import type { FhirResource, StoredResource } from './fhir-types.js';
import { parseSearchRequest, type SearchRequest } from './search/search-request.js';
import { fhirJson } from './stored-json.js';
import type { Subsets } from './subset.js';

type PreferReturn = 'minimal' | 'representation' | 'OperationOutcome';

/** The FHIR base URL as the client addressed it, for Location and Bundle links. */
export function fhirBaseUrl(request: FastifyRequest): string {
  return `${requestOrigin(request)}/fhir`;
}

export function parsePreferReturn(prefer: string | undefined): PreferReturn {
  // RFC 7240: the value is a token or a quoted string, with optional whitespace around "=".
  const match =
    /(?:^|[;,\s])return\s*=\s*"?(minimal|representation|OperationOutcome)\b(?!-)"?/i.exec(
      prefer ?? '',
    );
  const value = match?.[1]?.toLowerCase();
  if (value === 'minimal') {
    return 'minimal';
  }
  return value === 'operationoutcome' ? 'OperationOutcome' : 'representation';
}

/**
 * Sets the version headers (ETag, Last-Modified, and Location for writes) and returns the body
 * that `Prefer: return=` asks for (nothing, the resource, or an OperationOutcome).
 */
export function sendStored(
  reply: FastifyReply,
  request: FastifyRequest,
  stored: StoredResource,
  options: { status: number; prefer?: string; location?: boolean },
): FhirResource | OperationOutcome | undefined {
  reply.status(options.status);
  reply.header('etag', `W/"${stored.versionId}"`);
  reply.header('last-modified', stored.lastUpdated.toUTCString());
  if (options.location) {
    reply.header(
      'location',
      `${fhirBaseUrl(request)}/${stored.resourceType}/${stored.id}/_history/${stored.versionId}`,
    );
  }
  const preferred = parsePreferReturn(options.prefer);
  // return=minimal has no body, and so no Content-Type: an empty body labelled FHIR JSON (as
  // until 2026-12-07) is malformed JSON to a client that parses what the label says.
  if (preferred === 'minimal') return undefined;
  setFhirJson(reply);
  switch (preferred) {
    case 'OperationOutcome':
      return operationOutcome([
        {
          severity: 'information',
          code: 'informational',
          diagnostics: stored.unchanged
            ? `${stored.resourceType} version ${stored.versionId} kept: the content sent is the content stored`
            : `${stored.resourceType} version ${stored.versionId} stored`,
        },
      ]);
    case 'representation':
      return stored.resource;
  }
}

/**
 * A read or vread: 304 with no body when the client's copy is current (`If-None-Match` with the
 * version's ETag, or else `If-Modified-Since` no earlier than the version), otherwise the
 * resource, or the part of it that `_summary` or `_elements` asks for. The caller has already
 * checked access: a 304 tells that the record exists and has not changed.
 */
export function sendRead(
  reply: FastifyReply,
  request: FastifyRequest,
  stored: StoredResource,
  subsets: Subsets,
): FhirResource | undefined {
  const subset = readSubset((request.query ?? {}) as Record<string, string | string[] | undefined>);
  const resource = sendVersion(reply, request, stored);
  return subset && resource ? subsets.apply(resource, subset) : resource;
}

/**
 * A read's version headers (ETag, Last-Modified), and a 304 with no body when the client's
 * copy is current (If-None-Match, If-Modified-Since): for every read and vread, AuditEvent's
 * too (until 2026-12-06 it sent neither header and answered `If-None-Match: W/"1"` with 200).
 */
export function sendVersion(
  reply: FastifyReply,
  request: FastifyRequest,
  stored: StoredResource,
): FhirResource | undefined {
  const resource = sendStored(reply, request, stored, { status: 200 }) as FhirResource;
  if (isNotModified(request, stored)) {
    reply.status(304);
    reply.removeHeader('content-type');
    return undefined;
  }
  return resource;
}

/** The part of a resource a read asks for (`_summary`, `_elements`), if it asks for part. */
export function readSubset(
  query: Record<string, string | string[] | undefined>,
): SearchRequest['subset'] {
  // Most reads ask for the whole resource: parse only when they ask for part of it.
  if (query['_summary'] === undefined && query['_elements'] === undefined) return undefined;
  const { subset, summaryCount } = parseSearchRequest({
    _summary: query['_summary'],
    _elements: query['_elements'],
  });
  if (summaryCount) throw AppError.invalid('_summary=count is for searches');
  return subset;
}

function isNotModified(request: FastifyRequest, stored: StoredResource): boolean {
  return notModified(
    request.headers['if-none-match'],
    request.headers['if-modified-since'],
    stored,
  );
}

/**
 * RFC 9110 §13.1.2 and §13.1.3, with weak comparison of the version ETag: whether the copy the
 * client holds is current (a read's If-None-Match or If-Modified-Since, or a Bundle entry's
 * ifNoneMatch or ifModifiedSince, an HTTP date or a FHIR instant).
 */
export function notModified(
  ifNoneMatch: string | undefined,
  ifModifiedSince: string | undefined,
  stored: StoredResource,
): boolean {
  if (ifNoneMatch !== undefined) {
    const tags = ifNoneMatch.split(',').map((tag) => tag.trim().replace(/^W\//, ''));
    return tags.includes('*') || tags.includes(`"${stored.versionId}"`);
  }
  const since = modifiedSince(ifModifiedSince);
  // HTTP dates have whole seconds, and name the second the version was written in; a FHIR
  // instant with a fraction (a Bundle entry's, as meta.lastUpdated gives it) names its
  // millisecond, and a version written later in that second is newer than the client's copy.
  const written = stored.lastUpdated.getTime();
  const held = /\.\d/.test(ifModifiedSince ?? '') ? written : Math.floor(written / 1000) * 1000;
  return since !== undefined && held <= since;
}

const DAY = '(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun)';
const MONTH = '(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)';
const TIME = '\\d{2}:\\d{2}:\\d{2}';
/** RFC 9110 section 5.6.7: IMF-fixdate, and the obsolete RFC 850 and asctime forms. */
const HTTP_DATES = [
  new RegExp(`^${DAY}, \\d{2} ${MONTH} \\d{4} ${TIME} GMT$`),
  new RegExp(`^(?:Mon|Tues|Wednes|Thurs|Fri|Satur|Sun)day, \\d{2}-${MONTH}-\\d{2} ${TIME} GMT$`),
  new RegExp(`^${DAY} ${MONTH} [ \\d]\\d ${TIME} \\d{4}$`),
];
/** A FHIR instant (a Bundle entry's ifModifiedSince): seconds and a time zone, always. */
const INSTANT = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:\d{2})$/;

/**
 * The time an If-Modified-Since names, or none when it is not an HTTP date (nor, in a Bundle
 * entry, an instant): RFC 9110 section 13.1.3 has the recipient ignore it then. Date.parse
 * alone read `3000` or `2027-01-01` as some time, and a later one answered 304 to a client
 * whose copy was stale (until 2026-12-07).
 */
function modifiedSince(value: string | undefined): number | undefined {
  const text = value?.trim() ?? '';
  if (INSTANT.test(text)) return Date.parse(text);
  if (!HTTP_DATES.some((form) => form.test(text))) return undefined;
  // asctime has no zone: it is GMT (RFC 9110), where Date.parse would take local time.
  const since = Date.parse(text.endsWith('GMT') ? text : `${text} GMT`);
  return Number.isNaN(since) ? undefined : since;
}

export function sendFhirJson<T>(reply: FastifyReply, body: T): T {
  setFhirJson(reply);
  return body;
}

/**
 * FHIR JSON, indented when the request asks for `_pretty=true` (people reading it in a
 * terminal), else with stored entries spliced in as stored (see stored-json.ts).
 */
function setFhirJson(reply: FastifyReply): void {
  reply.header('content-type', fhirJsonType(reply.request));
  const query = reply.request.query as Record<string, unknown> | undefined;
  if (query?.['_pretty'] === 'true') {
    reply.serializer((payload) => JSON.stringify(payload, null, 2));
  } else {
    reply.serializer(fhirJson);
  }
}
