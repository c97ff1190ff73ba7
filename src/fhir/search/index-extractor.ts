import '../websocket-shim.js';
import { Injectable } from '@nestjs/common';
import { evalFhirPathTyped, toTypedValue, type TypedValue } from '@medplum/core';
import { AppError } from '../../common/errors/app-error.js';
import { BlindIndexer } from '../../crypto/blind-index.js';
import type { FhirResource } from '../fhir-types.js';
import { dateTerms, stringTerms, tokenTerms } from './blind-terms.js';
import { compositeKeys } from './composite-keys.js';
import { compositeValues } from './composites.js';
import { dateRange } from './date-range.js';
import {
  dedupe,
  DistinctRowCount,
  emptyRows,
  rowCount,
  SECURITY_CONTEXT_PARAM,
  type IndexRows,
} from './index-rows.js';
import { isOwnResource, literalReference } from '../literal-reference.js';
import { normalizePhone, normalizeString } from './normalize.js';
import { plainValues } from './plain-paths.js';
import {
  SearchDefinitions,
  type IndexedParamType,
  type SearchParam,
} from './search-definitions.js';

type Json = Record<string, unknown>;

const isObject = (value: unknown): value is Json =>
  typeof value === 'object' && value !== null && !Array.isArray(value);
const text = (value: unknown): string | null =>
  typeof value === 'string' && value.length > 0 ? value : null;

/** Field name of a blind index key: one key per resource type and parameter. */
export function blindField(type: string, param: string): string {
  return `search:${type}.${param}`;
}

/**
 * Turns a resource into its search index rows: every indexed search parameter of its type is
 * evaluated (FHIRPath from the definitions) and each value stored by parameter type. PHI
 * parameters become keyed hashes only.
 */
@Injectable()
export class IndexExtractor {
  constructor(
    private readonly definitions: SearchDefinitions,
    private readonly blind: BlindIndexer,
  ) {}

  /**
   * @param maxRows - the most distinct rows the resource may have (FHIR_INDEX_ROWS_MAX on
   * writes): past it, extraction stops with a 422 `too-costly`, so that a resource repeating an
   * element tens of thousands of times costs no more than one at the cap. None when reindexing
   * what is stored already.
   */
  extract(resource: FhirResource, maxRows = Number.POSITIVE_INFINITY): IndexRows {
    const rows = emptyRows();
    const typed = [toTypedValue(resource)];
    const elements = Object.keys(resource);
    const counted = new DistinctRowCount();
    // Distinct rows are counted only once there are more rows than the cap, duplicates
    // included: what nearly every resource costs is a sum of eight lengths.
    const checkCount = (): void => {
      if (rowCount(rows) > maxRows && counted.of(rows) > maxRows) {
        throw tooManyRows(resource.resourceType, maxRows);
      }
    };
    // A value repeated in the resource is hashed once: a keyed hash is most of a row's cost.
    const hashes = new Map<string, string>();
    const hash = (field: string, term: string): string => {
      const key = `${field}\0${term}`;
      let value = hashes.get(key);
      if (value === undefined) hashes.set(key, (value = this.blind.compute(field, term)));
      return value;
    };
    for (const param of this.definitions.paramsOf(resource.resourceType)) {
      // A choice element is stored under its typed name (valueQuantity for value): a prefix.
      if (param.roots && !param.roots.some((root) => elements.some((e) => e.startsWith(root)))) {
        continue;
      }
      let values = param.paths ? plainValues(resource, param.paths) : undefined;
      try {
        values ??= evalFhirPathTyped(param.expression, typed).map((item): unknown => item.value);
      } catch {
        // An expression the engine cannot evaluate on this resource indexes nothing.
        continue;
      }
      for (const value of values) {
        this.add(rows, resource.resourceType, param, value, hash);
        checkCount();
      }
    }
    this.addComposites(rows, resource, typed, checkCount, hash);
    if (resource.resourceType === 'Binary') {
      // Whose the Binary is (see SECURITY_CONTEXT_PARAM), written with the version it belongs to.
      addValue(rows, SECURITY_CONTEXT_PARAM, 'reference', resource['securityContext']);
    }
    return dedupe(rows);
  }

  private add(
    rows: IndexRows,
    type: string,
    param: SearchParam,
    value: unknown,
    hash: (field: string, term: string) => string,
  ): void {
    if (param.phi) {
      for (const term of phiTerms(param, value)) {
        rows.blind.push({ param: param.code, hash: hash(blindField(type, param.code), term) });
      }
      return;
    }
    addValue(rows, param.code, param.type, value);
    if (param.type === 'reference' && isObject(value)) {
      // A logical reference names its target by identifier (an MRN, say): PHI, so blind
      // hashes under `subject:identifier`, which the :identifier modifier searches.
      const field = `${param.code}:identifier`;
      for (const { system, code } of tokens(value['identifier'])) {
        for (const term of tokenTerms(system, code)) {
          rows.blind.push({ param: field, hash: hash(blindField(type, field), term) });
        }
      }
    }
    if (param.type === 'token') {
      // The human-readable side, for :text (CodeableConcept.text, Coding.display).
      for (const display of tokenTexts(value)) {
        rows.strings.push({ param: `${param.code}:text`, value: display, exact: null });
      }
    }
  }

  /** Each element's second values, under the keys of its first (see `compositeKeys`). */
  private addComposites(
    rows: IndexRows,
    resource: FhirResource,
    typed: TypedValue[],
    checkCount: () => void,
    hash: (field: string, term: string) => string,
  ): void {
    for (const composite of this.definitions.indexedCompositesOf(resource.resourceType)) {
      const field = blindField(resource.resourceType, composite.code);
      for (const { firsts, seconds } of compositeValues(resource, typed, composite)) {
        for (const key of firsts.flatMap(tokens).flatMap((t) => compositeKeys(composite.code, t))) {
          for (const value of seconds) {
            if (!composite.phi) {
              addValue(rows, key, composite.second.type, value);
              continue;
            }
            // Free text is PHI: keyed hashes under the composite's key, as its own parameter.
            for (const term of stringParts(value).flatMap(stringTerms)) {
              rows.blind.push({ param: key, hash: hash(field, term) });
            }
          }
        }
        checkCount();
      }
    }
  }
}

/** The answer to a resource over the cap: names the type and the cap, never a value (PHI). */
function tooManyRows(type: string, maxRows: number): AppError {
  return AppError.of(
    422,
    'too-costly',
    `This ${type} would be indexed under more than ${maxRows} search index rows, the most ` +
      'one resource version may have (FHIR_INDEX_ROWS_MAX): repeat fewer elements, or split it',
  );
}

/** The rows of one non-PHI value under `param`, by parameter type. */
function addValue(rows: IndexRows, param: string, type: IndexedParamType, value: unknown): void {
  switch (type) {
    case 'token':
      for (const token of tokens(value)) rows.tokens.push({ param, ...token });
      return;
    case 'string':
      for (const part of stringParts(value)) {
        const normalized = normalizeString(part);
        if (normalized) rows.strings.push({ param, value: normalized, exact: part });
      }
      return;
    case 'date': {
      const range = periodOrDate(value);
      if (range) rows.dates.push({ param, ...range });
      return;
    }
    case 'reference': {
      const target = referenceTarget(value);
      if (target) rows.references.push({ param, ...target });
      return;
    }
    case 'number':
      if (typeof value === 'number') rows.numbers.push({ param, value });
      return;
    case 'quantity':
      if (isObject(value) && typeof value['value'] === 'number') {
        rows.quantities.push({
          param,
          value: value['value'],
          system: text(value['system']),
          code: text(value['code']) ?? text(value['unit']),
          unit: text(value['unit']),
          comparator: text(value['comparator']),
        });
      }
      return;
    case 'uri':
      if (typeof value === 'string') rows.uris.push({ param, value });
      return;
  }
}

/** The blind-index terms of a PHI value, by parameter type. */
function phiTerms(param: SearchParam, value: unknown): string[] {
  switch (param.type) {
    case 'string':
      return stringParts(value).flatMap(stringTerms);
    case 'date':
      return typeof value === 'string' ? dateTerms(value) : [];
    case 'token':
      return tokens(value).flatMap(({ system, code }) =>
        tokenTerms(
          system,
          param.code === 'phone' || system === 'phone' ? normalizePhone(code) : code,
        ),
      );
    case 'reference':
    case 'number':
    case 'quantity':
    case 'uri':
      // No PHI parameter has these types (phi-parameters.ts).
      return [];
  }
}

/** system|code pairs of a token value: Coding, CodeableConcept, Identifier, ContactPoint, primitives. */
export function tokens(value: unknown): { system: string | null; code: string }[] {
  if (typeof value === 'string' || typeof value === 'boolean' || typeof value === 'number') {
    return [{ system: null, code: String(value) }];
  }
  if (!isObject(value)) {
    return [];
  }
  if (Array.isArray(value['coding'])) {
    return (value['coding'] as unknown[]).flatMap(tokens);
  }
  const code = text(value['code']) ?? text(value['value']);
  return code ? [{ system: text(value['system']), code }] : [];
}

/** Display texts of a token value, normalized. */
function tokenTexts(value: unknown): string[] {
  if (!isObject(value)) {
    return [];
  }
  const texts = [text(value['text']), text(value['display'])];
  if (Array.isArray(value['coding'])) {
    for (const coding of value['coding'] as unknown[]) {
      if (isObject(coding)) texts.push(text(coding['display']));
    }
  }
  return texts
    .filter((item): item is string => item !== null)
    .map(normalizeString)
    .filter((item) => item.length > 0);
}

/** The searchable parts of a string value: HumanName and Address parts, or the string. */
function stringParts(value: unknown): string[] {
  if (typeof value === 'string') {
    return [value];
  }
  if (!isObject(value)) {
    return [];
  }
  const parts: string[] = [];
  for (const key of [
    'family',
    'given',
    'prefix',
    'suffix',
    'text',
    'line',
    'city',
    'district',
    'state',
    'postalCode',
    'country',
  ]) {
    const part = value[key];
    for (const item of Array.isArray(part) ? part : [part]) {
      if (typeof item === 'string' && item.length > 0) parts.push(item);
    }
  }
  return parts;
}

function periodOrDate(value: unknown): { low: Date; high: Date } | undefined {
  if (typeof value === 'string') {
    return dateRange(value);
  }
  if (isObject(value) && ('start' in value || 'end' in value)) {
    return periodRange(value);
  }
  if (isObject(value) && ('event' in value || 'repeat' in value)) {
    return timingRange(value);
  }
  return undefined;
}

/**
 * A Timing's outer limits, as R4 search.html says to search it (its scheduling details are
 * ignored): from its earliest event or `repeat.boundsPeriod` start to its latest event or bounds
 * end. `boundsDuration` and `boundsRange` give no dates; a Timing with none indexes nothing, as
 * does one with a date that cannot be read.
 */
function timingRange(value: Json): { low: Date; high: Date } | undefined {
  const ranges: ({ low: Date; high: Date } | null)[] = [];
  // An event of only an extension is a null in the array beside its `_event`.
  for (const event of Array.isArray(value['event']) ? (value['event'] as unknown[]) : []) {
    if (event !== null) ranges.push(boundOf(event));
  }
  const repeat = value['repeat'];
  const bounds = isObject(repeat) ? repeat['boundsPeriod'] : undefined;
  if (isObject(bounds) && ('start' in bounds || 'end' in bounds)) {
    ranges.push(periodRange(bounds) ?? null);
  }
  if (ranges.length === 0 || ranges.some((range) => !range)) {
    return undefined;
  }
  // A loop, not Math.min(...): as call arguments, the 140,000 events a 1 MB body holds
  // overflowed the stack, and the write was a 500 (until 2026-12-07).
  let low = Infinity;
  let high = -Infinity;
  for (const range of ranges as { low: Date; high: Date }[]) {
    low = Math.min(low, range.low.getTime());
    high = Math.max(high, range.high.getTime());
  }
  return { low: new Date(low), high: new Date(high) };
}

/**
 * A Period's interval. An open end (no value) extends to the ends of time PostgreSQL and FHIR can
 * both write; an end that is there but unreadable gives no interval at all, rather than an open
 * one that every search before or after it would find (validation refuses such a value, but
 * resources stored before it did are reindexed as they are).
 */
function periodRange(value: Json): { low: Date; high: Date } | undefined {
  const start = value['start'] === undefined ? undefined : boundOf(value['start']);
  const end = value['end'] === undefined ? undefined : boundOf(value['end']);
  if (start === null || end === null) {
    return undefined;
  }
  if (start && end && start.low >= end.high) {
    // A date and a time of its day (2024-03-02 to 2024-03-02T01:00:00+05:00) are a Period, as
    // per-1 compares a date by its calendar day; read in UTC the time comes first, and the row
    // would end before it starts: one day's search found it, the prefixes missed it. Both
    // values are covered instead.
    return { low: end.low, high: start.high };
  }
  return { low: start?.low ?? EARLIEST, high: end?.high ?? LATEST };
}

/** The interval of a Period's start or end; null when it cannot be read. */
function boundOf(value: unknown): { low: Date; high: Date } | null {
  return (typeof value === 'string' ? dateRange(value) : undefined) ?? null;
}

const EARLIEST = new Date('0001-01-01T00:00:00Z');
const LATEST = new Date('9999-12-31T23:59:59Z');

function referenceTarget(
  value: unknown,
): { targetType: string; targetId: string; local: boolean } | undefined {
  const reference = isObject(value) ? text(value['reference']) : null;
  const literal = reference ? literalReference(reference) : undefined;
  return literal
    ? { targetType: literal.type, targetId: literal.id, local: isOwnResource(literal) }
    : undefined;
}
