import { hl7Timestamp } from './ack.js';
import { withoutBom } from './hl7-header.js';

const ENVELOPE_SEGMENTS = new Set(['FHS', 'BHS', 'BTS', 'FTS']);

/**
 * Splits a payload into its messages: a batch (FHS/BHS … BTS/FTS) or a file of several
 * messages gives one per MSH, in order, without the batch envelope; a single message gives
 * itself. Works on bytes read as Latin-1 (every segment name is ASCII), so each message's
 * bytes come out exactly as sent, whatever its character set.
 */
export function splitMessages(payload: Buffer): { messages: Buffer[]; batch: boolean } {
  const lines = withoutBom(payload)
    .toString('latin1')
    .split(/\r\n|\r|\n/);
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
  return {
    messages: messages.map((segments) => Buffer.from(segments.join('\r'), 'latin1')),
    batch: true,
  };
}

/** A batch of ACKs: BHS, the ACKs in the order of the messages, BTS with their count. */
export function batchAck(acks: string[], now = new Date()): string {
  return [
    `BHS|^~\\&|CAREVAULT||||${hl7Timestamp(now)}`,
    ...acks.map((ack) => ack.replace(/\r$/, '')),
    `BTS|${acks.length}`,
  ]
    .join('\r')
    .concat('\r');
}
