import { AppError } from '../../common/errors/app-error.js';
import { unencodedPlus } from '../../common/http/media-types.js';
import { parseIsoDateOrInstant } from '../../common/iso-dates.js';
import type { ExportLevel } from './export-job.js';

/** What a kick-off asks for, from its query (GET) or its Parameters body (POST). */
export interface KickOffParameters {
  /** `_type`: undefined for every type the user may export; a type named twice comes once. */
  types?: string[];
  /** `_typeFilter`: `Type?query` each. */
  typeFilters: string[];
  since?: Date;
  /** `patient` (POST only): the ids of the patients whose compartments to export. */
  patients?: string[];
}

const NDJSON_FORMATS = new Set(['application/fhir+ndjson', 'application/ndjson', 'ndjson']);
/** Kick-off parameters this server takes; any other is refused rather than ignored. */
const QUERY_PARAMETERS = new Set(['_outputFormat', '_type', '_since', '_typeFilter']);
/** The same in a POST's Parameters, and `patient`, which the Bulk Data IG takes there only. */
const BODY_PARAMETERS = new Set([...QUERY_PARAMETERS, 'patient']);
const INSTANT = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/;
const PATIENT_REFERENCE = /^Patient\/([A-Za-z0-9\-.]{1,64})$/;
/** Patients one kick-off may name: a larger cohort is a Group's. */
const MAX_PATIENTS = 1000;
/**
 * `_typeFilter` searches one kick-off may give. Each is run at kick-off (checked) and then on
 * every page of its type: until 2026-12-08 they were not counted, and 5,000 (of the 25,000 a
 * POST's 1 MiB could hold) took a second at kick-off and a second more per page of 20
 * Observations.
 */
export const MAX_TYPE_FILTERS = 100;

/**
 * A GET kick-off's query. A plus written unencoded reads as a space: application/fhir+ndjson
 * (which the Bulk Data IG requires servers to take) and an offset such as +01:00 come as
 * clients write them.
 */
export function queryParameters(query: Record<string, unknown>, url: string): KickOffParameters {
  for (const [name, value] of Object.entries(query)) {
    if (!QUERY_PARAMETERS.has(name)) {
      throw notSupported(name);
    }
    if (typeof value !== 'string' && name !== '_typeFilter') {
      throw AppError.invalid(`${name} may be given once`, [name]);
    }
  }
  assertFormat(plus(query['_outputFormat']));
  const type = query['_type'] as string | undefined;
  return checked(
    type === undefined ? undefined : type.split(','),
    typeFiltersOf(url),
    plus(query['_since']),
  );
}

/**
 * A POST kick-off's Parameters resource (Bulk Data IG 2.0): `_outputFormat`, `_since`
 * (valueInstant), `_type` and `_typeFilter` (valueString, repeated or comma-separated as in a
 * query), and `patient` (valueReference, repeated) for Patient- and Group-level exports.
 */
export function bodyParameters(body: unknown, level: ExportLevel): KickOffParameters {
  const parameters = body as { resourceType?: unknown; parameter?: unknown } | undefined;
  if (parameters?.resourceType !== 'Parameters') {
    throw AppError.invalid('A POST kick-off takes a Parameters resource as its body');
  }
  const list = parameters.parameter ?? [];
  if (!Array.isArray(list)) throw AppError.invalid('Parameters.parameter must be an array');
  const values = new Map<string, unknown[]>();
  for (const parameter of list as Record<string, unknown>[]) {
    const name = parameter?.['name'];
    if (typeof name !== 'string' || !BODY_PARAMETERS.has(name)) {
      throw notSupported(String(name));
    }
    values.set(name, [...(values.get(name) ?? []), valueOf(parameter, name)]);
  }
  for (const name of ['_outputFormat', '_since']) {
    if ((values.get(name)?.length ?? 0) > 1) {
      throw AppError.invalid(`${name} may be given once`, [name]);
    }
  }
  assertFormat(values.get('_outputFormat')?.[0] as string | undefined);
  const references = (values.get('patient') ?? []) as string[];
  if (references.length > MAX_PATIENTS) {
    throw AppError.invalid(
      `patient names ${references.length} patients; at most ${MAX_PATIENTS}: export a Group of them`,
      ['patient'],
    );
  }
  if (references.length > 0 && level === 'system') {
    throw AppError.invalid(
      'patient applies to Patient/$export and Group/[id]/$export, not a system-level export',
      ['patient'],
    );
  }
  const patients = references.map((reference) => {
    const id = PATIENT_REFERENCE.exec(reference)?.[1];
    if (!id) {
      throw AppError.invalid(`patient must reference a Patient (Patient/[id]): ${reference}`, [
        'patient',
      ]);
    }
    return id;
  });
  const types = values.get('_type') as string[] | undefined;
  return {
    ...checked(
      types?.flatMap((type) => type.split(',')),
      // One query each: a comma in one is FHIR's OR (`code=a,b`), not a list of queries.
      (values.get('_typeFilter') ?? []) as string[],
      values.get('_since')?.[0] as string | undefined,
    ),
    ...(patients.length > 0 ? { patients: [...new Set(patients)] } : {}),
  };
}

/** The one value a parameter of that name takes: a string, an instant or a reference. */
function valueOf(parameter: Record<string, unknown>, name: string): string {
  const [key, type] =
    name === '_since'
      ? ['valueInstant', 'an instant (valueInstant)']
      : name === 'patient'
        ? ['valueReference', 'a reference (valueReference)']
        : ['valueString', 'a string (valueString)'];
  const value = parameter[key];
  const text = key === 'valueReference' ? (value as { reference?: unknown })?.reference : value;
  if (typeof text !== 'string' || text.length === 0) {
    throw AppError.invalid(`${name} takes ${type}`, [name]);
  }
  return text;
}

function checked(
  types: string[] | undefined,
  typeFilters: string[],
  since: string | undefined,
): KickOffParameters {
  // Checked against the calendar: Date.parse takes 2026-02-30 for March 2nd.
  if (since !== undefined && (!INSTANT.test(since) || !parseIsoDateOrInstant(since))) {
    throw AppError.invalid('_since must be an instant such as 2026-01-01T00:00:00Z', ['_since']);
  }
  const filters = typeFilters.filter((filter) => filter.length > 0);
  if (filters.length > MAX_TYPE_FILTERS) {
    throw AppError.of(
      400,
      'too-costly',
      `_typeFilter gives ${filters.length} searches; at most ${MAX_TYPE_FILTERS}`,
      ['_typeFilter'],
    );
  }
  return {
    ...(types ? { types: [...new Set(types.map((type) => type.trim()))] } : {}),
    typeFilters: filters,
    ...(since !== undefined ? { since: new Date(since) } : {}),
  };
}

function assertFormat(format: string | undefined): void {
  if (format !== undefined && !NDJSON_FORMATS.has(format)) {
    throw AppError.of(400, 'not-supported', 'The only output format is application/fhir+ndjson');
  }
}

function notSupported(name: string): AppError {
  return AppError.of(400, 'not-supported', `The export parameter ${name} is not supported`);
}

function plus(value: unknown): string | undefined {
  return typeof value === 'string' ? unencodedPlus(value) : undefined;
}

/**
 * `_typeFilter` values, from the raw query string: the parameter is a comma-separated list of
 * URL-encoded queries (`Observation%3Fcode%3D…,Condition%3F…`), so it is split before it is
 * decoded, and a comma inside one query (`code=a%2Cb`) stays in it. It may also be repeated.
 * Its name is decoded as the query parser decodes it: until 2026-12-08 only `_typeFilter=`
 * spelled so was read, and one written `%5FtypeFilter=`, which the parser takes for the same
 * parameter, was neither applied nor checked, the job keeping the search (a name, say) in its
 * plaintext request URL.
 */
function typeFiltersOf(url: string): string[] {
  const query = url.includes('?') ? url.slice(url.indexOf('?') + 1) : '';
  return query.split('&').flatMap((part) => {
    const equals = part.indexOf('=');
    const name = equals === -1 ? part : part.slice(0, equals);
    if (decodedOrUndefined(name) !== '_typeFilter') return [];
    return (equals === -1 ? '' : part.slice(equals + 1)).split(',').map((filter) => {
      const decoded = decodedOrUndefined(filter);
      if (decoded === undefined) {
        throw AppError.invalid('_typeFilter is not valid percent-encoding', ['_typeFilter']);
      }
      return decoded;
    });
  });
}

/** Form-decoded (a plus is a space), as the query parser decodes; undefined when malformed. */
function decodedOrUndefined(text: string): string | undefined {
  try {
    return decodeURIComponent(text.replace(/\+/g, ' '));
  } catch {
    return undefined;
  }
}
