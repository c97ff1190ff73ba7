import { AppError } from '../../common/errors/app-error.js';
import { appendValue, type QueryRecord } from '../../common/http/query-record.js';
import type { SubsetRequest } from '../subset.js';

/** One search criterion: `code[:modifier]` with OR-ed values; repeated criteria are AND-ed. */
export interface Criterion {
  code: string;
  modifier?: string;
  /** `subject:Patient.name=…` or `subject.name=…`: the chained parameter on the target. */
  chain?: { targetType?: string; code: string; modifier?: string };
  /** `_has:Observation:patient:code=…` */
  has?: { type: string; reference: string; code: string; modifier?: string };
  values: string[];
}

export interface SortKey {
  code: string;
  descending: boolean;
}

export interface IncludeSpec {
  /** The type whose reference parameter is followed; `*` any type (with param `*`). */
  sourceType: string;
  /** `*`: every reference parameter of the type (`_include=*`, `_include=Observation:*`). */
  param: string;
  targetType?: string;
  iterate: boolean;
}

export interface SearchRequest {
  criteria: Criterion[];
  count: number;
  sort: SortKey[];
  cursor?: string;
  include: IncludeSpec[];
  revinclude: IncludeSpec[];
  total: 'none' | 'accurate';
  summaryCount: boolean;
  /** `_summary=true|text|data` or `_elements`: what to return of each match. */
  subset?: SubsetRequest;
}

export const DEFAULT_COUNT = 20;
export const MAX_COUNT = 1000;
/** The most observations of each code `$lastn` takes (`max`). */
export const MAX_LAST = 100;
/**
 * Criteria of one search (repeated names count each time), and values of one criterion. Each
 * criterion is a subquery, and PostgreSQL's planning grows faster than their number: 20 took
 * 0.4 s here and 160 took 28 s, holding a connection all the while. Real searches use a few.
 */
export const MAX_CRITERIA = 20;
export const MAX_VALUES = 100;
/**
 * Sort keys of one search. Each is a lookup per match, and the next page's keyset condition
 * grows with their square: 200 keys ran a next page into the statement timeout (a minute of a
 * connection), 1,500 passed PostgreSQL's 1,664 columns and were a 500.
 */
export const MAX_SORT_KEYS = 5;
/**
 * `_include` and `_revinclude` values of one search together. Each is a load of up to
 * MAX_INCLUDED resources, decrypted, however many the ones before found: 300 copies of one
 * `_revinclude` read the same 1,000 Observations 300 times (7.8 s against 55 ms).
 */
export const MAX_INCLUDES = 10;
/**
 * Index lookups (subqueries) of one search's statement: a criterion is one or two, a chain one
 * or two for each type it may reach (with the caller's access rules), an `ne` value two.
 */
export const MAX_SUBQUERIES = 300;
/** Element names of `_elements`: a resource has a few dozen; 20,000 took 4 s to apply. */
export const MAX_ELEMENTS = 100;

const CODE = /^[A-Za-z_][A-Za-z0-9_-]{0,63}$/;
const TYPE = /^[A-Z][A-Za-z]{0,63}$/;
/** Parameters that steer the search rather than filter it. */
const RESULT_PARAMS = new Set([
  '_state',
  '_count',
  '_sort',
  '_cursor',
  '_include',
  '_revinclude',
  '_total',
  '_summary',
  '_elements',
  '_format',
  '_pretty',
]);

/**
 * The result parameters that take one value (R4 search.html: a list, for `_sort` and
 * `_elements`, is comma-separated); `_include` and `_revinclude` repeat. Given twice, the
 * last one was used without a word, so a client never learned that `_count=5&_count=50` did
 * not ask for five.
 */
const SINGLE_VALUED: ReadonlySet<string> = new Set([
  '_count',
  '_sort',
  '_total',
  '_summary',
  '_elements',
]);

/**
 * For `Prefer: handling=lenient`: the query with the first value of each single-valued result
 * parameter given more than once, and a warning for each.
 */
export function firstOfRepeated(query: Record<string, string | string[] | undefined>): {
  query: Record<string, string | string[] | undefined>;
  warnings: string[];
} {
  const kept = Object.create(null) as Record<string, string | string[] | undefined>;
  const warnings: string[] = [];
  for (const [name, raw] of Object.entries(query)) {
    if (SINGLE_VALUED.has(name) && Array.isArray(raw) && raw.length > 1) {
      kept[name] = raw[0];
      warnings.push(`${name} takes one value; the first was used: ${String(raw[0])}`);
    } else {
      kept[name] = raw;
    }
  }
  return { query: kept, warnings };
}

/**
 * The criteria of a search by POST: its query string and its body together, a name given in both
 * with the values of both (FHIR combines them). The body is a form, or a JSON object whose values
 * are text or lists of text; anything else is refused rather than searched as whatever its text
 * happens to be (a number had no `includes`: a 500). The record has no prototype (see
 * queryRecord), so `constructor` or `__proto__` reach the search as the unknown names they are.
 */
export function postedCriteria(
  query: Record<string, string | string[] | undefined>,
  body: unknown,
): QueryRecord {
  const criteria = Object.create(null) as QueryRecord;
  const add = (name: string, values: readonly unknown[]) => {
    for (const value of values) {
      if (typeof value !== 'string') {
        throw AppError.invalid(
          `The value of ${printable(name)} is not text: a search takes its parameters as a form (application/x-www-form-urlencoded)`,
        );
      }
      // In place (queryRecord's): copied for each value, 150,000 held the event loop for minutes.
      appendValue(criteria, name, value);
    }
  };
  for (const [name, values] of Object.entries(query)) add(name, [values ?? []].flat());
  if (body === undefined || body === null) return criteria;
  if (typeof body !== 'object' || Array.isArray(body)) {
    throw AppError.invalid(
      'The body of a search is a form of parameters (application/x-www-form-urlencoded)',
    );
  }
  for (const [name, values] of Object.entries(body)) {
    // A form sends each of its fields, filled or not (browsers, Swagger UI's form for this
    // route): a field left empty asks for nothing, where `_count=` in a URL is an error.
    const filled = (Array.isArray(values) ? values : [values]).filter((value) => value !== '');
    add(name, filled);
  }
  return criteria;
}

/**
 * Parses a search query (URL or form body) into criteria and result parameters. Only names and
 * structure are checked here; the search service checks each against the definitions.
 */
export function parseSearchRequest(
  query: Record<string, string | string[] | undefined>,
): SearchRequest {
  const request: SearchRequest = {
    criteria: [],
    count: DEFAULT_COUNT,
    sort: [],
    include: [],
    revinclude: [],
    total: 'none',
    summaryCount: false,
  };
  for (const [name, raw] of Object.entries(query)) {
    if (SINGLE_VALUED.has(name) && Array.isArray(raw) && raw.length > 1) {
      throw AppError.invalid(
        `${name} takes one value (a list of several is comma-separated); it was given ${raw.length} times`,
      );
    }
    for (const value of raw === undefined ? [] : Array.isArray(raw) ? raw : [raw]) {
      if (value.includes('\u0000')) {
        // PostgreSQL text cannot hold one: compared with anything, it was a 500.
        throw AppError.invalid(
          `The value of ${printable(name)} holds a NUL character (%00), which no search value may`,
        );
      }
      const base = name.replace(/:iterate$/, '');
      if (RESULT_PARAMS.has(base)) {
        applyResultParam(request, name, value);
      } else {
        request.criteria.push(parseCriterion(name, value));
      }
    }
  }
  if (request.criteria.length > MAX_CRITERIA) {
    throw AppError.of(
      400,
      'too-costly',
      `A search takes at most ${MAX_CRITERIA} criteria; this one has ${request.criteria.length}`,
    );
  }
  const includes = request.include.length + request.revinclude.length;
  if (includes > MAX_INCLUDES) {
    throw AppError.of(
      400,
      'too-costly',
      `_include and _revinclude take at most ${MAX_INCLUDES} values together; this search has ${includes}`,
    );
  }
  return request;
}

function setSubset(request: SearchRequest, subset: SubsetRequest): void {
  if (request.subset) {
    throw AppError.invalid('Give one of _summary=true|text|data and _elements, once');
  }
  request.subset = subset;
}

function applyResultParam(request: SearchRequest, name: string, value: string): void {
  switch (name.replace(/:iterate$/, '')) {
    case '_count': {
      if (!/^\d{1,6}$/.test(value)) {
        throw AppError.invalid('_count must be a non-negative integer');
      }
      request.count = Math.min(Number(value), MAX_COUNT);
      // A page of nothing asks for the count alone, as _summary=count does.
      if (request.count === 0) request.summaryCount = true;
      return;
    }
    case '_sort': {
      const keys = value.split(',');
      if (keys.length > MAX_SORT_KEYS) {
        throw AppError.of(
          400,
          'too-costly',
          `_sort takes at most ${MAX_SORT_KEYS} keys; this one has ${keys.length}`,
        );
      }
      request.sort = keys.map((key) => {
        const descending = key.startsWith('-');
        const code = descending ? key.slice(1) : key;
        if (!CODE.test(code)) {
          throw AppError.invalid(
            '_sort takes search parameter names, comma-separated, with - for descending',
          );
        }
        return { code, descending };
      });
      return;
    }
    case '_cursor':
      request.cursor = value;
      return;
    case '_include':
    case '_revinclude': {
      const spec = parseInclude(name, value);
      (name.startsWith('_include') ? request.include : request.revinclude).push(spec);
      return;
    }
    case '_total':
      if (value !== 'none' && value !== 'accurate' && value !== 'estimate') {
        throw AppError.invalid('_total must be none, estimate or accurate');
      }
      request.total = value === 'none' ? 'none' : 'accurate';
      return;
    case '_summary':
      if (value === 'count') {
        request.summaryCount = true;
      } else if (value === 'true' || value === 'text' || value === 'data') {
        setSubset(request, { summary: value });
      } else if (value !== 'false') {
        throw AppError.invalid('_summary must be true, text, data, count or false');
      }
      return;
    case '_elements': {
      const elements = value
        .split(',')
        .map((element) => element.trim())
        .filter(Boolean);
      if (elements.length > MAX_ELEMENTS) {
        throw AppError.of(
          400,
          'too-costly',
          `_elements takes at most ${MAX_ELEMENTS} element names; this one has ${elements.length}`,
        );
      }
      if (!elements.every((element) => CODE.test(element))) {
        throw AppError.invalid('_elements takes element names, comma-separated');
      }
      setSubset(request, { elements });
      return;
    }
    default:
      // _format and _pretty: JSON is the only format; accepted and ignored.
      return;
  }
}

function parseInclude(name: string, value: string): IncludeSpec {
  const iterate = name.endsWith(':iterate') || value.endsWith(':iterate');
  // `*` (every reference of the matches) and `Type:*`; `_revinclude=*` would read every
  // reference into them from any type.
  const wildcard = /^(?:\*|([A-Z][A-Za-z]{0,63}):\*)(?::iterate)?$/.exec(value);
  if (wildcard && name.startsWith('_include')) {
    return { sourceType: wildcard[1] ?? '*', param: '*', iterate };
  }
  if (wildcard) {
    throw AppError.of(400, 'not-supported', `${name} takes Type:parameter, not a wildcard`);
  }
  const [sourceType, param, targetType] = value.split(':');
  if (
    !sourceType ||
    !TYPE.test(sourceType) ||
    !param ||
    !CODE.test(param) ||
    (targetType && !TYPE.test(targetType))
  ) {
    throw AppError.invalid(`${name} must be Type:parameter[:TargetType]`);
  }
  return { sourceType, param, ...(targetType ? { targetType } : {}), iterate };
}

function parseCriterion(name: string, value: string): Criterion {
  const values = splitValues(value);
  if (values.length > MAX_VALUES) {
    throw AppError.of(
      400,
      'too-costly',
      `A search parameter takes at most ${MAX_VALUES} values, comma-separated; ${printable(name)} has ${values.length}`,
    );
  }
  if (name.startsWith('_has:')) {
    const [, type, reference, code, modifier, ...extra] = name.split(':');
    if (
      !type ||
      !TYPE.test(type) ||
      !reference ||
      !CODE.test(reference) ||
      !code ||
      !CODE.test(code) ||
      extra.length > 0
    ) {
      throw AppError.invalid('_has takes the form _has:Type:reference:parameter=value');
    }
    return {
      code: '_has',
      has: { type, reference, code, ...(modifier ? { modifier } : {}) },
      values,
    };
  }
  const dot = name.indexOf('.');
  const head = dot === -1 ? name : name.slice(0, dot);
  const [code, modifier] = head.split(':');
  if (
    !code ||
    !CODE.test(code) ||
    (modifier !== undefined && !/^[A-Za-z-]{1,64}$/.test(modifier))
  ) {
    throw AppError.invalid(`Invalid search parameter name ${printable(name)}`);
  }
  if (dot === -1) {
    return { code, ...(modifier ? { modifier } : {}), values };
  }
  const [chainCode, chainModifier] = name.slice(dot + 1).split(':');
  if (!chainCode || !CODE.test(chainCode) || name.slice(dot + 1).includes('.')) {
    throw AppError.invalid('Chained parameters go one level deep: reference[:Type].parameter');
  }
  if (modifier !== undefined && !TYPE.test(modifier)) {
    throw AppError.invalid('The modifier of a chained reference must be a resource type');
  }
  return {
    code,
    chain: {
      ...(modifier ? { targetType: modifier } : {}),
      code: chainCode,
      ...(chainModifier ? { modifier: chainModifier } : {}),
    },
    values,
  };
}

/**
 * Comma-separated values, with `\,` as an escaped comma. The other escapes (`\|`, `\$`, `\\`)
 * stay for the parameter's type to read (see search-escapes.ts): a backslash and the character
 * after it are taken together, so `a\\,b` is `a\\` (an escaped backslash) and `b`.
 */
function splitValues(value: string): string[] {
  const values: string[] = [];
  let current = '';
  for (let i = 0; i < value.length; i++) {
    if (value[i] === '\\' && i + 1 < value.length) {
      current += value[i + 1] === ',' ? ',' : value.slice(i, i + 2);
      i++;
    } else if (value[i] === ',') {
      values.push(current);
      current = '';
    } else {
      current += value[i];
    }
  }
  values.push(current);
  return values;
}

/** A parameter name is safe to echo in an error when it is plain (it never carries values). */
function printable(name: string): string {
  return /^[A-Za-z0-9_.:-]{1,64}$/.test(name) ? name : '(not shown)';
}
