import { createHash } from 'node:crypto';

export const GENESIS_HASH = '0'.repeat(64);

export const AUDIT_SOURCES = ['http', 'cli', 'hl7', 'system'] as const;
export type AuditSource = (typeof AUDIT_SOURCES)[number];

/**
 * What one audited event says (IHE BALP shape), before it joins the chain. Nothing here may
 * hold PHI: ids, codes, parameter names and status codes only.
 */
export interface AuditEntry {
  id: string;
  recordedAt: Date;
  source: AuditSource;
  requestId: string | null;
  actorUserId: string | null;
  actorName: string | null;
  actorRoles: string[];
  /** The SMART scopes of a narrowed token (and its patient in context): the "client" side. */
  actorScope: string | null;
  breakGlass: boolean;
  sourceIp: string | null;
  userAgent: string | null;
  /** create, read, vread, update, patch, delete, search, history, execute, login, logout... */
  action: string;
  /** The FHIR interaction or operation (`search-type`, `transaction`, `$everything`, `mfa`). */
  subtype: string | null;
  method: string | null;
  /** The route template (`/fhir/:type/:id`), never the URL: a URL can carry PHI. */
  route: string | null;
  resourceType: string | null;
  resourceId: string | null;
  resourceVersion: string | null;
  /** Every patient whose data the event touched. */
  patientIds: string[];
  /** Every resource the event touched, as `Type/id` (the one resource's version is below). */
  entities: string[];
  /** Names of the query or form parameters, never their values. */
  queryParams: string[];
  outcome: 'success' | 'failure';
  statusCode: number | null;
  /** An error code or a short fixed reason, never a message that could echo input. */
  detail: string | null;
}

/** An entry as it sits in the chain. */
export interface ChainedAuditEntry extends AuditEntry {
  chainSeq: number;
  prevHash: string;
  hash: string;
}

/** UTF-16 surrogates without their pair, which jsonb refuses. */
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g;

/** Any surrogate: with U+0000, what a text must have for it to need changing. */
const SURROGATE = /[\uD800-\uDFFF]/;

/**
 * The text with U+FFFD in place of what PostgreSQL cannot store: U+0000 and lone surrogates.
 * Almost every text has neither, and is kept as it is after a search for U+0000 and a scan for
 * a surrogate: the two replacements (one with a lookbehind) took about 5 times as long, on
 * every string of every audit row.
 */
function storableText(value: string): string {
  if (!value.includes('\u0000') && !SURROGATE.test(value)) return value;
  return value.replaceAll('\u0000', '\uFFFD').replace(LONE_SURROGATE, '\uFFFD');
}

/**
 * The entry as PostgreSQL can hold it: U+FFFD in place of what it cannot store. A request's
 * parameter names are the sender's (`?a%00b=1`); one such character used to make the whole
 * group commit fail, so that request left no row and every read committed with it got a 503.
 * The hash is computed over this form, which is what the verifier reads back.
 */
export function storableEntry(entry: AuditEntry): AuditEntry {
  const copy: Record<string, unknown> = { ...entry };
  for (const [field, value] of Object.entries(copy)) {
    if (typeof value === 'string') copy[field] = storableText(value);
    else if (Array.isArray(value))
      copy[field] = value.map((item: unknown) =>
        typeof item === 'string' ? storableText(item) : item,
      );
  }
  return copy as unknown as AuditEntry;
}

/** The columns in their fixed canonical order: changing it would break every existing chain. */
const CANONICAL_FIELDS = [
  'id',
  'recordedAt',
  'source',
  'requestId',
  'actorUserId',
  'actorName',
  'actorRoles',
  'actorScope',
  'breakGlass',
  'sourceIp',
  'userAgent',
  'action',
  'subtype',
  'method',
  'route',
  'resourceType',
  'resourceId',
  'resourceVersion',
  'patientIds',
  'entities',
  'queryParams',
  'outcome',
  'statusCode',
  'detail',
] as const satisfies readonly (keyof AuditEntry)[];

/**
 * The canonical form of an entry's content: a JSON array of the fields in a fixed order (no
 * key-order ambiguity), the time as an ISO string with milliseconds (what PostgreSQL gives back
 * exactly), prefixed with a format version.
 */
export function canonicalForm(entry: AuditEntry): string {
  return JSON.stringify([
    'cv-audit-1',
    ...CANONICAL_FIELDS.map((field) => {
      const value = entry[field];
      return value instanceof Date ? value.toISOString() : value;
    }),
  ]);
}

/** SHA-256 of the canonical form: computed by the writer, recomputed by the verifier. */
export function contentHash(entry: AuditEntry): string {
  return createHash('sha256').update(canonicalForm(entry)).digest('hex');
}

/**
 * A row's chain hash: SHA-256 over the previous row's hash, this row's content hash and its
 * position. PostgreSQL computes the same in audit_append() (the migration), where the chain
 * is extended under its lock in one statement; this is the reference the verifier uses.
 */
export function linkHash(prevHash: string, content: string, seq: number): string {
  return createHash('sha256')
    .update(Buffer.from(prevHash, 'hex'))
    .update(Buffer.from(content, 'hex'))
    .update(String(seq), 'utf8')
    .digest('hex');
}

/** The hash a chained entry must carry. */
export function entryHash(entry: Omit<ChainedAuditEntry, 'hash'>): string {
  return linkHash(entry.prevHash, contentHash(entry), entry.chainSeq);
}

/** Links entries onto the chain after `head`, in order, as audit_append() does. */
export function chain(
  head: { seq: number; hash: string },
  entries: readonly AuditEntry[],
): ChainedAuditEntry[] {
  let { seq, hash } = head;
  return entries.map((entry) => {
    seq += 1;
    const linked = { ...entry, chainSeq: seq, prevHash: hash };
    hash = entryHash(linked);
    return { ...linked, hash };
  });
}
