/** MLLP framing (HL7 v2 Minimal Lower Layer Protocol): <VT> payload <FS><CR>. */
export const START_BLOCK = 0x0b;
export const END_BLOCK = 0x1c;
export const CARRIAGE_RETURN = 0x0d;

export type MllpEvent =
  | { kind: 'frame'; payload: Buffer }
  /** A frame grew past the size cap; its bytes are dropped up to its end block. */
  | { kind: 'oversized' }
  /** A start block arrived inside a frame: the earlier frame had no end and is dropped. */
  | { kind: 'truncated' };

type State = 'between' | 'inFrame' | 'skipping' | 'afterEnd';

/**
 * Splits an MLLP byte stream into frames, whatever the reads look like: a frame split at any
 * byte, several frames in one read, bytes between frames (ignored), a missing CR after the end
 * block. Memory is bounded by `maxFrameBytes` per connection.
 */
export class MllpDecoder {
  private state: State = 'between';
  private parts: Buffer[] = [];
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

  /** Bytes held for an unfinished frame. */
  get pending(): number {
    return this.size;
  }

  private readFrame(chunk: Buffer, at: number, events: MllpEvent[]): number {
    const end = chunk.indexOf(END_BLOCK, at);
    const stop = end < 0 ? chunk.length : end;
    const restart = chunk.subarray(at, stop).indexOf(START_BLOCK);
    if (restart >= 0) {
      this.reset('between');
      events.push({ kind: 'truncated' });
      return at + restart;
    }
    if (this.size + (stop - at) > this.maxFrameBytes) {
      this.reset('skipping');
      events.push({ kind: 'oversized' });
      return at;
    }
    this.parts.push(chunk.subarray(at, stop));
    this.size += stop - at;
    if (end < 0) return chunk.length;
    const payload = Buffer.concat(this.parts, this.size);
    this.reset('afterEnd');
    events.push({ kind: 'frame', payload });
    return end + 1;
  }

  private reset(state: State): void {
    this.parts = [];
    this.size = 0;
    this.state = state;
  }
}

export function encodeFrame(payload: Buffer): Buffer {
  return Buffer.concat([Buffer.of(START_BLOCK), payload, Buffer.of(END_BLOCK, CARRIAGE_RETURN)]);
}
