import { randomBytes } from 'node:crypto';
import { hl7Timestamp } from './ack.js';
import { withoutBom } from './hl7-header.js';

const ENVELOPE_SEGMENTS = new Set(['FHS', 'BHS', 'BTS', 'FTS']);
/** The UTF-8 byte-order mark as its bytes read as Latin-1. */
const LATIN1_BOM = '\u00ef\u00bb\u00bf';

/**
 * Splits a payload into its messages: a batch (FHS/BHS … BTS/FTS) or a file of several
 * messages gives one per MSH, in order, without the batch envelope; a single message gives
 * itself. Works on bytes read as Latin-1 (every segment name is ASCII), so each message's
 * bytes come out exactly as sent, whatever its character set.
 */
export function splitMessages(payload: Buffer): {
  messages: Buffer[];
  batch: boolean;
  /** The batch's FHS and BHS lines as sent, which its ACK answers (see batchAck). */
  envelope?: BatchEnvelope;
} {
  // A byte-order mark may start any line: files joined as they were, each with its own. Until
  // 2026-12-07 the second MSH hid behind its mark, and its message was taken as segments of the
  // first (one ACK for both, the second never applied).
  const lines = withoutBom(payload)
    .toString('latin1')
    .split(/\r\n|\r|\n/)
    .map((line) => (line.startsWith(LATIN1_BOM) ? line.slice(LATIN1_BOM.length) : line));
  const batch = lines.some((line) => ENVELOPE_SEGMENTS.has(line.slice(0, 3)));
  const starts = lines.filter((line) => line.startsWith('MSH')).length;
  if (!batch && starts <= 1) {
    return { messages: [payload], batch: false };
  }
  const messages: string[][] = [];
  // Each BHS begins a batch, and the messages after it are its own (a file may hold several).
  const batches: { bhs?: string; messages: number }[] = [];
  for (const line of lines) {
    if (line.startsWith('BHS')) batches.push({ bhs: line, messages: 0 });
    if (line.startsWith('MSH')) {
      messages.push([line]);
      if (batches.length === 0) batches.push({ messages: 0 });
      batches.at(-1)!.messages++;
    } else if (!ENVELOPE_SEGMENTS.has(line.slice(0, 3)) && line.trim() !== '')
      messages.at(-1)?.push(line);
  }
  const fhs = lines.find((line) => line.startsWith('FHS'));
  const bhs = batches[0]?.bhs;
  return {
    messages: messages.map((segments) => Buffer.from(segments.join('\r'), 'latin1')),
    batch: true,
    envelope: { ...(fhs ? { fhs } : {}), ...(bhs ? { bhs } : {}), batches },
  };
}

export interface BatchEnvelope {
  fhs?: string;
  /** The first batch's BHS. */
  bhs?: string;
  /** Each batch's BHS (none before the first BHS) and how many messages it holds, in order. */
  batches?: { bhs?: string; messages: number }[];
}

/**
 * The header answering a batch's (or file's) own, as an ACK's MSH answers a message's: the
 * sender and receiver swapped, an own control id (-11) and the one answered (-12), so that
 * the sender can match the batch of ACKs to its batch. Until 2026-12-06 the BHS named only
 * CAREVAULT and a time, and a file got no FHS.
 */
function answerHeader(
  name: 'FHS' | 'BHS',
  received: string | undefined,
  /** The other header received (FHS for a BHS): its delimiters when this one did not come. */
  other: string | undefined,
  now: Date,
): string {
  const separator = received?.[3] ?? other?.[3] ?? '|';
  const fields = received?.split(separator) ?? [];
  const encoding = other?.split(separator)[1];
  // fields[n - 1] is xHS-n (xHS-1 is the separator itself), as MSH's.
  const at = (n: number): string => fields[n - 1] ?? '';
  return [
    name,
    at(2) || encoding || '^~\\&',
    at(5) || 'CAREVAULT',
    at(6),
    at(3),
    at(4),
    hl7Timestamp(now),
    '',
    '',
    '',
    `CV${randomBytes(9).toString('hex')}`,
    at(11),
  ]
    .join(separator)
    .replace(new RegExp(`\\${separator}+$`), '');
}

/**
 * A batch of ACKs: BHS, the ACKs in the order of the messages, BTS with their count, within an
 * FHS and FTS when the batch came in a file; a file of several batches gets one such batch of
 * ACKs for each, and FTS-1 counts them (until 2026-12-07 they were answered as one batch, so
 * the second batch's BHS-11 was in no answer).
 */
export function batchAck(acks: string[], envelope: BatchEnvelope = {}, now = new Date()): string {
  const separator = envelope.bhs?.[3] ?? envelope.fhs?.[3] ?? '|';
  const lines = acks.map((ack) => ack.replace(/\r$/, ''));
  const received = envelope.batches?.length
    ? envelope.batches
    : [{ bhs: envelope.bhs, messages: acks.length }];
  const batches = received.flatMap(({ bhs }, n) => {
    // Each batch its own messages' ACKs; the last takes whatever is left, should counts differ.
    const count = n === received.length - 1 ? lines.length : received[n]!.messages;
    const answered = lines.splice(0, count);
    return [
      // A file without a BHS: the BHS made for it is in the FHS's delimiters, as the rest is.
      answerHeader('BHS', bhs, envelope.fhs, now),
      ...answered,
      `BTS${separator}${answered.length}`,
    ];
  });
  const file = envelope.fhs
    ? [
        answerHeader('FHS', envelope.fhs, envelope.bhs, now),
        ...batches,
        `FTS${separator}${received.length}`,
      ]
    : batches;
  return file.join('\r').concat('\r');
}
