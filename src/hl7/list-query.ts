import type { FastifyReply, FastifyRequest } from 'fastify';
import { AppError } from '../common/errors/app-error.js';
import { unencodedPlus } from '../common/http/media-types.js';
import { parseIsoDateOrInstant } from '../common/iso-dates.js';
import type { Hl7OutboxFilter } from './outbound/hl7-outbox.repository.js';
import { HL7_OUTBOX_STATUSES } from './outbound/hl7-outbox.entity.js';
import { HL7_MESSAGE_STATUSES } from './store/hl7-message.entity.js';
import type { Hl7MessageFilter } from './store/hl7-message.repository.js';

/** A list's query, each parameter once and known to the list (anything else is refused). */
export function parametersOf(
  query: Record<string, unknown>,
  known: readonly string[],
): Record<string, string | undefined> {
  for (const [name, value] of Object.entries(query)) {
    if (!known.includes(name)) {
      throw AppError.invalid(`Unknown parameter ${name}: ${known.join(', ')}`);
    }
    if (typeof value !== 'string') throw AppError.invalid(`${name} may be given once`);
  }
  return query as Record<string, string | undefined>;
}

/** A list route's `status`, one of `statuses`, checked. */
export function statusOf<S extends string>(statuses: readonly S[], status: string | undefined): S {
  if (!statuses.includes(status as S)) {
    throw AppError.invalid(`status must be one of ${statuses.join(', ')}`);
  }
  return status as S;
}

/** A list route's `_count`: 1 to 1000, default 100. */
export function countOf(count: string | undefined): number {
  const limit = count === undefined ? 100 : Number(count);
  if (!Number.isInteger(limit) || limit < 1 || limit > 1000) {
    throw AppError.invalid('_count must be an integer from 1 to 1000');
  }
  return limit;
}

/**
 * A page of a list fetched with one row more than `limit`, which says whether there is a next
 * page: the first `limit` rows, and then a `Link rel="next"` to the same list from after the
 * last of them (`_after` its cursor).
 */
export function pageOf<T>(
  rows: T[],
  limit: number,
  request: FastifyRequest,
  reply: FastifyReply,
  cursor: (row: T) => string,
): T[] {
  const page = rows.slice(0, limit);
  if (rows.length > limit) {
    const [path = '', search = ''] = request.url.split('?');
    const params = new URLSearchParams(search);
    params.set('_after', cursor(page.at(-1)!));
    void reply.header('link', `<${path}?${params.toString()}>; rel="next"`);
  }
  return page;
}

/** What `GET /hl7/messages` takes (the audit row keeps these names, audit-vocabulary.ts). */
export const MESSAGE_PARAMETERS = [
  'status',
  '_count',
  '_after',
  'type',
  'controlId',
  'sender',
  'since',
  'before',
  'warned',
] as const;
const MESSAGE_TYPE = /^[A-Z0-9]{3}(\^[A-Z0-9]{3})?$/;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/**
 * `GET /hl7/messages`'s query as a filter and a page size, checked: a status (which a control
 * id alone may stand in for), then any of a
 * message type (`ADT^A08`, or `ADT` for all its events), a control id, a sending application
 * (MSH-3), a receipt window (`since`, `before`: a date or an instant with its offset),
 * `warned=true` (accepted with a warning), and `_after` (the id of the last message of the
 * page before).
 */
export function messageListQuery(query: Record<string, unknown>): {
  filter: Hl7MessageFilter;
  limit: number;
} {
  const text = parametersOf(query, MESSAGE_PARAMETERS);
  // A control id finds a message whatever became of it ("what of MSG00417?"): the status is
  // then optional, where it was required until 2026-12-06 and took a call per status.
  const byControlId = text['controlId'] !== undefined && text['status'] === undefined;
  const status = byControlId ? undefined : statusOf(HL7_MESSAGE_STATUSES, text['status']);
  const limit = countOf(text['_count']);
  const type = text['type'] === undefined ? undefined : messageTypeOf(text['type']);
  const after = text['_after'];
  if (after !== undefined && !UUID.test(after)) {
    throw AppError.invalid('_after must be the id of a listed message');
  }
  const warned = text['warned'];
  if (warned !== undefined && warned !== 'true' && warned !== 'false') {
    throw AppError.invalid('warned must be true or false');
  }
  const since = instantOf(text, 'since');
  const before = instantOf(text, 'before');
  return {
    filter: {
      ...(status !== undefined ? { status } : {}),
      ...(type !== undefined ? { messageType: type } : {}),
      ...(text['controlId'] !== undefined ? { controlId: text['controlId'] } : {}),
      ...(text['sender'] !== undefined ? { sendingApplication: text['sender'] } : {}),
      ...(since ? { since } : {}),
      ...(before ? { before } : {}),
      ...(warned === 'true' ? { warned: true } : {}),
      ...(after !== undefined ? { after } : {}),
    },
    limit,
  };
}

/** A message type to list by (`ADT^A08`, or a code alone, `ADT`), upper case; else a 400. */
export function messageTypeOf(value: string): string {
  const type = value.toUpperCase();
  if (!MESSAGE_TYPE.test(type)) {
    throw AppError.invalid('type must be a message type such as ADT^A08, or a code such as ADT');
  }
  return type;
}

function instantOf(query: Record<string, string | undefined>, name: string): Date | undefined {
  const value = query[name];
  if (value === undefined) return undefined;
  // A plus written unencoded in an offset (+01:00) reads as a space.
  const date = parseIsoDateOrInstant(unencodedPlus(value));
  if (!date) {
    throw AppError.invalid(`${name} must be a date or an instant such as 2026-01-01T08:00:00Z`);
  }
  return date;
}

/** What `GET /hl7/outbox` takes. */
export const OUTBOX_PARAMETERS = ['status', '_count', '_after', 'destination', 'resource'] as const;
const RESOURCE = /^([A-Z][A-Za-z]{1,63})\/([A-Za-z0-9\-.]{1,64})$/;

/**
 * `GET /hl7/outbox`'s query as a filter and a page size, checked: a status, then any of a
 * destination (`host:port`, as HL7_OUTBOUND names it), the resource the message is about
 * (`Patient/<id>`), and `_after` (the queue position, `seq`, of the last one of the page before).
 */
export function outboxListQuery(query: Record<string, unknown>): {
  filter: Hl7OutboxFilter;
  limit: number;
} {
  const text = parametersOf(query, OUTBOX_PARAMETERS);
  const status = statusOf(HL7_OUTBOX_STATUSES, text['status']);
  const limit = countOf(text['_count']);
  const after = text['_after'];
  if (after !== undefined && !/^\d{1,18}$/.test(after)) {
    throw AppError.invalid('_after must be the seq of a listed message');
  }
  const resource = text['resource'];
  const [, resourceType, resourceId] =
    resource === undefined ? [] : (RESOURCE.exec(resource) ?? []);
  if (resource !== undefined && !resourceType) {
    throw AppError.invalid('resource must be a type and id such as Patient/123');
  }
  return {
    filter: {
      status,
      ...(text['destination'] !== undefined ? { destination: text['destination'] } : {}),
      ...(resourceType && resourceId ? { resourceType, resourceId } : {}),
      ...(after !== undefined ? { afterSeq: after } : {}),
    },
    limit,
  };
}
