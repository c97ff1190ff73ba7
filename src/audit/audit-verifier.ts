import { Injectable } from '@nestjs/common';
import { GENESIS_HASH, entryHash, type ChainedAuditEntry } from './audit-record.js';
import { AuditCheckpoints } from './audit-checkpoints.js';
import { AuditSigner } from './audit-signer.js';
import { AuditRepository, type ArchiveBoundary, type Checkpoint } from './audit.repository.js';

const BATCH = 5000;

export interface VerifyReport {
  ok: boolean;
  rows: number;
  firstSeq: number;
  lastSeq: number;
  checkpoints: number;
  /** The first problem found, naming the row (or checkpoint) where the chain breaks. */
  problem?: string;
  warnings: string[];
}

export interface ChainSource {
  /** Where the walk starts: the row before the first one, and its hash. */
  start: { seq: number; hash: string };
  batches: AsyncIterable<ChainedAuditEntry[]>;
  total: number;
  checkpoints: Checkpoint[];
  /** The committed chain head, when verifying the live database. */
  head?: { chainId: string; seq: number; hash: string };
  /** The chain is a range (an export): checkpoints after its end are not a truncation. */
  partial?: boolean;
  /** Archive boundaries whose signature does not verify. */
  unsignedArchives?: ArchiveBoundary[];
  /** What the walk cannot decide but an auditor should know. */
  warnings?: string[];
  /**
   * Trusted checkpoints of the checkpoint file that name another chain id. The file belongs to
   * one chain: a valid one means this chain's id was changed, or the file is another database's.
   */
  foreign?: Checkpoint[];
}

/**
 * Walks the chain and checks what makes it tamper-evident: contiguous sequence numbers, each
 * row's prev_hash and hash, signed checkpoints (database and file) matching the rows they name,
 * and a head no shorter than the last checkpoint. Stops at the first break and names it.
 */
@Injectable()
export class AuditVerifier {
  constructor(
    private readonly repository: AuditRepository,
    private readonly checkpoints: AuditCheckpoints,
    private readonly signer: AuditSigner,
  ) {}

  /**
   * The live database, with the checkpoints stored in it and in the checkpoint file. Read in
   * this order so that writers running meanwhile cannot look like tampering: checkpoints first
   * (each names a row at or before the head read next), then the head, then the rows up to it.
   */
  async databaseSource(): Promise<ChainSource> {
    const stored = await this.repository.checkpoints();
    const filed = await this.checkpoints.fromFile();
    const archives = await this.repository.archives();
    const head = await this.repository.head();
    const archive = archives.at(-1);
    const start = archive
      ? { seq: archive.throughSeq, hash: archive.hash }
      : { seq: 0, hash: GENESIS_HASH };
    const repository = this.repository;
    async function* batches(): AsyncIterable<ChainedAuditEntry[]> {
      let after = start.seq;
      while (after < head.seq) {
        const rows = await repository.readAfter(after, BATCH, head.seq);
        if (rows.length === 0) return;
        yield rows;
        after = rows.at(-1)!.chainSeq;
      }
    }
    // The checkpoint file belongs to one chain. The chain id is read from the database and is in
    // no row's hash: changed there, it set aside every checkpoint the file holds for the real
    // chain, and with them the proof of its rows. A trusted checkpoint of another chain in the
    // file fails the verification (until 2026-12-06 it was taken for another database's).
    const ours = filed.filter((checkpoint) => checkpoint.chainId === head.chainId);
    const others = filed.filter(
      (checkpoint) =>
        checkpoint.chainId !== head.chainId && this.signer.isTrusted(checkpoint.keyId),
    );
    return {
      warnings: [],
      foreign: others,
      start,
      batches: batches(),
      // A sound chain holds every row between its start and the head: no count(*) needed.
      total: head.seq - start.seq,
      checkpoints: mergeCheckpoints(stored, ours),
      head,
      unsignedArchives: archives.filter(
        (item) => item.chainId !== head.chainId || !this.archiveSigned(item),
      ),
    };
  }

  async verify(
    source: ChainSource,
    onProgress: (done: number) => void = () => undefined,
  ): Promise<VerifyReport> {
    const report: VerifyReport = {
      ok: false,
      rows: 0,
      firstSeq: source.start.seq + 1,
      lastSeq: source.start.seq,
      checkpoints: source.checkpoints.length,
      warnings: [...(source.warnings ?? [])],
    };
    const fail = (problem: string): VerifyReport => ({ ...report, problem });
    const forged = source.unsignedArchives?.[0];
    if (forged) {
      return fail(`Archive boundary at row ${forged.throughSeq} has no valid signature`);
    }
    // A checkpoint signed by a key we do not trust proves nothing either way (an instance with
    // its own key, or an intruder's): it is set aside with a warning. One that claims a trusted
    // key but does not verify is forged.
    const unknown = source.checkpoints.filter((c) => !this.signer.isTrusted(c.keyId));
    if (unknown.length > 0) {
      const keys = [...new Set(unknown.map((c) => c.keyId))].join(', ');
      report.warnings.push(
        `${unknown.length} checkpoint(s) signed by keys not trusted here (${keys}) were not used; add their public keys to AUDIT_TRUSTED_KEYS_FILE`,
      );
    }
    const trusted = source.checkpoints.filter((c) => this.signer.isTrusted(c.keyId));
    report.checkpoints = trusted.length;
    for (const checkpoint of trusted) {
      if (
        !this.checkpoints.verify(checkpoint) ||
        (source.head && checkpoint.chainId !== source.head.chainId)
      ) {
        return fail(
          `Checkpoint at row ${checkpoint.chainSeq} (${checkpoint.createdAt.toISOString()}) has no valid signature`,
        );
      }
    }
    const expected = new Map<number, string>();
    for (const checkpoint of trusted) {
      const other = expected.get(checkpoint.chainSeq);
      if (other !== undefined && other !== checkpoint.hash) {
        return fail(`Two signed checkpoints disagree about row ${checkpoint.chainSeq}`);
      }
      expected.set(checkpoint.chainSeq, checkpoint.hash);
    }
    // The chain id is not in any row's hash: changed in the database, it set aside every
    // checkpoint the file holds for this chain, and a tail removed after them went unnoticed.
    const foreign = new Map<string, Checkpoint>();
    for (const checkpoint of source.foreign ?? []) {
      if (this.checkpoints.verify(checkpoint)) {
        foreign.set(`${checkpoint.chainSeq}|${checkpoint.hash}`, checkpoint);
      }
    }
    let seq = source.start.seq;
    let hash = source.start.hash;
    for await (const batch of source.batches) {
      for (const row of batch) {
        const where = `Row ${row.chainSeq} (id ${row.id}, recorded ${row.recordedAt.toISOString()})`;
        if (row.chainSeq !== seq + 1) {
          return fail(
            row.chainSeq > seq + 1
              ? `Row ${seq + 1} is missing: the chain jumps from row ${seq} to row ${row.chainSeq}`
              : `${where} is out of order after row ${seq}`,
          );
        }
        if (row.prevHash !== hash) {
          return fail(`${where} does not link to row ${seq}: its prev_hash is not that row's hash`);
        }
        if (entryHash(row) !== row.hash) {
          return fail(`${where} was altered: its hash does not match its content`);
        }
        const ours = foreign.get(`${row.chainSeq}|${row.hash}`);
        if (ours) {
          return fail(
            `${where} is named by a signed checkpoint of chain ${ours.chainId}: the chain id was changed (to ${source.head?.chainId ?? 'another'}), which sets aside that chain's checkpoints`,
          );
        }
        const signed = expected.get(row.chainSeq);
        if (signed !== undefined && signed !== row.hash) {
          return fail(
            `${where} does not match the signed checkpoint for that row: the chain was rewritten`,
          );
        }
        seq = row.chainSeq;
        hash = row.hash;
        report.rows += 1;
      }
      report.lastSeq = seq;
      onProgress(report.rows);
    }
    report.lastSeq = seq;
    const latest = Math.max(0, ...expected.keys());
    if (!source.partial && latest > seq) {
      return fail(
        `The chain ends at row ${seq}, but a signed checkpoint covers row ${latest}: rows after ${seq} were removed`,
      );
    }
    if (source.head && (source.head.seq !== seq || (seq > 0 && source.head.hash !== hash))) {
      return fail(
        `The chain head says row ${source.head.seq}, but the last row is ${seq}: rows were removed or the head was altered`,
      );
    }
    const other = [...foreign.values()][0];
    if (other) {
      return fail(foreignProblem(other, source.head?.chainId));
    }
    if (expected.size === 0) {
      report.warnings.push(
        'No signed checkpoint yet: a rewritten or shortened chain could not be told from this one',
      );
    } else if (latest < seq) {
      report.warnings.push(
        `Rows after ${latest} (the last checkpoint) are covered by the hash chain only until the next checkpoint`,
      );
    }
    return { ...report, ok: true };
  }

  private archiveSigned(archive: ArchiveBoundary): boolean {
    return this.signer.verify(
      {
        kind: 'archive',
        chainId: archive.chainId,
        seq: archive.throughSeq,
        hash: archive.hash,
        at: archive.archivedAt,
      },
      archive.keyId,
      archive.signature,
    );
  }
}

/** What an operator reads when the checkpoint file holds another chain's checkpoints. */
export function foreignProblem(checkpoint: Checkpoint, chainId = 'another'): string {
  return (
    `The checkpoint file holds a signed checkpoint of chain ${checkpoint.chainId} (row ${checkpoint.chainSeq}), ` +
    `and this database's chain is ${chainId}: the chain id was changed, which sets aside the file's ` +
    'proof of the rows, or the file belongs to another database. A restore keeps the chain id; if ' +
    'this database was legitimately replaced by a new one, move AUDIT_CHECKPOINT_FILE aside (keep ' +
    'it as evidence) and give this database a file of its own'
  );
}

/** Database and file checkpoints together; one missing from either place still counts. */
function mergeCheckpoints(stored: Checkpoint[], filed: Checkpoint[]): Checkpoint[] {
  const all = new Map<string, Checkpoint>();
  for (const checkpoint of [...stored, ...filed]) {
    all.set(
      `${checkpoint.chainSeq}|${checkpoint.createdAt.toISOString()}|${checkpoint.signature}`,
      checkpoint,
    );
  }
  return [...all.values()].sort((a, b) => a.chainSeq - b.chainSeq);
}
