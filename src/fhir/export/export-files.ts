import { createReadStream, createWriteStream, type WriteStream } from 'node:fs';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import type { FieldCipher } from '../../crypto/field-cipher.js';

/**
 * An export's NDJSON file, encrypted at rest line by line with the PHI cipher. Each line is
 * bound to its job, type and line number (the cipher's context), so lines cannot be moved
 * between files or reordered without failing to decrypt.
 */
export class EncryptedNdjsonWriter {
  private lines = 0;
  private readonly stream: WriteStream;

  constructor(
    path: string,
    private readonly cipher: FieldCipher,
    private readonly jobId: string,
    private readonly type: string,
  ) {
    this.stream = createWriteStream(path, { mode: 0o600 });
  }

  get count(): number {
    return this.lines;
  }

  async write(resource: object): Promise<void> {
    this.lines++;
    const line = this.cipher.encrypt(
      JSON.stringify(resource),
      contextOf(this.jobId, this.type, this.lines),
    );
    if (!this.stream.write(`${line}\n`)) await once(this.stream, 'drain');
  }

  async close(): Promise<void> {
    this.stream.end();
    await once(this.stream, 'finish');
  }
}

/** The file's resources as plaintext NDJSON lines, decrypted as they are read. */
export async function* decryptedLines(
  path: string,
  cipher: FieldCipher,
  jobId: string,
  type: string,
): AsyncGenerator<string> {
  let number = 0;
  const lines = createInterface({ input: createReadStream(path, 'utf8'), crlfDelay: Infinity });
  for await (const line of lines) {
    if (line === '') continue;
    number++;
    yield `${cipher.decrypt(line, contextOf(jobId, type, number))}\n`;
  }
}

function contextOf(jobId: string, type: string, line: number) {
  return { table: 'export', column: type, row: [jobId, String(line)] };
}
