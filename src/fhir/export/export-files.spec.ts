import { randomBytes, randomUUID } from 'node:crypto';
import { FieldCipher, PhiDecryptionError } from '../../crypto/field-cipher.js';
import { KeyRing, keyIdOf } from '../../crypto/key-ring.js';
import { decryptedLines, EncryptedNdjsonWriter, ExportStopped } from './export-files.js';
import type { ExportChunk, ExportRepository } from './export.repository.js';

/** The chunk calls of ExportRepository, over a list in memory. */
class ChunkStore {
  readonly chunks: (ExportChunk & { patients: readonly string[] })[] = [];
  running = true;

  appendChunk(
    _job: string,
    _file: string,
    chunk: ExportChunk,
    patients: readonly string[],
  ): Promise<boolean> {
    if (this.running) this.chunks.push({ ...chunk, lines: [...chunk.lines], patients });
    return Promise.resolve(this.running);
  }

  chunkAfter(_job: string, _file: string, after: number): Promise<ExportChunk | undefined> {
    return Promise.resolve(this.chunks.find((chunk) => chunk.firstLine > after));
  }

  asRepository(): ExportRepository {
    return this as unknown as ExportRepository;
  }
}

describe('Export files', () => {
  const material = randomBytes(32);
  const cipher = new FieldCipher(
    new KeyRing([{ id: keyIdOf(material), material }], keyIdOf(material), keyIdOf(material)),
  );
  const job = randomUUID();

  async function written(store: ChunkStore, count: number): Promise<void> {
    const writer = new EncryptedNdjsonWriter(
      store.asRepository(),
      cipher,
      job,
      'Patient.ndjson',
      'Patient',
    );
    for (let i = 1; i <= count; i++) {
      await writer.write({ resourceType: 'Patient', id: `p${i}` }, [`p${i}`]);
    }
    await writer.close();
  }

  async function read(store: ChunkStore, count: number): Promise<string[]> {
    const lines: string[] = [];
    for await (const line of decryptedLines(
      store.asRepository(),
      cipher,
      job,
      'Patient.ndjson',
      'Patient',
      count,
    )) {
      lines.push(line);
    }
    return lines;
  }

  it('stores a file in chunks of 500 encrypted lines and reads it back in order', async () => {
    const store = new ChunkStore();
    await written(store, 1234);
    expect(store.chunks.map((chunk) => [chunk.firstLine, chunk.lines.length])).toEqual([
      [1, 500],
      [501, 500],
      [1001, 234],
    ]);
    expect(store.chunks[2]!.patients).toHaveLength(234);
    for (const line of store.chunks[0]!.lines) expect(line).toMatch(/^cv1\.k[0-9a-f]{12}\./);
    const lines = await read(store, 1234);
    expect(lines).toHaveLength(1234);
    expect(lines[0]).toBe('{"resourceType":"Patient","id":"p1"}\n');
    expect(lines[1233]).toBe('{"resourceType":"Patient","id":"p1234"}\n');
  });

  it('refuses lines moved within the file, and a file with a chunk missing', async () => {
    const swapped = new ChunkStore();
    await written(swapped, 3);
    const lines = swapped.chunks[0]!.lines;
    [lines[0], lines[1]] = [lines[1]!, lines[0]!];
    await expect(read(swapped, 3)).rejects.toBeInstanceOf(PhiDecryptionError);

    const gap = new ChunkStore();
    await written(gap, 1001);
    gap.chunks.splice(1, 1);
    await expect(read(gap, 1001)).rejects.toThrow('misses lines after line 500');
  });

  it('refuses a file that ends before its last line (its job removed while it is sent)', async () => {
    const store = new ChunkStore();
    await written(store, 1001);
    store.chunks.splice(2);
    await expect(read(store, 1001)).rejects.toThrow('ends after line 1000 of 1001');
  });

  it('stops writing once the job no longer runs', async () => {
    const store = new ChunkStore();
    store.running = false;
    await expect(written(store, 10)).rejects.toBeInstanceOf(ExportStopped);
    expect(store.chunks).toHaveLength(0);
  });
});
