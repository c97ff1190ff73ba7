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
  for (const line of lines) {
    if (line.startsWith('MSH')) messages.push([line]);
    else if (!ENVELOPE_SEGMENTS.has(line.slice(0, 3)) && line.trim() !== '')
      messages.at(-1)?.push(line);
  }
  const header = (name: string) => lines.find((line) => line.startsWith(name));
  const fhs = header('FHS');
  const bhs = header('BHS');
  return {
    messages: messages.map((segments) => Buffer.from(segments.join('\r'), 'latin1')),
    batch: true,
    envelope: { ...(fhs ? { fhs } : {}), ...(bhs ? { bhs } : {}) },
  };
}

export interface BatchEnvelope {
  fhs?: string;
  bhs?: string;
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
 * FHS and FTS when the batch came in a file.
 */
export function batchAck(acks: string[], envelope: BatchEnvelope = {}, now = new Date()): string {
  const separator = envelope.bhs?.[3] ?? envelope.fhs?.[3] ?? '|';
  const batch = [
    // A file without a BHS: the BHS made for it is in the FHS's delimiters, as the rest is.
    answerHeader('BHS', envelope.bhs, envelope.fhs, now),
    ...acks.map((ack) => ack.replace(/\r$/, '')),
    `BTS${separator}${acks.length}`,
  ];
  const file = envelope.fhs
    ? [answerHeader('FHS', envelope.fhs, envelope.bhs, now), ...batch, `FTS${separator}1`]
    : batch;
  return file.join('\r').concat('\r');
}
