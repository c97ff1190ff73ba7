import type { CipherContext, FieldCipher } from '../../crypto/field-cipher.js';
import type { ExportRepository } from './export.repository.js';

/** The manifest's error file (OperationOutcomes); every other file is `<type>.ndjson`. */
export const ERRORS_FILE = 'errors.ndjson';

/** The resource type a file holds, from its name (as the export names its files). */
export function typeOfExportFile(name: string): string {
  return name === ERRORS_FILE ? 'OperationOutcome' : name.replace(/\.ndjson$/, '');
}

/** Lines per stored chunk: one page of the export's reads, well under a megabyte or two. */
const CHUNK_LINES = 500;
/**
 * Characters of ciphertext per stored chunk, at most (or one line, when a line is longer): a
 * chunk is one string, in this process and in its row, so 500 lines of large resources (documents
 * in Binary) would outgrow what a string may hold (2^29 characters in V8), and the export fail.
 */
export const CHUNK_CHARACTERS = 4 * 1024 * 1024;

/**
 * An export's NDJSON file, stored in chunks and encrypted line by line with the PHI cipher.
 * Each line is bound to its job, type and line number (the cipher's context), so lines cannot
 * be moved between files or reordered without failing to decrypt.
 */
export class EncryptedNdjsonWriter {
  private lines = 0;
  private pending: string[] = [];
  private pendingCharacters = 0;
  private readonly patients = new Set<string>();

  constructor(
    private readonly store: ExportRepository,
    private readonly cipher: FieldCipher,
    private readonly jobId: string,
    readonly name: string,
    private readonly type: string,
  ) {}

  get count(): number {
    return this.lines;
  }

  /** Adds a line; `patients` are those whose data it holds, for the download's audit row. */
  async write(resource: object, patients: readonly string[] = []): Promise<void> {
    const line = this.cipher.encrypt(
      JSON.stringify(resource),
      contextOf(this.jobId, this.type, this.lines + 1),
    );
    if (this.pendingCharacters + line.length > CHUNK_CHARACTERS) await this.flush();
    this.lines++;
    this.pending.push(line);
    this.pendingCharacters += line.length;
    for (const patient of patients) this.patients.add(patient);
    if (this.pending.length >= CHUNK_LINES) await this.flush();
  }

  /** Stores what is buffered. */
  async close(): Promise<void> {
    await this.flush();
  }

  private async flush(): Promise<void> {
    if (this.pending.length === 0) return;
    const firstLine = this.lines - this.pending.length + 1;
    const stored = await this.store.appendChunk(
      this.jobId,
      this.name,
      { firstLine, lines: this.pending },
      [...this.patients],
    );
    if (!stored) throw new ExportStopped();
    this.pending = [];
    this.pendingCharacters = 0;
    this.patients.clear();
  }
}

/** The job stopped running (cancelled, or failed elsewhere) while its file was being written. */
export class ExportStopped extends Error {
  constructor() {
    super('The export job is no longer running');
  }
}

/**
 * The file's resources as plaintext NDJSON lines, decrypted as they are read, chunk by chunk.
 * It throws (the response is cut, not ended) when the file ends before its `count` lines: its
 * job was removed while it was sent (DELETE, retention), and a client would take a file that
 * ends cleanly for the whole file.
 */
export async function* decryptedLines(
  store: ExportRepository,
  cipher: FieldCipher,
  jobId: string,
  name: string,
  type: string,
  count: number,
): AsyncGenerator<string> {
  let last = 0;
  for (;;) {
    const chunk = await store.chunkAfter(jobId, name, last);
    if (!chunk) {
      if (last < count) {
        throw new Error(`Export file ${name} of job ${jobId} ends after line ${last} of ${count}`);
      }
      return;
    }
    if (chunk.firstLine !== last + 1) {
      throw new Error(`Export file ${name} of job ${jobId} misses lines after line ${last}`);
    }
    for (const line of chunk.lines) {
      last++;
      yield `${cipher.decrypt(line, contextOf(jobId, type, last))}\n`;
    }
  }
}

/**
 * Where line `line` of a file belongs: what binds it (AES-GCM's AAD) to its job, type and line.
 * Key rotation re-encrypts the lines under the same context (KeyRotationService).
 */
export function contextOf(jobId: string, type: string, line: number): CipherContext {
  return { table: 'export', column: type, row: [jobId, String(line)] };
}
