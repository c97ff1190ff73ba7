import { batchAck, splitMessages } from './batch.js';

describe('splitMessages', () => {
  const a = 'MSH|^~\\&|A|B|C|D|1||ADT^A08|1|P|2.5\rPID|1||1';
  const b = 'MSH|^~\\&|A|B|C|D|1||ADT^A08|2|P|2.5\rPID|1||2';

  it('leaves a single message as it is', () => {
    const single = Buffer.from(`${a}\r`);
    expect(splitMessages(single)).toEqual({ messages: [single], batch: false });
  });

  it('splits a batch into its messages, without the envelope, bytes kept', () => {
    const latin1 = Buffer.from(`${b}^Müller`, 'latin1');
    const batch = Buffer.concat([
      Buffer.from('FHS|^~\\&|A\nBHS|^~\\&|A\n'),
      Buffer.from(`${a}\n`),
      latin1,
      Buffer.from('\nBTS|2\nFTS|1\n'),
    ]);
    const { messages, batch: isBatch } = splitMessages(batch);
    expect(isBatch).toBe(true);
    expect(messages.map((message) => message.toString('latin1'))).toEqual([a, `${b}^Müller`]);
    expect(messages[1]!.equals(latin1)).toBe(true);
  });

  it('splits a file of several messages without a batch header', () => {
    expect(splitMessages(Buffer.from(`${a}\r\n${b}\r\n`)).messages).toHaveLength(2);
  });

  it('splits files joined with their byte-order marks, each message without its mark', () => {
    // Joined as they were (Windows tools write a BOM), the second MSH hid behind its BOM and
    // was taken as a segment of the first message: one ACK for two, the second never applied.
    const bom = Buffer.of(0xef, 0xbb, 0xbf);
    const joined = Buffer.concat([bom, Buffer.from(`${a}\r`), bom, Buffer.from(`${b}\r`)]);
    const { messages, batch } = splitMessages(joined);
    expect(batch).toBe(true);
    expect(messages.map((message) => message.toString('latin1'))).toEqual([a, b]);
  });
});

describe('batchAck', () => {
  it('wraps the ACKs in BHS and BTS with their count', () => {
    const ack = batchAck(['MSH|x\rMSA|AA|1\r', 'MSH|y\rMSA|AE|2\r']).split('\r');
    expect(ack[0]).toMatch(/^BHS\|\^~\\&\|CAREVAULT/);
    expect(ack.slice(1, 5)).toEqual(['MSH|x', 'MSA|AA|1', 'MSH|y', 'MSA|AE|2']);
    expect(ack[5]).toBe('BTS|2');
  });

  it("answers the batch's header: sender and receiver swapped, its control id referred to", () => {
    const received = splitMessages(
      Buffer.from(
        'FHS|^~\\&|LAB|LABF|CV|CVF|20250101||||FILE7\rBHS|^~\\&|LAB|LABF|CV|CVF|20250101||||BATCH1\r' +
          'MSH|^~\\&|LAB|LABF|CV|CVF|20250101||ADT^A08|1|P|2.5\rBTS|1\rFTS|1\r',
      ),
    );
    const ack = batchAck(['MSH|x\rMSA|AA|1\r'], received.envelope).split('\r');
    const fields = (line: string) => line.split('|');
    expect(fields(ack[0]!).slice(0, 6)).toEqual(['FHS', '^~\\&', 'CV', 'CVF', 'LAB', 'LABF']);
    expect(fields(ack[0]!)[11]).toBe('FILE7');
    expect(fields(ack[1]!).slice(0, 6)).toEqual(['BHS', '^~\\&', 'CV', 'CVF', 'LAB', 'LABF']);
    expect(fields(ack[1]!)[10]).toMatch(/^CV[0-9a-f]{18}$/);
    expect(fields(ack[1]!)[11]).toBe('BATCH1');
    expect(ack.slice(2)).toEqual(['MSH|x', 'MSA|AA|1', 'BTS|1', 'FTS|1', '']);
  });

  it('answers each batch of a file with its own BHS and BTS, and FTS-1 counts them', () => {
    // Answered as one batch, the second BHS's id (B2) was in no answer, and BTS-1 counted both.
    const m = (id: string) => `MSH|^~\\&|LAB|LABF|CV|CVF|1||ADT^A08|${id}|P|2.5\rPID|1||${id}`;
    const received = splitMessages(
      Buffer.from(
        [
          'FHS|^~\\&|LAB|LABF|CV|CVF|1||||F1',
          'BHS|^~\\&|LAB|LABF|CV|CVF|1||||B1',
          m('1'),
          'BTS|1',
          'BHS|^~\\&|LAB|LABF|CV|CVF|1||||B2',
          m('2'),
          m('3'),
          'BTS|2',
          'FTS|2',
        ].join('\r'),
      ),
    );
    expect(received.messages).toHaveLength(3);
    const acks = ['1', '2', '3'].map((id) => `MSH|a${id}\rMSA|AA|${id}\r`);
    const answer = batchAck(acks, received.envelope).split('\r');
    const shape = answer.map((line) => (/^[BF]HS/.test(line) ? line.split('|')[11] : line));
    expect(shape).toEqual([
      'F1',
      'B1',
      'MSH|a1',
      'MSA|AA|1',
      'BTS|1',
      'B2',
      'MSH|a2',
      'MSA|AA|2',
      'MSH|a3',
      'MSA|AA|3',
      'BTS|2',
      'FTS|2',
      '',
    ]);
  });

  it("writes every header of the answer with the file's field separator when no BHS came", () => {
    const received = splitMessages(
      Buffer.from('FHS#^~\\&#LAB#LABF#CV#CVF\rMSH#^~\\&#LAB#LABF#CV#CVF#1##ADT^A08#1#P#2.5\rFTS#1'),
    );
    const ack = batchAck(['MSH#x\rMSA#AA#1\r'], received.envelope).split('\r');
    expect(ack.map((line) => line.slice(0, 4))).toEqual([
      'FHS#',
      'BHS#',
      'MSH#',
      'MSA#',
      'BTS#',
      'FTS#',
      '',
    ]);
  });
});
