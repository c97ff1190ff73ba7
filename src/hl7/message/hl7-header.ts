/** HL7 table 0357 (message error condition codes) used in ERR segments. */
export const HL7_ERRORS = {
  '0': 'Message accepted',
  '100': 'Segment sequence error',
  '101': 'Required field missing',
  '102': 'Data type error',
  '103': 'Table value not found',
  '200': 'Unsupported message type',
  '201': 'Unsupported event code',
  '202': 'Unsupported processing id',
  '203': 'Unsupported version id',
  '204': 'Unknown key identifier',
  '205': 'Duplicate key identifier',
  '207': 'Application internal error',
} as const;

export type Hl7ErrorCode = keyof typeof HL7_ERRORS;

export function isHl7ErrorCode(code: string): code is Hl7ErrorCode {
  return Object.hasOwn(HL7_ERRORS, code);
}

/**
 * A message that cannot be taken as it is (answered AR). The reason is fixed text, never a
 * value from the message.
 */
export class Hl7RejectError extends Error {
  override readonly name = 'Hl7RejectError';
  /** The MSH, when it could be read before the message was refused: the AR answers it. */
  header?: Hl7Header;
  /** How the bytes `header` came from were read (see DecodedMessage.encoding). */
  encoding?: TextEncoding;

  constructor(
    readonly code: Hl7ErrorCode,
    reason: string,
  ) {
    super(reason);
  }
}

/**
 * A message that was taken but whose content cannot be processed as it is (answered AE); it
 * stays stored with status error, for reprocessing. The reason is fixed text, as above.
 */
export class Hl7ProcessingError extends Error {
  override readonly name = 'Hl7ProcessingError';

  constructor(
    readonly code: Hl7ErrorCode,
    reason: string,
  ) {
    super(reason);
  }
}

export interface Hl7Delimiters {
  field: string;
  component: string;
  repetition: string;
  escape: string;
  subcomponent: string;
  /** MSH-2 as sent (four or, from v2.7, five characters). */
  encoding: string;
}

/** MSH fields as sent (escaped), for storage and for the ACK, which echoes them. */
export interface Hl7Header {
  delimiters: Hl7Delimiters;
  sendingApplication: string;
  sendingFacility: string;
  receivingApplication: string;
  receivingFacility: string;
  /** MSH-9.1 and MSH-9.2 in capitals, e.g. ADT and A01 (for `adt^a01` too). */
  messageCode: string;
  triggerEvent: string;
  controlId: string;
  processingId: string;
  version: string;
  charset: string;
}

export interface DecodedMessage {
  /** Segments separated by CR, whatever the sender used. */
  text: string;
  header: Hl7Header;
  /**
   * How the message's bytes were read: the ACK is written the same way, so that the names it
   * echoes (MSH-3 to MSH-6) go back in the sender's own bytes. Undeclared text that is not UTF-8
   * is read as Latin-1, and a refused message's MSH always is.
   */
  encoding?: TextEncoding;
}

export type TextEncoding = 'latin1' | 'utf8';

const UTF8_BOM = Buffer.from([0xef, 0xbb, 0xbf]);
const UNSAFE_DELIMITER = /[A-Za-z0-9\s\0]/;

/**
 * Decodes one message's bytes: byte-order mark, MSH-18 character set, any of CR, LF or CRLF as
 * segment end. The MSH is read in Latin-1 first (every supported character set agrees on it),
 * then the whole message in the character set it names.
 */
export function decodeMessage(payload: Buffer): DecodedMessage {
  const bytes = withoutBom(payload);
  const header = readHeader(firstLine(bytes.toString('latin1')));
  let encoding: TextEncoding = 'latin1';
  try {
    const read = decodeText(bytes, header.charset);
    encoding = read.encoding;
    return { ...messageOf(read.text), encoding };
  } catch (error) {
    // A character set refused after the MSH was read: the AR still names the message (MSA-2)
    // and its sender, or a sender matching ACKs by control id would wait for one forever.
    // The header the AR echoes is the one read as Latin-1 above, or the one read from the text.
    if (error instanceof Hl7RejectError) {
      error.encoding ??= error.header ? encoding : 'latin1';
      error.header ??= header;
    }
    throw error;
  }
}

/** The bytes after a UTF-8 byte-order mark, if there is one. */
export function withoutBom(payload: Buffer): Buffer {
  return payload.subarray(0, 3).equals(UTF8_BOM) ? payload.subarray(3) : payload;
}

/** A message already decoded to text (a stored one, to reprocess). */
export function messageOf(decoded: string): DecodedMessage {
  // A byte-order mark starting a segment (one pasted from a file of its own) is no part of it:
  // kept, it hid the segment's name, and a message whose PID it preceded had none (AE 100).
  const text = decoded
    .split(/\r\n|\r|\n/)
    .map((segment) => segment.replace(/^\uFEFF+/, ''))
    .filter((segment) => segment.trim().length > 0)
    .join('\r');
  const header = readHeader(firstLine(text));
  if (text.includes('\0')) {
    // No HL7 v2 character set has a use for NUL, and PostgreSQL cannot store it: mapped, it
    // failed the write (an AE "internal error" that every resend repeated).
    const error = new Hl7RejectError(
      '102',
      'The message holds a NUL character (0x00), which HL7 v2 text cannot carry',
    );
    error.header = header;
    throw error;
  }
  return { text, header };
}

function firstLine(text: string): string {
  return text.replace(/^\uFEFF?[\r\n]*/, '').split(/\r\n|\r|\n/, 1)[0]!;
}

function readHeader(msh: string): Hl7Header {
  if (!msh.startsWith('MSH') || msh.length < 8) {
    throw new Hl7RejectError('100', 'The message does not start with an MSH segment');
  }
  const field = msh[3]!;
  const encoding = msh.slice(4, msh.indexOf(field, 4) < 0 ? undefined : msh.indexOf(field, 4));
  const all = [field, ...encoding];
  if (
    (encoding.length !== 4 && encoding.length !== 5) ||
    all.some((char) => UNSAFE_DELIMITER.test(char)) ||
    new Set(all).size !== all.length
  ) {
    throw new Hl7RejectError(
      '102',
      'MSH-1 and MSH-2 must give five distinct delimiter characters (MSH-2 is malformed)',
    );
  }
  const delimiters: Hl7Delimiters = {
    field,
    component: encoding[0]!,
    repetition: encoding[1]!,
    escape: encoding[2]!,
    subcomponent: encoding[3]!,
    encoding,
  };
  // fields[n - 1] is MSH-n: MSH-1 is the field separator itself. A NUL is kept as HL7's own
  // escape of it (\X00\): these fields go to text columns, which cannot hold NUL (the message
  // then could not even be stored to be refused), and the ACK echoes MSH-10 as the same value.
  const nul = `${delimiters.escape}X00${delimiters.escape}`;
  const fields = msh.replaceAll('\0', nul).split(field);
  const at = (n: number): string => fields[n - 1] ?? '';
  // HL7's codes (tables 0076, 0003) are capitals; a sender writing `adt^a01` means ADT^A01, as
  // the stored type and HL7_IGNORE take it. Until 2026-12-07 processing refused it (AR 200).
  // Blanks around them are a fixed-width system's padding (`ADT^A01 `), refused as AR 201 then.
  const [messageCode = '', triggerEvent = ''] = at(9)
    .split(delimiters.component)
    .map((part) => part.trim().toUpperCase());
  if (!messageCode || !at(10)) {
    throw new Hl7RejectError('101', 'MSH-9 (message type) and MSH-10 are required');
  }
  // Stored and echoed whole, a field of kilobytes overflowed the resend index (the message
  // could not even be stored to be refused, so it got no ACK and came back forever) and went
  // back in the ACK at any length. The AR echoes its first characters: a sender matching ACKs
  // by control id cannot match them anyway, and one logging them sees which message it was.
  const over = BOUNDED.find(([n, , most]) => [...at(n)].length > most);
  const bounded = (n: number): string => {
    const most = BOUNDED.find(([field]) => field === n)![2];
    return [...at(n)].slice(0, most).join('');
  };
  const header: Hl7Header = {
    delimiters,
    sendingApplication: bounded(3),
    sendingFacility: bounded(4),
    receivingApplication: at(5),
    receivingFacility: at(6),
    messageCode,
    triggerEvent,
    controlId: bounded(10),
    processingId: at(11),
    version: at(12).split(delimiters.component)[0] ?? '',
    charset: at(18).split(delimiters.repetition)[0] ?? '',
  };
  if (over) {
    const [field, name, most] = over;
    const error = new Hl7RejectError(
      '102',
      `MSH-${field} (${name}) is longer than ${most} characters, the most HL7 v2 allows`,
    );
    error.header = header;
    throw error;
  }
  // Read as v2 all the same, a v3 or unknown version's fields would be taken for what they
  // are not. An empty MSH-12 is taken: old feeds leave it out, and their fields are v2's.
  if (header.version && !V2_VERSION.test(header.version)) {
    const error = new Hl7RejectError(
      '203',
      'MSH-12 (version id) names no HL7 v2 version read here (2.1 to 2.9)',
    );
    error.header = header;
    throw error;
  }
  return header;
}

/** 2.1 to 2.9, with a release (2.3.1, 2.5.1, 2.8.2). */
const V2_VERSION = /^2\.[1-9](\.\d{1,2})?$/;

/**
 * The MSH fields stored in the resend key, and their most characters: MSH-3 and MSH-4 are HD
 * (227 in v2.5), MSH-10 is 199 from v2.7 on (20 in v2.5: senders often exceed that).
 */
const BOUNDED: [field: number, name: string, most: number][] = [
  [3, 'sending application', 227],
  [4, 'sending facility', 227],
  [10, 'message control id', 199],
];

function decodeText(bytes: Buffer, charset: string): { text: string; encoding: TextEncoding } {
  const utf8 = (text: string) => ({ text, encoding: 'utf8' as const });
  const latin1 = () => ({ text: bytes.toString('latin1'), encoding: 'latin1' as const });
  switch (charset.toUpperCase()) {
    case '8859/1':
      // UTF-8 under an 8859/1 label (an interface engine re-encoded and kept MSH-18): read as
      // Latin-1, Müller was stored as MÃ¼ller, found by no search. Latin-1 text whose bytes
      // above 0x7F also form valid UTF-8 sequences (Ã then ¼) is all but unknown in practice.
      if (bytes.some((byte) => byte > 0x7f) && strictUtf8(bytes) !== undefined) {
        reject('MSH-18 says 8859/1, but the message is UTF-8: declare UNICODE UTF-8');
      }
      return latin1();
    case 'UNICODE UTF-8':
      return utf8(
        strictUtf8(bytes) ?? reject('The message is not valid UTF-8, as MSH-18 says it is'),
      );
    case '':
    case 'ASCII': {
      // Undeclared or ASCII, yet many senders write UTF-8: take it when it is valid.
      const text = strictUtf8(bytes);
      return text === undefined ? latin1() : utf8(text);
    }
    default:
      throw new Hl7RejectError('102', 'Unsupported character set in MSH-18');
  }
}

/** The bytes as UTF-8 when they are valid UTF-8. */
export function strictUtf8(bytes: Buffer): string | undefined {
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    return undefined;
  }
}

function reject(reason: string): never {
  throw new Hl7RejectError('102', reason);
}
