import { BackupError } from './backup-error.js';

/**
 * The plaintext of a backup, before gzip and age: a sequence of records, each a type byte, a
 * 32-bit big-endian length and the payload. A header first, then per table its start, the rows
 * as PostgreSQL COPY text in chunks, and its end with the row count; a trailer last, so that a
 * stream cut short is told from a complete one even before age's own check.
 */
export enum RecordType {
  Header = 1,
  TableStart = 2,
  Rows = 3,
  TableEnd = 4,
  Trailer = 5,
}

export const BACKUP_FORMAT = 'carevault-backup';
export const BACKUP_FORMAT_VERSION = 1;

/** What a backup holds, read before any row: restore checks it before it writes anything. */
export interface BackupHeader {
  format: typeof BACKUP_FORMAT;
  version: typeof BACKUP_FORMAT_VERSION;
  createdAt: string;
  software: string;
  postgres: string;
  /** Applied migrations, in order: a restore needs the same schema. */
  migrations: string[];
  /** PHI key ids the data may be encrypted under, and the blind-index root key id. */
  phiKeyIds: string[];
  blindIndexKeyId: string;
  /** The audit chain head in the backup's snapshot. */
  audit: { chainId: string; seq: number; hash: string };
  sequences: SequenceState[];
}

export interface SequenceState {
  name: string;
  lastValue: string;
  isCalled: boolean;
}

export interface TableStart {
  table: string;
  columns: string[];
}

export interface TableEnd {
  table: string;
  rows: number;
}

export interface Trailer {
  tables: TableEnd[];
  /**
   * The audit signing key's signature over the SHA-256 of every record before the trailer
   * (statement kind `backup`): who made the backup. The recipient key is public, so anyone
   * holding it can write a backup that decrypts; only the deployment's key can sign one.
   * Absent from backups made before CareVault signed them.
   */
  signature?: { keyId: string; digest: string; value: string };
}

/** The manifest written beside a backup: no PHI, readable without the backup identity. */
export interface BackupManifest {
  file: string;
  bytes: number;
  sha256: string;
  header: Omit<BackupHeader, 'sequences'>;
  tables: TableEnd[];
  /**
   * The id of the audit key that signed the backup (see keyIdOf): the public key a deployment
   * restoring it needs in AUDIT_TRUSTED_KEYS_FILE, told here so that the operator can set it
   * up first, where until 2026-12-07 a restore named it only when it refused at the end. A
   * name only: restore trusts the trailer's signature, checked against the trusted keys.
   */
  signedBy: string;
}

const PREFIX = 5;

export function record(type: RecordType, payload: Buffer | object): Buffer {
  const body = Buffer.isBuffer(payload) ? payload : Buffer.from(JSON.stringify(payload));
  return Buffer.concat([recordPrefix(type, body.length), body]);
}

/** A record's type and length, as written before its payload. */
export function recordPrefix(type: RecordType, length: number): Buffer {
  const prefix = Buffer.alloc(PREFIX);
  prefix.writeUInt8(type, 0);
  prefix.writeUInt32BE(length, 1);
  return prefix;
}

export interface BackupRecord {
  type: RecordType;
  payload: Buffer;
}

/** The records of a plaintext stream, whatever the sizes of the chunks it arrives in. */
export async function* readRecords(source: AsyncIterable<Buffer>): AsyncGenerator<BackupRecord> {
  let pending: Buffer = Buffer.alloc(0);
  for await (const chunk of source) {
    pending = pending.length === 0 ? chunk : Buffer.concat([pending, chunk]);
    let offset = 0;
    while (pending.length - offset >= PREFIX) {
      const type = pending.readUInt8(offset) as RecordType;
      const length = pending.readUInt32BE(offset + 1);
      if (!(type in RecordType)) {
        throw new BackupError('The backup is not a CareVault backup or is damaged');
      }
      if (pending.length - offset - PREFIX < length) {
        break;
      }
      yield { type, payload: pending.subarray(offset + PREFIX, offset + PREFIX + length) };
      offset += PREFIX + length;
    }
    pending = pending.subarray(offset);
  }
  if (pending.length > 0) {
    throw new BackupError('The backup ends in the middle of a record: it is truncated');
  }
}

export function parseJson<T>(payload: Buffer): T {
  return JSON.parse(payload.toString('utf8')) as T;
}
