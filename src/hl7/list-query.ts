import { AppError } from '../common/errors/app-error.js';
import { unencodedPlus } from '../common/http/media-types.js';
import { parseIsoDateOrInstant } from '../common/iso-dates.js';
import type { Hl7MessageStatus } from './store/hl7-message.entity.js';
import type { Hl7MessageFilter } from './store/hl7-message.repository.js';

/** A list route's `status` (one of `statuses`) and `_count` (1 to 1000, default 100), checked. */
export function listQuery<S extends string>(
  statuses: readonly S[],
  status: string,
  count: string | undefined,
): { status: S; limit: number } {
  if (!statuses.includes(status as S)) {
    throw AppError.invalid(`status must be one of ${statuses.join(', ')}`);
  }
  const limit = count === undefined ? 100 : Number(count);
  if (!Number.isInteger(limit) || limit < 1 || limit > 1000) {
    throw AppError.invalid('_count must be an integer from 1 to 1000');
  }
  return { status: status as S, limit };
}

/** What `GET /hl7/messages` takes; anything else is refused rather than ignored. */
const MESSAGE_PARAMETERS = new Set([
  'status',
  '_count',
  '_after',
  'type',
  'controlId',
  'sender',
  'since',
  'before',
  'warned',
]);
const MESSAGE_TYPE = /^[A-Z0-9]{3}(\^[A-Z0-9]{3})?$/;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/**
 * `GET /hl7/messages`'s query as a filter and a page size, checked: a status, then any of a
 * message type (`ADT^A08`, or `ADT` for all its events), a control id, a sending application
 * (MSH-3), a receipt window (`since`, `before`: a date or an instant with its offset),
 * `warned=true` (accepted with a warning), and `_after` (the id of the last message of the
 * page before).
 */
export function messageListQuery(
  query: Record<string, unknown>,
  statuses: readonly Hl7MessageStatus[],
): { filter: Hl7MessageFilter; limit: number } {
  for (const [name, value] of Object.entries(query)) {
    if (!MESSAGE_PARAMETERS.has(name)) {
      throw AppError.invalid(`Unknown parameter ${name}: ${[...MESSAGE_PARAMETERS].join(', ')}`);
    }
    if (typeof value !== 'string') throw AppError.invalid(`${name} may be given once`);
  }
  const text = query as Record<string, string | undefined>;
  const { status, limit } = listQuery(statuses, text['status'] ?? '', text['_count']);
  const type = text['type']?.toUpperCase();
  if (type !== undefined && !MESSAGE_TYPE.test(type)) {
    throw AppError.invalid('type must be a message type such as ADT^A08, or a code such as ADT');
  }
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
      status,
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
