import { randomBytes } from 'node:crypto';
import { HL7_ERRORS, type Hl7Delimiters, type Hl7ErrorCode, type Hl7Header } from './hl7-header.js';

export type AckCode = 'AA' | 'AE' | 'AR';

export interface AckError {
  code: Hl7ErrorCode;
  /** Fixed text: it goes back to the sender and must not echo message content. */
  text: string;
}

export const DEFAULT_DELIMITERS: Hl7Delimiters = {
  field: '|',
  component: '^',
  repetition: '~',
  escape: '\\',
  subcomponent: '&',
  encoding: '^~\\&',
};

/**
 * An original-mode ACK. It uses the sender's own delimiters, so the fields it echoes (the
 * applications and facilities, reversed) go back exactly as they came; MSA-2 is the incoming
 * MSH-10; the ACK has a control id of its own. Without a readable header (`undefined`), the AR
 * names no message.
 */
export function buildAck(
  header: Hl7Header | undefined,
  code: AckCode,
  error?: AckError,
  now = new Date(),
): string {
  const d = header?.delimiters ?? DEFAULT_DELIMITERS;
  const version = header?.version || '2.5';
  const msh = [
    'MSH',
    d.encoding,
    header?.receivingApplication ?? 'CAREVAULT',
    header?.receivingFacility ?? '',
    header?.sendingApplication ?? '',
    header?.sendingFacility ?? '',
    hl7Timestamp(now),
    '',
    ['ACK', header?.triggerEvent ?? '', 'ACK'].join(d.component),
    `CV${randomBytes(9).toString('hex')}`,
    header?.processingId || 'P',
    version,
  ].join(d.field);
  const text = error ? escapeText(error.text, d) : '';
  const segments = [msh, ['MSA', code, header?.controlId ?? '', text].join(d.field)];
  if (error) {
    const number = error.code;
    const name = HL7_ERRORS[number];
    const hl7Code = [number, name, 'HL70357'].join(d.component);
    // ERR-3 (code), ERR-4 (severity) and ERR-8 (text) from v2.5; ERR-1 before it.
    segments.push(
      Number.parseFloat(version) >= 2.5
        ? ['ERR', '', '', hl7Code, 'E', '', '', '', text].join(d.field)
        : [
            'ERR',
            ['', '', '', [number, name, 'HL70357'].join(d.subcomponent)].join(d.component),
          ].join(d.field),
    );
  }
  return `${segments.join('\r')}\r`;
}

/** HL7 escapes for text placed in a field: the escape character first. */
export function escapeText(text: string, d: Hl7Delimiters): string {
  let out = '';
  for (const char of text) {
    if (char === d.escape) out += `${d.escape}E${d.escape}`;
    else if (char === d.field) out += `${d.escape}F${d.escape}`;
    else if (char === d.component) out += `${d.escape}S${d.escape}`;
    else if (char === d.repetition) out += `${d.escape}R${d.escape}`;
    else if (char === d.subcomponent) out += `${d.escape}T${d.escape}`;
    else if (char === '\r' || char === '\n') out += `${d.escape}.br${d.escape}`;
    else out += char;
  }
  return out;
}

/** An HL7 DTM: YYYYMMDDHHMMSS+0000, in UTC. */
export function hl7Timestamp(date: Date): string {
  return `${date.toISOString().slice(0, 19).replace(/[-T:]/g, '')}+0000`;
}
