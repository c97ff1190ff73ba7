import { Injectable } from '@nestjs/common';
import { Decrypter, Encrypter } from 'age-encryption';
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, rename, rm, writeFile } from 'node:fs/promises';
import { basename, dirname, resolve } from 'node:path';
import { Readable, Transform, type Writable } from 'node:stream';
import { finished, pipeline } from 'node:stream/promises';
import { CompressionStream, DecompressionStream, type ReadableStream } from 'node:stream/web';
import { once } from 'node:events';
import { AuditSigner, type SignedStatement } from '../audit/audit-signer.js';
import { AuditVerifier, type VerifyReport } from '../audit/audit-verifier.js';
import { SOFTWARE_VERSION } from '../common/software.js';
import { KeyRing } from '../crypto/key-ring.js';
import { BackupError } from './backup-error.js';
import {
  BACKUP_FORMAT,
  BACKUP_FORMAT_VERSION,
  RecordType,
  parseJson,
  readRecords,
  record,
  recordPrefix,
  type BackupHeader,
  type BackupManifest,
  type BackupRecord,
  type TableEnd,
  type TableStart,
  type Trailer,
} from './backup-format.js';
import { BackupKeys } from './backup-keys.js';
import {
  BackupRepository,
  SEEDED_TABLES,
  type BackupSession,
  type Hl7InFlight,
} from './backup.repository.js';
import { exists } from '../common/files.js';

/** COPY sends a message per row: rows are gathered into records of about this size. */
const RECORD_BYTES = 256 * 1024;

export type TableProgress = (table: string, rows: number) => void;

export interface RestoreResult {
  header: BackupHeader;
  tables: TableEnd[];
  /** Migrations applied after the restore, when the backup's schema was older. */
  upgrades: string[];
  /** The audit key id that signed the backup, or undefined for an unsigned one (--unsigned). */
  signedBy: string | undefined;
  /** HL7 messages the backup caught unfinished, which the operator has to see to. */
  hl7: Hl7InFlight;
}

export interface RestoredChain {
  report: VerifyReport;
  /** Signed checkpoints (in the checkpoint file) of rows after the backup: lost by the restore. */
  laterCheckpoints: number;
}

/**
 * Backups of the whole database as one consistent snapshot: every table's rows as COPY text,
 * gzip, then age encryption to the backup recipient (authenticated: a changed, reordered or
 * truncated file does not decrypt). PHI columns stay encrypted under the PHI keys inside, so a
 * backup is useless without both the backup identity and the PHI keys.
 */
@Injectable()
export class BackupService {
  constructor(
    private readonly repository: BackupRepository,
    private readonly keys: BackupKeys,
    private readonly ring: KeyRing,
    private readonly verifier: AuditVerifier,
    private readonly signer: AuditSigner,
  ) {}

  async backup(file: string, onTable: TableProgress = () => undefined): Promise<BackupManifest> {
    const path = resolve(file);
    if (await exists(path)) {
      throw new BackupError(`${path} exists: a backup never overwrites a file`);
    }
    const encrypter = new Encrypter();
    encrypter.addRecipient(await this.keys.recipient());
    // Named for this run alone: the partial file of a backup that was killed (or is still
    // running) neither makes this one fail on opening it nor is removed by this one's failure.
    const partial = `${path}.${process.pid}-${randomBytes(4).toString('hex')}.partial`;
    await mkdir(dirname(path), { recursive: true });
    try {
      const { header, tables, bytes, sha256 } = await this.repository.snapshot(async (session) => {
        const header = await this.header(session);
        const tables: TableEnd[] = [];
        const plaintext = Readable.toWeb(
          Readable.from(this.records(session, header, tables, onTable)),
        ).pipeThrough(new CompressionStream('gzip')) as ReadableStream<Uint8Array>;
        const encrypted = await encrypter.encrypt(plaintext);
        const digest = createHash('sha256');
        let bytes = 0;
        const measure = new Transform({
          transform(chunk: Buffer, _encoding, callback) {
            digest.update(chunk);
            bytes += chunk.length;
            callback(null, chunk);
          },
        });
        await pipeline(
          Readable.fromWeb(encrypted as ReadableStream<Uint8Array>),
          measure,
          createWriteStream(partial, { flags: 'wx', mode: 0o600 }),
        );
        return { header, tables, bytes, sha256: digest.digest('hex') };
      });
      await rename(partial, path);
      const manifest: BackupManifest = {
        file: basename(path),
        bytes,
        sha256,
        header: withoutSequences(header),
        tables,
        signedBy: this.signer.keyId,
      };
      await writeFile(manifestPath(path), JSON.stringify(manifest, null, 2) + '\n', {
        mode: 0o600,
      });
      return manifest;
    } catch (error) {
      await rm(partial, { force: true });
      throw error;
    }
  }

  /**
   * Restores a backup into an empty database (migrated here if it is not yet), in one
   * transaction, and checks every table's row count against the backup's before it commits.
   */
  async restore(
    file: string,
    onTable: TableProgress = () => undefined,
    options: { acceptUnsigned?: boolean } = {},
  ): Promise<RestoreResult> {
    const path = resolve(file);
    if (!(await exists(path))) {
      throw new BackupError(`${path} does not exist`);
    }
    const records = await this.decrypt(path);
    const first = await records.next();
    if (first.done || first.value.type !== RecordType.Header) {
      throw new BackupError(`${path} is not a CareVault backup`);
    }
    const header = parseJson<BackupHeader>(first.value.payload);
    if (header.format !== BACKUP_FORMAT || header.version !== BACKUP_FORMAT_VERSION) {
      throw new BackupError(`${path} is not a CareVault backup of format version 1`);
    }
    this.checkKeys(header);
    const known = this.repository.knownMigrations();
    const older = header.migrations;
    if (older.length > known.length || older.some((name, i) => known[i] !== name)) {
      throw new BackupError(
        `The backup's schema (${older.length} migrations, last ${older.at(-1)}) is not one of this ` +
          `CareVault's (${known.length}, last ${known.at(-1)}): it comes from a newer or another CareVault; ` +
          `restore it with CareVault ${header.software}`,
      );
    }
    // The rows go into the schema they were read from; the migrations after it then upgrade
    // them as they would have upgraded the old database. A database migrated further (as a
    // service start does) goes back first, which only an empty one may.
    await this.repository.restoring(async (session) =>
      assertEmpty(session, await session.tables()),
    );
    await this.repository.migrateTo(older.length);
    const restored = await this.repository.restoring(async (session) => {
      const targets = await session.tables();
      await assertEmpty(session, targets);
      await session.deferForeignKeys();
      // A backup's schema may be older than a seeded table: its migration comes after the copy.
      for (const { table } of targets.filter(({ table }) => SEEDED_TABLES.includes(table))) {
        await session.clearSeeded(table);
      }
      const { ended, signedBy } = await this.copyIn(
        session,
        targets,
        records,
        { payload: first.value.payload, parsed: header },
        options.acceptUnsigned ?? false,
        onTable,
      );
      for (const sequence of header.sequences) {
        await session.setSequence(sequence);
      }
      for (const table of ended) {
        const count = await session.count(table.table);
        if (count !== table.rows) {
          throw new BackupError(
            `${table.table} holds ${count} rows after the restore, the backup ${table.rows}: nothing was restored`,
          );
        }
      }
      return { ended, signedBy };
    });
    const upgrades = await this.repository.runMigrations();
    return {
      header,
      tables: restored.ended,
      upgrades,
      signedBy: restored.signedBy,
      hl7: await this.repository.hl7InFlight(),
    };
  }

  /**
   * Verifies the restored audit chain, and that it ends where the backup's did. Checkpoints
   * signed after the backup (in a checkpoint file kept beside the old database) describe rows
   * the restore did not bring back: they are counted, not held against the restored chain.
   */
  async verifyRestoredChain(header: BackupHeader): Promise<RestoredChain> {
    const source = await this.verifier.databaseSource();
    const covered = source.checkpoints.filter((c) => c.chainSeq <= header.audit.seq);
    const report = await this.verifier.verify({ ...source, checkpoints: covered });
    const head = source.head!;
    if (report.ok && (head.chainId !== header.audit.chainId || head.hash !== header.audit.hash)) {
      return {
        report: { ...report, ok: false, problem: "The restored chain head is not the backup's" },
        laterCheckpoints: 0,
      };
    }
    return { report, laterCheckpoints: source.checkpoints.length - covered.length };
  }

  private async header(session: BackupSession): Promise<BackupHeader> {
    const [head] = await session.query<{ chain_id: string; seq: string; hash: string }>(
      `SELECT chain_id, chain_seq AS seq, hash FROM audit_chain_head WHERE id = 1`,
    );
    return {
      format: BACKUP_FORMAT,
      version: BACKUP_FORMAT_VERSION,
      createdAt: new Date().toISOString(),
      software: SOFTWARE_VERSION,
      postgres: await session.serverVersion(),
      migrations: await session.migrations(),
      phiKeyIds: this.ring.ids,
      blindIndexKeyId: this.ring.blindIndexRootId,
      audit: { chainId: head!.chain_id, seq: Number(head!.seq), hash: head!.hash },
      sequences: await session.sequences(),
    };
  }

  private async *records(
    session: BackupSession,
    header: BackupHeader,
    ended: TableEnd[],
    onTable: TableProgress,
  ): AsyncGenerator<Buffer> {
    const digest = createHash('sha256');
    const signed = (bytes: Buffer): Buffer => {
      digest.update(bytes);
      return bytes;
    };
    yield signed(record(RecordType.Header, header));
    for (const table of await session.tables()) {
      yield signed(record(RecordType.TableStart, table));
      const copy = session.copyOut(table);
      let batch: Buffer[] = [];
      let size = 0;
      for await (const chunk of copy as AsyncIterable<Buffer>) {
        batch.push(chunk);
        size += chunk.length;
        if (size >= RECORD_BYTES) {
          yield signed(record(RecordType.Rows, Buffer.concat(batch)));
          batch = [];
          size = 0;
        }
      }
      if (size > 0) {
        yield signed(record(RecordType.Rows, Buffer.concat(batch)));
      }
      const end: TableEnd = { table: table.table, rows: copy.rowCount };
      ended.push(end);
      onTable(end.table, end.rows);
      yield signed(record(RecordType.TableEnd, end));
    }
    const hash = digest.digest('hex');
    const signature = {
      keyId: this.signer.keyId,
      digest: hash,
      value: this.signer.sign(backupStatement(header, hash)),
    };
    yield record(RecordType.Trailer, { tables: ended, signature } satisfies Trailer);
  }

  private async decrypt(path: string): Promise<AsyncGenerator<BackupRecord>> {
    const decrypter = new Decrypter();
    decrypter.addIdentity(await this.keys.identity());
    let decrypted: globalThis.ReadableStream<Uint8Array>;
    try {
      decrypted = await decrypter.decrypt(
        Readable.toWeb(createReadStream(path)) as globalThis.ReadableStream<Uint8Array>,
      );
    } catch (error) {
      throw new BackupError(`${path} cannot be decrypted: ${(error as Error).message}`);
    }
    const plaintext = Readable.fromWeb(decrypted.pipeThrough(new DecompressionStream('gzip')));
    return checked(readRecords(plaintext as AsyncIterable<Buffer>), path);
  }

  /** Restoring data the PHI keys here cannot read would look like success and be useless. */
  private checkKeys(header: BackupHeader): void {
    const missing = header.phiKeyIds.filter((id) => !this.ring.has(id));
    if (missing.length > 0 || header.blindIndexKeyId !== this.ring.blindIndexRootId) {
      throw new BackupError(
        `The backup's PHI is encrypted under key(s) ${header.phiKeyIds.join(', ')} (blind indexes ${header.blindIndexKeyId}); ` +
          `this deployment holds ${this.ring.ids.join(', ')} (blind indexes ${this.ring.blindIndexRootId}): ` +
          'configure PHI_MASTER_KEY or PHI_KEY_FILE with the keys of the deployment that made the backup',
      );
    }
  }

  /**
   * Refuses, before anything commits, a backup not signed by a key this deployment trusts (its
   * own audit key, or one in AUDIT_TRUSTED_KEYS_FILE), or whose content is not what was signed.
   */
  private checkSignature(
    trailer: Trailer,
    header: BackupHeader,
    digest: string,
    acceptUnsigned: boolean,
  ): string | undefined {
    const signature = trailer.signature;
    if (!signature) {
      if (acceptUnsigned) return undefined;
      throw new BackupError(
        'The backup is not signed (made before CareVault signed backups, or not by CareVault): ' +
          'if you know where it comes from, restore it with --unsigned. Nothing was restored',
      );
    }
    if (!this.signer.isTrusted(signature.keyId)) {
      throw new BackupError(
        `The backup is signed by audit key ${signature.keyId}, which this deployment does not trust: ` +
          `AUDIT_TRUSTED_KEYS_FILE needs the audit public key ${signature.keyId} (the signedBy of ` +
          "the backup's manifest) of the deployment that made it, if the backup is its. Nothing was restored",
      );
    }
    const valid =
      signature.digest === digest &&
      this.signer.verify(backupStatement(header, digest), signature.keyId, signature.value);
    if (!valid) {
      throw new BackupError(
        "The backup's signature does not match its content: it was altered. Nothing was restored",
      );
    }
    return signature.keyId;
  }

  private async copyIn(
    session: BackupSession,
    targets: TableStart[],
    records: AsyncGenerator<BackupRecord>,
    header: { payload: Buffer; parsed: BackupHeader },
    acceptUnsigned: boolean,
    onTable: TableProgress,
  ): Promise<{ ended: TableEnd[]; signedBy: string | undefined }> {
    const ended: TableEnd[] = [];
    let table: TableStart | undefined;
    let stream: (Writable & { rowCount: number }) | undefined;
    // A table goes straight in when every table before it in foreign-key order (targets) is in,
    // as in every backup written in that order. One written before (tables by name) has tables
    // ahead of the tables they refer to (authorization_code of smart_app): they wait in a
    // temporary table, and move in as soon as the tables before them are in.
    const order = targets.map((target) => target.table);
    const loaded = new Set<string>();
    const waiting: TableStart[] = [];
    let staging = false;
    const ready = (name: string): boolean =>
      order.slice(0, order.indexOf(name)).every((before) => loaded.has(before));
    const moveIn = async (all: boolean): Promise<void> => {
      waiting.sort((a, b) => order.indexOf(a.table) - order.indexOf(b.table));
      while (waiting.length > 0 && (all || ready(waiting[0]!.table))) {
        const next = waiting.shift()!;
        await session.unstage(next);
        loaded.add(next.table);
      }
    };
    // The header was read before: the digest covers it as the backup wrote it.
    const digest = createHash('sha256').update(record(RecordType.Header, header.payload));
    try {
      for await (const { type, payload } of records) {
        if (type !== RecordType.Trailer) {
          digest.update(recordPrefix(type, payload.length)).update(payload);
        }
        if (type === RecordType.TableStart) {
          table = parseJson<TableStart>(payload);
          const target = targets.find((candidate) => candidate.table === table!.table);
          if (target?.columns.join() !== table.columns.join()) {
            throw new BackupError(`Table ${table.table} of the backup does not match this schema`);
          }
          staging = !ready(table.table);
          stream = staging ? await session.stage(table) : session.copyIn(table);
        } else if (type === RecordType.Rows && stream) {
          if (!stream.write(payload)) {
            await once(stream, 'drain');
          }
        } else if (type === RecordType.TableEnd && stream && table) {
          stream.end();
          await finished(stream);
          const end = parseJson<TableEnd>(payload);
          if (end.table !== table.table || stream.rowCount !== end.rows) {
            throw new BackupError(
              `${table.table}: the backup says ${end.rows} rows, ${stream.rowCount} were read`,
            );
          }
          ended.push(end);
          onTable(end.table, end.rows);
          stream = undefined;
          if (staging) {
            waiting.push(table);
          } else {
            loaded.add(table.table);
            await moveIn(false);
          }
        } else if (type === RecordType.Trailer) {
          const trailer = parseJson<Trailer>(payload);
          if (stream || trailer.tables.length !== ended.length) {
            throw new BackupError('The backup is damaged: its trailer does not match its tables');
          }
          const hash = digest.digest('hex');
          const signedBy = this.checkSignature(trailer, header.parsed, hash, acceptUnsigned);
          // Tables still waiting come after one the backup does not hold: their keys decide
          // whether they may go in without it.
          await moveIn(true);
          return { ended, signedBy };
        } else {
          throw new BackupError(`The backup is damaged: record ${type} out of place`);
        }
      }
    } catch (error) {
      // A COPY left open holds the connection: the ROLLBACK would wait behind it forever.
      // Destroying the stream sends CopyFail, which ends it.
      if (stream) {
        stream.destroy(error as Error);
        await finished(stream).catch(() => undefined);
      }
      throw error;
    }
    throw new BackupError('The backup is truncated: it has no trailer');
  }
}

/** What a backup's signature asserts: this content, taken at this audit chain head and time. */
function backupStatement(header: BackupHeader, digest: string): SignedStatement {
  return {
    kind: 'backup',
    chainId: header.audit.chainId,
    seq: header.audit.seq,
    hash: digest,
    at: new Date(header.createdAt),
  };
}

function withoutSequences(header: BackupHeader): BackupManifest['header'] {
  const described: Partial<BackupHeader> = { ...header };
  delete described.sequences;
  return described as BackupManifest['header'];
}

const EMPTY_ONLY =
  'restore only into an empty database, one no service has run on (drop it and create it again)';

export function manifestPath(backup: string): string {
  return `${backup}.manifest.json`;
}

/**
 * Refuses a database that holds anything: a restore never merges into live data, and never
 * removes rows, not even the audit rows a service started on the new database wrote.
 */
async function assertEmpty(session: BackupSession, tables: TableStart[]): Promise<void> {
  for (const { table } of tables) {
    if (SEEDED_TABLES.includes(table)) {
      continue;
    }
    const rows = await session.count(table);
    if (rows > 0) {
      throw new BackupError(
        `The database is not empty (${table} holds ${rows} rows): ${EMPTY_ONLY}`,
      );
    }
  }
  if (!tables.some(({ table }) => table === 'audit_chain_head')) {
    return; // Not migrated that far: there is no chain yet.
  }
  const [head] = await session.query<{ seq: string }>(
    `SELECT chain_seq AS seq FROM audit_chain_head WHERE id = 1`,
  );
  if (Number(head?.seq ?? 0) !== 0) {
    throw new BackupError(`The database is not empty (its audit chain has rows): ${EMPTY_ONLY}`);
  }
}

/** age reports a damaged or truncated file as a stream error: said here in the operator's terms. */
async function* checked(
  records: AsyncGenerator<BackupRecord>,
  path: string,
): AsyncGenerator<BackupRecord> {
  try {
    yield* records;
  } catch (error) {
    if (error instanceof BackupError) {
      throw error;
    }
    throw new BackupError(
      `${path} is damaged or was altered (${(error as Error).message}): nothing was restored`,
    );
  }
}
