/** MLLP framing (HL7 v2 Minimal Lower Layer Protocol): <VT> payload <FS><CR>. */
export const START_BLOCK = 0x0b;
export const END_BLOCK = 0x1c;
export const CARRIAGE_RETURN = 0x0d;
const LINE_FEED = 0x0a;

export type MllpEvent =
  | { kind: 'frame'; payload: Buffer }
  /** A frame grew past the size cap; its bytes are dropped up to its end block. */
  | { kind: 'oversized' }
  /** A start block arrived inside a frame: the earlier frame had no end and is dropped. */
  | { kind: 'truncated' };

type State = 'between' | 'inFrame' | 'skipping' | 'afterEnd';

/** Reads of one frame kept as they came; past this many, the frame is gathered into one buffer. */
const FEW_READS = 16;

/**
 * Splits an MLLP byte stream into frames, whatever the reads look like: a frame split at any
 * byte, several frames in one read, bytes between frames (ignored), a missing CR after the end
 * block. Memory is bounded by `maxFrameBytes` per connection: a frame sent a byte at a time is
 * gathered into one growing buffer, as a buffer per read costs a hundred bytes or more of its
 * own (a 16 MiB frame in one-byte reads held 2.6 GB that way).
 */
export class MllpDecoder {
  private state: State = 'between';
  private parts: Buffer[] = [];
  /** The frame so far once it came in more than FEW_READS reads; its capacity doubles. */
  private gathered: Buffer | undefined;
  private size = 0;

  constructor(private readonly maxFrameBytes: number) {}

  push(chunk: Buffer): MllpEvent[] {
    const events: MllpEvent[] = [];
    let at = 0;
    while (at < chunk.length) {
      switch (this.state) {
        case 'afterEnd':
          // The CR that should follow an end block; a sender that leaves it out is tolerated.
          if (chunk[at] === CARRIAGE_RETURN) at++;
          this.state = 'between';
          break;
        case 'between': {
          const start = chunk.indexOf(START_BLOCK, at);
          if (start < 0) return events;
          at = start + 1;
          this.state = 'inFrame';
          break;
        }
        case 'inFrame':
          at = this.readFrame(chunk, at, events);
          break;
        case 'skipping': {
          const end = chunk.indexOf(END_BLOCK, at);
          if (end < 0) return events;
          at = end + 1;
          this.state = 'afterEnd';
          break;
        }
      }
    }
    return events;
  }

  /** Whether a frame has begun (its start block came) and not ended. */
  get inFrame(): boolean {
    return this.state === 'inFrame' || this.state === 'skipping';
  }

  /** Bytes held for an unfinished frame. */
  get pending(): number {
    return this.size;
  }

  /** Memory held for an unfinished frame: its bytes, or the capacity gathered for them. */
  get held(): number {
    return this.gathered?.length ?? this.size;
  }

  /** Buffers held for an unfinished frame: a few, however many reads brought it. */
  get buffers(): number {
    return this.parts.length + (this.gathered ? 1 : 0);
  }

  private readFrame(chunk: Buffer, at: number, events: MllpEvent[]): number {
    const end = frameEnd(chunk, at);
    const stop = end < 0 ? chunk.length : end;
    const restart = restartIn(chunk, at, stop);
    if (restart >= 0) {
      this.reset('between');
      events.push({ kind: 'truncated' });
      return restart;
    }
    if (this.size + (stop - at) > this.maxFrameBytes) {
      this.reset('skipping');
      events.push({ kind: 'oversized' });
      return at;
    }
    this.append(chunk.subarray(at, stop));
    if (end < 0) return chunk.length;
    const payload = this.gathered
      ? this.gathered.subarray(0, this.size)
      : Buffer.concat(this.parts, this.size);
    this.reset('afterEnd');
    events.push({ kind: 'frame', payload });
    return end + 1;
  }

  private append(bytes: Buffer): void {
    if (!this.gathered && this.parts.length < FEW_READS) {
      this.parts.push(bytes);
      this.size += bytes.length;
      return;
    }
    const needed = this.size + bytes.length;
    if (!this.gathered || needed > this.gathered.length) {
      const capacity = Math.max(needed, 2 * (this.gathered?.length ?? this.size), 64 * 1024);
      const grown = Buffer.allocUnsafe(Math.min(capacity, this.maxFrameBytes));
      if (this.gathered) this.gathered.copy(grown, 0, 0, this.size);
      else Buffer.concat(this.parts, this.size).copy(grown);
      this.gathered = grown;
      this.parts = [];
    }
    bytes.copy(this.gathered, this.size);
    this.size = needed;
  }

  private reset(state: State): void {
    this.parts = [];
    this.gathered = undefined;
    this.size = 0;
    this.state = state;
  }
}

/**
 * Where the frame read from `from` ends: its first end block followed by CR, LF, a start block
 * or nothing read yet (a sender leaving the CR out waits for its ACK). One followed by more of
 * the message, with another end block before any start block, is a stray 0x1C inside it: taken
 * as the end until 2026-12-07, it cut the message there, whose first part was stored and
 * answered AA and the rest dropped as bytes between frames. An end block that is the last byte
 * of a read still ends the frame: what the sender sends next is not known yet.
 */
function frameEnd(chunk: Buffer, from: number): number {
  let end = chunk.indexOf(END_BLOCK, from);
  // Found once: each end block is then looked at once, however many a hostile read holds.
  const start = chunk.indexOf(START_BLOCK, from);
  while (end >= 0) {
    const next = chunk[end + 1];
    if (next === undefined || next === CARRIAGE_RETURN || next === LINE_FEED) return end;
    if (next === START_BLOCK) return end;
    const later = chunk.indexOf(END_BLOCK, end + 1);
    if (later < 0 || (start >= 0 && start < later && beginsMessage(chunk, start))) return end;
    end = later;
  }
  return end;
}

/**
 * Where, from `at` to `stop`, a start block begins another frame (cutting this one short), or
 * -1: a start block followed by anything but the start of a message is a stray 0x0B inside it.
 * Taken as a new frame until 2026-12-07, it dropped the message up to it, and what followed
 * was refused as a message without MSH, an AR naming no message, for the sender to resend
 * forever.
 */
function restartIn(chunk: Buffer, at: number, stop: number): number {
  for (let start = chunk.indexOf(START_BLOCK, at); start >= 0 && start < stop;) {
    if (beginsMessage(chunk, start)) return start;
    start = chunk.indexOf(START_BLOCK, start + 1);
  }
  return -1;
}

const MESSAGE_STARTS = ['MSH', 'FHS', 'BHS', '\u00ef\u00bb\u00bf'].map((s) =>
  Buffer.from(s, 'latin1'),
);

/**
 * Whether the bytes after the start block at `start` (past any CR or LF) begin a message, a
 * batch or a byte-order mark, or could yet: the read ends before saying.
 */
function beginsMessage(chunk: Buffer, start: number): boolean {
  let at = start + 1;
  while (chunk[at] === CARRIAGE_RETURN || chunk[at] === LINE_FEED) at++;
  const next = chunk.subarray(at, at + 3);
  return MESSAGE_STARTS.some((begin) => begin.subarray(0, next.length).equals(next));
}

export function encodeFrame(payload: Buffer): Buffer {
  return Buffer.concat([Buffer.of(START_BLOCK), payload, Buffer.of(END_BLOCK, CARRIAGE_RETURN)]);
}
