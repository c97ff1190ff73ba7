import { Readable } from 'node:stream';
import { RecordType, parseJson, readRecords, record } from './backup-format.js';

async function collect(chunks: Buffer[]): Promise<{ type: RecordType; text: string }[]> {
  const out: { type: RecordType; text: string }[] = [];
  for await (const item of readRecords(Readable.from(chunks))) {
    out.push({ type: item.type, text: item.payload.toString() });
  }
  return out;
}

describe('backup records', () => {
  const stream = Buffer.concat([
    record(RecordType.Header, { format: 'carevault-backup' }),
    record(RecordType.TableStart, { table: 'resource', columns: ['id'] }),
    record(RecordType.Rows, Buffer.from('a\nb\n')),
    record(RecordType.Rows, Buffer.alloc(0)),
    record(RecordType.TableEnd, { table: 'resource', rows: 2 }),
    record(RecordType.Trailer, { tables: [] }),
  ]);

  it('reads the same records whatever the chunk sizes', async () => {
    const whole = await collect([stream]);
    expect(whole.map((item) => item.type)).toEqual([1, 2, 3, 3, 4, 5]);
    expect(parseJson(Buffer.from(whole[0]!.text))).toEqual({ format: 'carevault-backup' });
    for (const size of [1, 2, 3, 5, 7, 64]) {
      const chunks: Buffer[] = [];
      for (let offset = 0; offset < stream.length; offset += size) {
        chunks.push(stream.subarray(offset, offset + size));
      }
      expect(await collect(chunks)).toEqual(whole);
    }
  });

  it('rejects a stream cut inside a record and an unknown record type', async () => {
    await expect(collect([stream.subarray(0, stream.length - 3)])).rejects.toThrow(
      'The backup ends in the middle of a record: it is truncated',
    );
    await expect(collect([Buffer.from([9, 0, 0, 0, 0])])).rejects.toThrow(
      'is not a CareVault backup or is damaged',
    );
  });
});
