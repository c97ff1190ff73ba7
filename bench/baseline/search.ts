import { randomUUID } from 'node:crypto';
import type { BlindIndexer } from '../../src/crypto/blind-index.js';
import { tokenTerms } from '../../src/fhir/search/blind-terms.js';
import { normalizePhone, normalizeString } from '../../src/fhir/search/normalize.js';
import { PHI_PREFIX_MAX, PHI_PREFIX_MIN } from '../../src/fhir/search/phi-parameters.js';
import { Problem } from './http.js';
import type { PageRow } from './statements.js';

/** Patient's PHI parameters by type; `phonetic` searches `name`'s rows, as in CareVault. */
const STRING_PARAMS = new Set([
  'family',
  'given',
  'name',
  'address',
  'address-city',
  'address-postalcode',
]);
const TOKEN_PARAMS = new Set(['identifier', 'email', 'phone', 'telecom']);
const PAGE_SIZE = 20;

/**
 * The one keyed hash a single-value PHI criterion looks for (SearchConditions.phi): a string
 * prefix of 3 to 20 characters (or `:exact`), or a token by value or by system and value.
 * Only what the benchmark searches with: one criterion on one of Patient's PHI parameters.
 */
export function criterionHash(
  blind: BlindIndexer,
  type: string,
  query: Record<string, unknown>,
): { param: string; hash: string } {
  const names = Object.keys(query);
  const raw = query[names[0] ?? ''];
  if (names.length !== 1 || typeof raw !== 'string') {
    throw new Problem(400, 'not-supported', 'The baseline searches one PHI parameter, one value');
  }
  const [code = '', modifier] = names[0]!.split(':');
  const param = code === 'phonetic' ? 'name' : code;
  const hash = (term: string) => ({ param, hash: blind.compute(`search:${type}.${param}`, term) });
  if (STRING_PARAMS.has(param) && (modifier === undefined || modifier === 'exact')) {
    const normalized = normalizeString(raw);
    if (modifier === 'exact') return hash(`e:${normalized}`);
    if (normalized.length < PHI_PREFIX_MIN) {
      throw new Problem(400, 'invalid', `${param} needs at least ${PHI_PREFIX_MIN} characters`);
    }
    return hash(`p:${normalized.slice(0, PHI_PREFIX_MAX)}`);
  }
  if (TOKEN_PARAMS.has(param) && modifier === undefined) {
    const bar = raw.indexOf('|');
    const system = bar === -1 ? null : raw.slice(0, bar);
    let value = bar === -1 ? raw : raw.slice(bar + 1);
    if (value === '') throw new Problem(400, 'invalid', `${param} needs a value`);
    if (param === 'phone' || system === 'phone') value = normalizePhone(value);
    const [byValue, bySystem] = tokenTerms(system, value);
    return hash(system === null ? byValue! : bySystem!);
  }
  throw new Problem(400, 'not-supported', `The baseline cannot search ${names[0]!}`);
}

/**
 * The searchset Bundle of one page (SearchService.bundle and links), with the stored JSON of
 * each match spliced in as it was decrypted. Returns the Bundle's text and the page's rows.
 */
export function searchBundle(
  baseUrl: string,
  type: string,
  query: Record<string, unknown>,
  rows: PageRow[],
): { json: string; page: PageRow[] } {
  const page = rows.slice(0, PAGE_SIZE);
  const url = (cursor?: string): string => {
    const search = new URLSearchParams();
    for (const [name, value] of Object.entries(query)) {
      if (name === '_cursor' || value === undefined) continue;
      for (const item of Array.isArray(value) ? value : [value]) search.append(name, String(item));
    }
    if (cursor) search.set('_cursor', cursor);
    const text = search.toString();
    return `${baseUrl}/${type}${text ? `?${text}` : ''}`;
  };
  const last = page[page.length - 1];
  const link = [
    { relation: 'self', url: url() },
    ...(rows.length > PAGE_SIZE && last
      ? [
          {
            relation: 'next',
            url: url(Buffer.from(JSON.stringify({ d: 'n', k: [last.k0] })).toString('base64url')),
          },
        ]
      : []),
  ];
  const head = JSON.stringify({
    resourceType: 'Bundle',
    id: randomUUID(),
    meta: { lastUpdated: new Date().toISOString() },
    type: 'searchset',
    link,
  });
  const entries = page.map(
    (row) =>
      `{"fullUrl":${JSON.stringify(`${baseUrl}/${row.resource_type}/${row.id}`)},"resource":${row.content},"search":{"mode":"match"}}`,
  );
  return { json: `${head.slice(0, -1)},"entry":[${entries.join(',')}]}`, page };
}
