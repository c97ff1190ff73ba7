import { strictUtf8, type Hl7Delimiters } from './hl7-header.js';

/**
 * A value as HL7 v2 means it: undefined when the field is empty (the receiver keeps what it
 * has), null for `""` (the receiver deletes what it has), else the unescaped text.
 */
export type V2Value = string | null | undefined;

/**
 * The message model: segments, fields, repetitions, components and subcomponents, split with
 * the message's own delimiters. Hand-written rather than node-hl7-client 3.2's: that one finds
 * "MSH" (or BHS, FHS, BTS, FTS) anywhere in the text and then refuses a valid message as a
 * batch (sample ADT04-23 has a field reading MSH), leaves `\.br\` as it is, and gives `""` as
 * a two-character string.
 */
export class V2Message {
  private readonly list: V2Segment[];

  /**
   * `text`: segments separated by CR, as decodeMessage gives them. `timeZone`: the IANA zone
   * the sender's times without a UTC offset are in, when the deployment knows it.
   */
  constructor(text: string, delimiters: Hl7Delimiters, timeZone?: string);
  /** A message of segments already parsed (a part of another: see splitAt). */
  constructor(segments: readonly V2Segment[]);
  constructor(
    source: string | readonly V2Segment[],
    delimiters?: Hl7Delimiters,
    timeZone?: string,
  ) {
    this.list =
      typeof source === 'string'
        ? source
            .split('\r')
            .filter((line) => line.length > 0)
            .map((line) => new V2Segment(line, delimiters!, timeZone))
        : [...source];
  }

  /**
   * One message per group a segment starts, for a structure whose group repeats (ORU^R01's
   * PATIENT_RESULT at each PID, BAR^P01's VISIT at each PV1): each one group, up to the next,
   * after the segments before the first group that all share (`shared`: MSH, the patient's).
   * Other segments before the first group (a VISIT sent without its PV1) are the first part's
   * only. A message without that segment is itself.
   */
  splitAt(name: string, shared: ReadonlySet<string>): V2Message[] {
    const starts = this.list.flatMap((segment, i) => (segment.name === name ? [i] : []));
    if (starts.length === 0) return [this];
    const before = this.list.slice(0, starts[0]);
    const header = before.filter((segment) => shared.has(segment.name));
    return starts.map(
      (start, n) =>
        new V2Message([...(n === 0 ? before : header), ...this.list.slice(start, starts[n + 1])]),
    );
  }

  /** Every segment in message order. */
  segments(): readonly V2Segment[] {
    return this.list;
  }

  first(name: string): V2Segment | undefined {
    return this.list.find((segment) => segment.name === name);
  }

  all(name: string): V2Segment[] {
    return this.list.filter((segment) => segment.name === name);
  }
}

export class V2Segment {
  readonly name: string;
  private readonly fields: string[];
  /** Field n's repetitions, split once: mapping a segment reads its fields many times. */
  private readonly parsed: (readonly V2Repetition[] | undefined)[] = [];

  constructor(
    line: string,
    private readonly delimiters: Hl7Delimiters,
    /** The zone of the sender's times without a UTC offset (see V2Message). */
    readonly timeZone?: string,
  ) {
    this.name = line.slice(0, 3);
    this.fields = line.split(delimiters.field);
  }

  /** The repetitions of field n (1-based, as HL7 numbers them), empty ones left out. */
  repetitions(field: number): V2Repetition[] {
    return [...this.split(field)];
  }

  /** Component c, subcomponent s of the first repetition of field n. */
  value(field: number, component = 1, subcomponent = 1): V2Value {
    const raw = this.raw(field);
    if (raw === '""') return null;
    return this.split(field)[0]?.value(component, subcomponent);
  }

  private split(field: number): readonly V2Repetition[] {
    let reps = this.parsed[field];
    if (!reps) {
      reps = this.raw(field)
        .split(this.delimiters.repetition)
        .filter((rep) => rep.length > 0)
        .map((rep) => new V2Repetition(rep, this.delimiters));
      this.parsed[field] = reps;
    }
    return reps;
  }

  private raw(field: number): string {
    // In MSH the field separator itself is MSH-1, so MSH-n is the (n - 1)th piece after the name.
    if (this.name === 'MSH')
      return field === 1 ? this.delimiters.field : (this.fields[field - 1] ?? '');
    return this.fields[field] ?? '';
  }
}

export class V2Repetition {
  constructor(
    private readonly raw: string,
    private readonly delimiters: Hl7Delimiters,
  ) {}

  /** Components, each split into subcomponents, on first use. */
  private parts: string[][] | undefined;

  /**
   * Trailing blanks are not part of a value (v2's ST, TX and FT say so; fixed-width systems
   * pad their fields with them): `12345   ` is the MRN 12345, and blanks alone are empty.
   */
  value(component = 1, subcomponent = 1): V2Value {
    this.parts ??= this.raw
      .split(this.delimiters.component)
      .map((c) => c.split(this.delimiters.subcomponent));
    const raw = (this.parts[component - 1]?.[subcomponent - 1] ?? '').trimEnd();
    if (raw === '') return undefined;
    if (raw === '""') return null;
    return unescapeV2(raw, this.delimiters);
  }
}

/**
 * HL7 v2 escape sequences: delimiters (\F\ \S\ \T\ \R\ \E\, and from v2.7 the truncation
 * character \P\), hexadecimal data (\Xhh...\), line breaks (\.br\, and \.sp\ or \.spN\ that
 * end the line and skip N). Other formatting and character-set switches (\H\ \N\ \.in\ \C..\
 * \M..\) carry no text and are dropped.
 */
export function unescapeV2(raw: string, d: Hl7Delimiters): string {
  const e = d.escape;
  if (!raw.includes(e)) return raw;
  let out = '';
  let at = 0;
  while (at < raw.length) {
    const start = raw.indexOf(e, at);
    const end = start < 0 ? -1 : raw.indexOf(e, start + 1);
    if (start < 0 || end < 0) {
      out += raw.slice(at);
      break;
    }
    out += raw.slice(at, start);
    const sequence = raw.slice(start + 1, end);
    out += textOfEscape(sequence, d) ?? '';
    at = end + 1;
  }
  return out;
}

/** What one escape sequence (without its escape characters) stands for, if any text. */
function textOfEscape(sequence: string, d: Hl7Delimiters): string | undefined {
  switch (sequence) {
    case 'F':
      return d.field;
    case 'S':
      return d.component;
    case 'T':
      return d.subcomponent;
    case 'R':
      return d.repetition;
    case 'E':
      return d.escape;
    case 'P':
      return d.encoding[4];
    case '.br':
      return '\n';
  }
  const skip = /^\.sp\s*(\d{0,2})$/.exec(sequence);
  if (skip) return '\n'.repeat(Math.max(1, Number(skip[1] || 1)));
  if (/^X([0-9A-Fa-f]{2})+$/.test(sequence)) {
    // The bytes of the message's character set: a UTF-8 message's `\XC3A9\` is é, one byte
    // (`\XE9\`, not UTF-8 alone) is Latin-1's.
    const bytes = Buffer.from(sequence.slice(1), 'hex');
    return strictUtf8(bytes) ?? bytes.toString('latin1');
  }
  return undefined;
}
