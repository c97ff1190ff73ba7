import { randomBytes } from 'node:crypto';
import { HL7_ERRORS, type Hl7Delimiters, type Hl7ErrorCode, type Hl7Header } from './hl7-header.js';

export type AckCode = 'AA' | 'AE' | 'AR';

export interface AckError {
  code: Hl7ErrorCode;
  /** Fixed text: it goes back to the sender and must not echo message content. */
  text: string;
  /** ERR-4: E (the default) refuses, W warns of something an accepted message lost. */
  severity?: 'E' | 'W';
  /** ERR-2 (ERR-1 before v2.5): the segment, its place among those of its name, the field. */
  location?: readonly [segment: string, sequence: number, field: number];
}

export const DEFAULT_DELIMITERS: Hl7Delimiters = {
  field: '|',
  component: '^',
  repetition: '~',
  escape: '\\',
  subcomponent: '&',
  encoding: '^~\\&',
};

/** Whether MSH-9 of this version (2.1 to 2.9, with a release: 2.3.1) has a third component. */
function hasMessageStructure(version: string): boolean {
  const [, minor = 0, release = 0] = version.split('.').map(Number);
  return minor > 3 || (minor === 3 && release >= 1);
}

/**
 * An original-mode ACK. It uses the sender's own delimiters, so the fields it echoes (the
 * applications and facilities, reversed) go back exactly as they came; MSA-2 is the incoming
 * MSH-10; the ACK has a control id of its own. Without a readable header (`undefined`), the AR
 * names no message. One ERR per error or warning; MSA-3 (withdrawn in v2.5, still read by many
 * receivers) carries the first error's text, never a warning's, as the message was taken.
 */
export function buildAck(
  header: Hl7Header | undefined,
  code: AckCode,
  errors?: AckError | readonly AckError[],
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
    // MSH-9.3, the message structure, is v2.3.1's: an older receiver reads ACK^A04 alone.
    ['ACK', header?.triggerEvent ?? '', ...(hasMessageStructure(version) ? ['ACK'] : [])].join(
      d.component,
    ),
    `CV${randomBytes(9).toString('hex')}`,
    header?.processingId || 'P',
    version,
  ].join(d.field);
  const all = errors === undefined ? [] : 'code' in errors ? [errors] : errors;
  const refusal = all.find((error) => (error.severity ?? 'E') === 'E');
  const text = refusal ? escapeText(refusal.text, d) : '';
  const segments = [msh, ['MSA', code, header?.controlId ?? '', text].join(d.field)];
  const modern = Number.parseFloat(version) >= 2.5;
  for (const error of all) segments.push(errSegment(error, d, modern));
  return `${segments.join('\r')}\r`;
}

/** ERR-2 (location), ERR-3 (code), ERR-4 (severity) and ERR-8 (text) from v2.5; ERR-1 before. */
function errSegment(error: AckError, d: Hl7Delimiters, modern: boolean): string {
  const number = error.code;
  const name = HL7_ERRORS[number];
  const place = error.location?.map(String) ?? ['', '', ''];
  if (!modern) {
    const code = [number, name, 'HL70357'].join(d.subcomponent);
    return ['ERR', [...place, code].join(d.component)].join(d.field);
  }
  return [
    'ERR',
    '',
    error.location ? place.join(d.component) : '',
    [number, name, 'HL70357'].join(d.component),
    error.severity ?? 'E',
    '',
    '',
    '',
    escapeText(error.text, d),
  ].join(d.field);
}

/**
 * HL7 escapes for text placed in a field: the escape character first, and the truncation
 * character (`\P\`) where MSH-2 has one (until 2026-12-07 a `#` went as it was). A line break (CR LF, CR
 * or LF) is one `\.br\`. Other control characters but tab go as hexadecimal data (`\X1C\`):
 * FHIR strings may hold them, and sent as they are, an MLLP end block (0x1C) or start block
 * (0x0B) cut the message short at the receiver, which until 2026-12-07 took what came before
 * it as the whole message (an A08 without the fields after a name). A value that is `""` goes
 * as hexadecimal data too: as it is, it is HL7's null, which deletes the field at the receiver.
 */
export function escapeText(text: string, d: Hl7Delimiters): string {
  if (text === '""') return `${d.escape}X2222${d.escape}`;
  let out = '';
  let previous = '';
  for (const char of text) {
    if (char === d.escape) out += `${d.escape}E${d.escape}`;
    else if (char === d.field) out += `${d.escape}F${d.escape}`;
    else if (char === d.component) out += `${d.escape}S${d.escape}`;
    else if (char === d.repetition) out += `${d.escape}R${d.escape}`;
    else if (char === d.subcomponent) out += `${d.escape}T${d.escape}`;
    // v2.7's truncation character, when MSH-2 has one: as it is, it says the value was cut.
    else if (char === d.encoding[4]) out += `${d.escape}P${d.escape}`;
    else if (char === '\r' || char === '\n') {
      // The LF of a CR LF ends the same line.
      if (char === '\r' || previous !== '\r') out += `${d.escape}.br${d.escape}`;
    } else if (char < ' ' && char !== '\t') out += `${d.escape}X${hexOf(char)}${d.escape}`;
    else out += char;
    previous = char;
  }
  return out;
}

function hexOf(char: string): string {
  return char.charCodeAt(0).toString(16).toUpperCase().padStart(2, '0');
}

/** An HL7 DTM: YYYYMMDDHHMMSS+0000, in UTC. */
export function hl7Timestamp(date: Date): string {
  return `${date.toISOString().slice(0, 19).replace(/[-T:]/g, '')}+0000`;
}
