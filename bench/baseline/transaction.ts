import { randomUUID } from 'node:crypto';
import { Problem } from './http.js';
import { INDEXED_TYPES, type Json, type Written } from './store.js';

/** A create entry of a transaction Bundle, with the id it will get. */
export interface PlannedCreate {
  type: string;
  id: string;
  resource: Json;
}

/**
 * The creates of a transaction Bundle (parseEntries, then BundleService.plan): ids assigned up
 * front so that entries can refer to each other by fullUrl, references then resolved in every
 * resource. Only what the benchmark sends: POST entries of the types the baseline indexes.
 */
export function planTransaction(body: unknown): PlannedCreate[] {
  const bundle = body as { resourceType?: unknown; type?: unknown; entry?: unknown } | null;
  if (bundle?.resourceType !== 'Bundle' || bundle.type !== 'transaction') {
    throw new Problem(400, 'not-supported', 'The baseline takes transaction Bundles only');
  }
  const entries = Array.isArray(bundle.entry) ? (bundle.entry as unknown[]) : [];
  const references = new Map<string, string>();
  const planned = entries.map((raw, index) => {
    const entry = raw as { fullUrl?: unknown; resource?: unknown; request?: Json } | null;
    const resource = entry?.resource as Json | undefined;
    const url = entry?.request?.['url'];
    const type = typeof url === 'string' ? url.replace(/^\//, '') : '';
    if (
      entry?.request?.['method'] !== 'POST' ||
      !INDEXED_TYPES.has(type) ||
      typeof resource !== 'object' ||
      resource === null ||
      resource['resourceType'] !== type
    ) {
      throw new Problem(400, 'not-supported', `Bundle.entry[${index}]: the baseline only creates`);
    }
    const id = randomUUID();
    if (typeof entry.fullUrl === 'string') references.set(entry.fullUrl, `${type}/${id}`);
    return { type, id, resource };
  });
  return planned.map((create, index) => ({
    ...create,
    resource: resolveReferences(create.resource, references, index) as Json,
  }));
}

/** Replaces references to other entries' fullUrls (urn:uuid:…) with the ids assigned. */
function resolveReferences(
  value: unknown,
  ids: ReadonlyMap<string, string>,
  index: number,
): unknown {
  if (Array.isArray(value)) return value.map((item) => resolveReferences(item, ids, index));
  if (typeof value !== 'object' || value === null) return value;
  const out: Json = {};
  for (const [key, item] of Object.entries(value)) {
    if (key === 'reference' && typeof item === 'string' && ids.has(item)) {
      out[key] = ids.get(item);
    } else if (key === 'reference' && typeof item === 'string' && item.startsWith('urn:uuid:')) {
      throw new Problem(400, 'invalid', `Bundle.entry[${index}] refers to an unknown urn:uuid`);
    } else {
      out[key] = resolveReferences(item, ids, index);
    }
  }
  return out;
}

/**
 * The order a transaction writes its creates in (BundleService): by `Type/id` in code-unit
 * order, so that concurrent Bundles lock rows alike. Each is checked, written and named in the
 * audit row in this order; the response keeps the Bundle's.
 */
export function inWriteOrder<T extends { type: string; id: string }>(creates: readonly T[]): T[] {
  const key = (create: T): string => `${create.type}/${create.id}`;
  return [...creates].sort((a, b) => (key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0));
}

/**
 * The Patients a resource refers to by relative literal reference (RetiredPatients'
 * patientsReferred), but for a Patient's own links (a merge's replaced-by) and itself.
 */
export function patientsReferred(type: string, id: string, resource: Json): string[] {
  const ids = new Set<string>();
  const visit = (value: unknown, top: boolean): void => {
    if (Array.isArray(value)) {
      for (const item of value) visit(item, false);
      return;
    }
    if (typeof value !== 'object' || value === null) return;
    for (const [key, child] of Object.entries(value as Json)) {
      if (top && key === 'link' && type === 'Patient') continue;
      if (key === 'reference' && typeof child === 'string') {
        const target = PATIENT_REFERENCE.exec(child)?.[1];
        if (target !== undefined) ids.add(target);
      } else {
        visit(child, false);
      }
    }
  };
  visit(resource, true);
  ids.delete(id);
  return [...ids];
}

const PATIENT_REFERENCE = /^Patient\/([A-Za-z0-9.-]{1,64})$/;

/** The transaction-response Bundle, each stored resource spliced in as it was stored. */
export function transactionResponse(written: Written[]): string {
  const entries = written.map(
    (w) =>
      `{"resource":${w.content},"response":${JSON.stringify({
        status: '201 Created',
        location: `${w.resourceType}/${w.id}/_history/1`,
        etag: 'W/"1"',
        lastModified: w.lastUpdated.toISOString(),
      })}}`,
  );
  return `{"resourceType":"Bundle","id":"${randomUUID()}","type":"transaction-response","entry":[${entries.join(',')}]}`;
}

/** The patients whose compartment holds a written resource: the Patient, or the subject. */
export function patientsOf(written: Written): string[] {
  if (written.resourceType === 'Patient') return [written.id];
  return written.index.references
    .filter((reference) => reference.param === 'subject' && reference.targetType === 'Patient')
    .map((reference) => reference.targetId);
}
