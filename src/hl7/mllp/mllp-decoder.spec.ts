import { encodeFrame, MllpDecoder, type MllpEvent } from './mllp-decoder.js';

const frames = (events: MllpEvent[]): string[] =>
  events.flatMap((event) => (event.kind === 'frame' ? [event.payload.toString('latin1')] : []));

function feed(decoder: MllpDecoder, stream: Buffer, chunkSize: number): MllpEvent[] {
  const events: MllpEvent[] = [];
  for (let at = 0; at < stream.length; at += chunkSize) {
    events.push(...decoder.push(stream.subarray(at, at + chunkSize)));
  }
  return events;
}

describe('MllpDecoder', () => {
  const a = 'MSH|^~\\&|A|B|C|D|20240101||ADT^A01|1|P|2.5\rPID|1||123\r';
  const b = 'MSH|^~\\&|A|B|C|D|20240101||ADT^A08|2|P|2.5\r';
  const stream = Buffer.concat([encodeFrame(Buffer.from(a)), encodeFrame(Buffer.from(b))]);

  it('gives the same frames whatever byte the reads split at', () => {
    for (let size = 1; size <= stream.length; size++) {
      expect(frames(feed(new MllpDecoder(1024), stream, size))).toEqual([a, b]);
    }
  });

  it('ignores bytes between frames and tolerates a missing CR after the end block', () => {
    const sloppy = Buffer.concat([
      Buffer.from('junk\r\n'),
      Buffer.from([0x0b]),
      Buffer.from(a),
      Buffer.from([0x1c]),
      Buffer.from([0x0b]),
      Buffer.from(b),
      Buffer.from([0x1c, 0x0d]),
      Buffer.from('\n\n'),
    ]);
    expect(frames(new MllpDecoder(1024).push(sloppy))).toEqual([a, b]);
  });

  it('keeps an end block the message goes on after as part of it, not its end', () => {
    // Taken as the end, a stray 0x1C cut the message there: its first part was stored and
    // answered AA, and the rest, up to the real end, dropped as bytes between frames.
    const stray = `MSH|^~\\&|A|B|C|D|20240101||ADT^A08|3|P|2.5\rZXX|a\x1cb\rPID|1||123\r`;
    const stream = Buffer.concat([
      encodeFrame(Buffer.from(stray, 'latin1')),
      encodeFrame(Buffer.from(b)),
    ]);
    expect(frames(new MllpDecoder(1024).push(stream))).toEqual([stray, b]);
    // Junk after an end block without its CR is still junk when a start block comes first.
    const junk = Buffer.concat([Buffer.from(`\x0b${a}\x1cjunk\x0b${b}\x1cmore\x1c\r`, 'latin1')]);
    expect(frames(new MllpDecoder(1024).push(junk))).toEqual([a, `${b}\x1cmore`]);
  });

  it('keeps a start block that no message follows as part of the frame', () => {
    // Taken as the start of a frame, a stray 0x0B dropped the message up to it, and what came
    // after it was refused as a message without MSH (an AR naming no message, so the sender
    // waited for an ACK to its own and resent it forever).
    const stray = `MSH|^~\\&|A|B|C|D|20240101||ADT^A08|3|P|2.5\rZXX|a\x0bb\rPID|1||123\r`;
    const stream = Buffer.from(`\x0b${stray}\x1c\r\x0b${b}\x1c\r`, 'latin1');
    const stray0b = stream.indexOf(0x0b, 1);
    for (let size = 1; size <= stream.length; size++) {
      // A read ending right at the 0x0B does not say what follows it: a new frame, as before.
      const unknown = (stray0b + 1) % size === 0;
      expect(frames(feed(new MllpDecoder(1024), stream, size))).toEqual(
        unknown ? ['b\rPID|1||123\r', b] : [stray, b],
      );
    }
  });

  it('reads a frame of end blocks alone in linear time', () => {
    const hostile = Buffer.concat([Buffer.of(0x0b), Buffer.alloc(1 << 20, 0x1c), Buffer.of(0x0d)]);
    const started = performance.now();
    expect(frames(new MllpDecoder(2 << 20).push(hostile))).toHaveLength(1);
    expect(performance.now() - started).toBeLessThan(1000);
  });

  it('drops an oversized frame up to its end, then carries on', () => {
    const decoder = new MllpDecoder(20);
    const big = encodeFrame(Buffer.alloc(100, 'x'));
    const small = encodeFrame(Buffer.from('MSH|ok'));
    const events = feed(decoder, Buffer.concat([big, small]), 7);
    expect(events.map((event) => event.kind)).toEqual(['oversized', 'frame']);
    expect(frames(events)).toEqual(['MSH|ok']);
    expect(decoder.pending).toBe(0);
  });

  it('holds no more than the cap for a frame that never ends', () => {
    const decoder = new MllpDecoder(1000);
    decoder.push(Buffer.from([0x0b]));
    const events: MllpEvent[] = [];
    for (let i = 0; i < 100; i++) events.push(...decoder.push(Buffer.alloc(100, 'x')));
    expect(events.map((event) => event.kind)).toEqual(['oversized']);
    expect(decoder.pending).toBe(0);
  });

  it('gathers a frame sent a byte at a time into one buffer, not one per read', () => {
    const decoder = new MllpDecoder(1024 * 1024);
    const text = `MSH|${'x'.repeat(100_000)}`;
    const events: MllpEvent[] = [];
    const framed = encodeFrame(Buffer.from(text));
    for (let i = 0; i < framed.length - 2; i++) {
      events.push(...decoder.push(framed.subarray(i, i + 1)));
    }
    expect(decoder.pending).toBe(text.length);
    expect(decoder.buffers).toBe(1);
    events.push(...decoder.push(framed.subarray(framed.length - 2)));
    expect(frames(events)).toEqual([text]);
    expect(decoder.buffers).toBe(0);
    // The next frame starts afresh.
    expect(frames(decoder.push(encodeFrame(Buffer.from(b))))).toEqual([b]);
  });

  it('says when a frame has begun and not ended, for the deadline of a frame', () => {
    const decoder = new MllpDecoder(20);
    expect(decoder.inFrame).toBe(false);
    decoder.push(Buffer.from('junk between frames'));
    expect(decoder.inFrame).toBe(false);
    decoder.push(Buffer.from([0x0b, 0x4d]));
    expect(decoder.inFrame).toBe(true);
    decoder.push(Buffer.from([0x1c]));
    expect(decoder.inFrame).toBe(false);
    decoder.push(Buffer.from([0x0d, 0x0b]));
    expect(decoder.inFrame).toBe(true);
    // A frame over the cap is still being sent until its end block.
    decoder.push(Buffer.alloc(30, 'x'));
    expect(decoder.inFrame).toBe(true);
    decoder.push(Buffer.from([0x1c, 0x0d]));
    expect(decoder.inFrame).toBe(false);
  });

  it('drops a frame cut short by the start of the next one', () => {
    const cut = Buffer.concat([
      Buffer.from([0x0b]),
      Buffer.from('MSH|cut'),
      encodeFrame(Buffer.from(b)),
    ]);
    const events = new MllpDecoder(1024).push(cut);
    expect(events.map((event) => event.kind)).toEqual(['truncated', 'frame']);
    expect(frames(events)).toEqual([b]);
  });
});
