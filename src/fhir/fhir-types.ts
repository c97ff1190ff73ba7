import { AppError } from '../common/errors/app-error.js';

/** A FHIR resource as JSON: only what the store itself reads is typed. */
export interface FhirResource {
  resourceType: string;
  id?: string;
  meta?: { versionId?: string; lastUpdated?: string; [key: string]: unknown };
  [element: string]: unknown;
}

/** A resource as stored: its JSON and the version facts the HTTP layer turns into headers. */
export interface StoredResource {
  resourceType: string;
  id: string;
  versionId: number;
  lastUpdated: Date;
  resource: FhirResource;
  /** An update or patch that stored nothing new: this is the version it found current. */
  unchanged?: true;
}

/** One version as listed in a history Bundle; no resource for a deletion. */
export interface ResourceVersion {
  resourceType: string;
  id: string;
  versionId: number;
  lastUpdated: Date;
  resource: FhirResource | undefined;
  /** The interaction that wrote it, when the store kept it (VersionMethod). */
  method?: 'POST' | 'PUT' | 'PATCH' | 'DELETE';
  /** Written right after a deletion: a PUT of it created the resource again. */
  recreated?: boolean;
}

/**
 * One `_at` value of a history request: the versions current at some time in its period (as
 * `2024-03` covers the month), or with `gt`/`ge` after it, `lt`/`le` before it.
 */
export interface AtPeriod {
  prefix: 'eq' | 'gt' | 'ge' | 'lt' | 'le';
  low: Date;
  high: Date;
  /** As the client wrote it, for the Bundle's links. */
  text: string;
}

/** Where a page of one resource's history ends: its last version (versions only go up). */
export interface VersionCursor {
  type: string;
  id: string;
  versionId: number;
  /** The instant the first page was complete up to (ISO), which every later page says too. */
  complete?: string;
}

export interface HistoryParams {
  count: number;
  since?: Date;
  at?: AtPeriod[];
  cursor?: VersionCursor;
}

/** Where a page of a type's or the system's history ends: its last version's sort keys. */
export interface HistoryCursor {
  /** As PostgreSQL prints it, to the microsecond (a Date would round it to milliseconds). */
  lastUpdated: string;
  type: string;
  id: string;
  versionId: number;
  /** The instant the first page was complete up to (ISO), which every later page says too. */
  complete?: string;
}

export interface HistoryListParams {
  count: number;
  since?: Date;
  at?: AtPeriod[];
  cursor?: HistoryCursor;
}

const ID_PATTERN = /^[A-Za-z0-9\-.]{1,64}$/;

export function isValidId(id: string): boolean {
  return ID_PATTERN.test(id);
}

/**
 * `.` and `..`: ids by FHIR's pattern, but dot-segments of a URL (RFC 3986 §5.2.4), which
 * clients, proxies and browsers resolve away: `Patient/..` is `/fhir/`, and the Location of its
 * version `/fhir/_history/1`. No resource is written under them.
 */
export function isDotSegment(id: string): boolean {
  return id === '.' || id === '..';
}

/**
 * The 400 for an operation (`$name`) not offered where it was asked for; `type` is the type
 * it was asked of, if any.
 */
export function unknownOperation(name: string, type?: string): AppError {
  const hint =
    name === '$everything' && type === 'Patient'
      ? ': it is offered for one patient (Patient/{id}/$everything); for every patient, ' +
        'use Bulk Data export (GET /fhir/Patient/$export)'
      : '';
  return AppError.of(400, 'not-supported', `${name} is not an operation offered here${hint}`);
}

/**
 * A resource id from a URL, else a 400: `$everything` read as an id names what the client
 * likely meant.
 */
export function assertResourceId(id: string, type?: string): void {
  if (/^\$[A-Za-z-]{1,64}$/.test(id)) {
    throw unknownOperation(id, type);
  }
  if (!isValidId(id)) {
    throw AppError.invalid('Invalid resource id: 1 to 64 letters, digits, "-" or "."');
  }
}

/** `effectiveDateTime` for `effective`: a choice element's name, then a type name's capital. */
export function isTypedNameOf(key: string, element: string): boolean {
  const next = key.charCodeAt(element.length);
  return key.startsWith(element) && next >= 65 && next <= 90;
}
