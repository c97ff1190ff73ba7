import { Injectable } from '@nestjs/common';
import { mkdir, open, readFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { AppConfig } from '../config/config.js';
import { entryHash } from './audit-record.js';
import { AuditSigner } from './audit-signer.js';
import { AuditRepository, type ChainHead, type Checkpoint } from './audit.repository.js';

const BATCH = 5000;

/** A signed statement about a row of a chain: a checkpoint or an archive boundary. */
interface Anchor {
  chainId: string;
  seq: number;
  hash: string;
  valid: () => boolean;
}

/**
 * Signing refused: the rows to sign do not continue what was signed before (another chain id,
 * rows that do not link to the last checkpoint, a chain shorter than it). Signing them would
 * vouch for a rewritten trail, so nothing is signed and the caller must raise an alert.
 */
export class AuditChainRefusedError extends Error {
  constructor(reason: string) {
    super(
      `Audit checkpoint refused, nothing signed: ${reason}. Run audit:verify; if this database ` +
        'was legitimately replaced by a new one (not a restore, which keeps the chain), move ' +
        'AUDIT_CHECKPOINT_FILE aside (keep it) and give this database a file of its own',
    );
    this.name = 'AuditChainRefusedError';
  }
}

/**
 * Signed checkpoints of the chain, kept twice: in the database and appended to
 * AUDIT_CHECKPOINT_FILE outside it (ship that file to write-once storage). A rewritten chain
 * no longer matches them, and a truncated one ends before the last of them.
 */
@Injectable()
export class AuditCheckpoints {
  constructor(
    private readonly repository: AuditRepository,
    private readonly signer: AuditSigner,
    private readonly config: AppConfig,
  ) {}

  /**
   * Signs the current chain head; nothing when the chain is empty or `unlessAt` is the head.
   * Throws AuditChainRefusedError when the head does not continue the last signed checkpoint.
   */
  async checkpointHead(unlessAt?: number): Promise<Checkpoint | undefined> {
    // Anchors before the head, so that a checkpoint another instance signs meanwhile names a
    // row at or before the head read next.
    const anchors = await this.anchors();
    const head = await this.repository.head();
    if (head.seq === 0 || head.seq === unlessAt) {
      return undefined;
    }
    await this.assertContinues(head, anchors);
    return this.sign(head);
  }

  /**
   * Signs the statement that row `seq` of the chain has hash `hash`, and stores it twice, once
   * the rows between it and the nearest signed statements of the chain are checked to link.
   */
  async checkpoint(target: ChainHead): Promise<Checkpoint> {
    await this.assertContinues(target, await this.anchors());
    return this.sign(target);
  }

  /**
   * What a rebuilt trail cannot pass: the checkpoint file (outside the database) holds one chain,
   * and the rows from the nearest signed checkpoint or archive boundary to `target` (and from
   * `target` to the next one) link by their hashes. Only those rows are read, so the periodic
   * checkpoint costs the rows written since the last one, not the whole chain.
   */
  private async assertContinues(target: ChainHead, anchors: Anchor[]): Promise<void> {
    const foreign = anchors.find((a) => a.chainId !== target.chainId && a.valid());
    if (foreign) {
      throw new AuditChainRefusedError(
        `a signed checkpoint names row ${foreign.seq} of chain ${foreign.chainId}, and this database's chain is ${target.chainId}: the chain id was changed, or the file belongs to another database`,
      );
    }
    const ours = anchors.filter((a) => a.chainId === target.chainId);
    const below = ours
      .filter((a) => a.seq <= target.seq)
      .sort((a, b) => b.seq - a.seq)
      .find((a) => a.valid());
    const above = ours
      .filter((a) => a.seq > target.seq)
      .sort((a, b) => a.seq - b.seq)
      .find((a) => a.valid());
    const problem =
      (below && (await this.linkProblem(below, target))) ??
      (above && (await this.linkProblem(target, above)));
    if (problem) {
      throw new AuditChainRefusedError(problem);
    }
  }

  /** Why rows `from.seq + 1 .. to.seq` do not lead from `from`'s hash to `to`'s, if they do not. */
  private async linkProblem(
    from: { seq: number; hash: string },
    to: { seq: number; hash: string },
  ): Promise<string | undefined> {
    let seq = from.seq;
    let hash = from.hash;
    while (seq < to.seq) {
      const rows = await this.repository.readAfter(seq, BATCH, to.seq);
      if (rows.length === 0) break;
      for (const row of rows) {
        if (seq === from.seq && row.chainSeq === seq + 1 && row.prevHash !== hash) {
          return `row ${seq} does not match the signed statement for that row: the chain was rewritten`;
        }
        if (row.chainSeq !== seq + 1 || row.prevHash !== hash || entryHash(row) !== row.hash) {
          return `row ${row.chainSeq} does not continue row ${seq} of the signed chain`;
        }
        seq = row.chainSeq;
        hash = row.hash;
      }
    }
    if (seq !== to.seq) {
      return `the chain ends at row ${seq}, but a signed checkpoint covers row ${to.seq}`;
    }
    return hash === to.hash
      ? undefined
      : `row ${seq} does not match the signed statement for that row: the chain was rewritten`;
  }

  /**
   * The trusted signed statements about the chain: checkpoints of the file and the database,
   * and archive boundaries. Signatures are checked lazily, only of those used.
   */
  private async anchors(): Promise<Anchor[]> {
    const checkpoints = [...(await this.fromFile()), ...(await this.repository.checkpoints())];
    const archives = await this.repository.archives();
    return [
      ...checkpoints
        .filter((c) => this.signer.isTrusted(c.keyId))
        .map((c) => ({
          chainId: c.chainId,
          seq: c.chainSeq,
          hash: c.hash,
          valid: () => this.verify(c),
        })),
      ...archives
        .filter((a) => this.signer.isTrusted(a.keyId))
        .map((a) => ({
          chainId: a.chainId,
          seq: a.throughSeq,
          hash: a.hash,
          valid: () =>
            this.signer.verify(
              {
                kind: 'archive',
                chainId: a.chainId,
                seq: a.throughSeq,
                hash: a.hash,
                at: a.archivedAt,
              },
              a.keyId,
              a.signature,
            ),
        })),
    ];
  }

  private async sign({ chainId, seq, hash }: ChainHead): Promise<Checkpoint> {
    const createdAt = new Date();
    const checkpoint: Checkpoint = {
      chainId,
      chainSeq: seq,
      hash,
      createdAt,
      keyId: this.signer.keyId,
      signature: this.signer.sign({ kind: 'checkpoint', chainId, seq, hash, at: createdAt }),
    };
    await this.appendToFile(checkpoint);
    await this.repository.insertCheckpoint(checkpoint);
    return checkpoint;
  }

  verify(checkpoint: Checkpoint): boolean {
    return this.signer.verify(
      {
        kind: 'checkpoint',
        chainId: checkpoint.chainId,
        seq: checkpoint.chainSeq,
        hash: checkpoint.hash,
        at: checkpoint.createdAt,
      },
      checkpoint.keyId,
      checkpoint.signature,
    );
  }

  /** The checkpoints in the file; an absent file has none. */
  async fromFile(path = this.config.auditCheckpointFile): Promise<Checkpoint[]> {
    let text: string;
    try {
      text = await readFile(path, 'utf8');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw error;
    }
    return text
      .split('\n')
      .filter((line) => line.trim().length > 0)
      .map((line) => parseCheckpoint(JSON.parse(line) as Record<string, unknown>));
  }

  private async appendToFile(checkpoint: Checkpoint): Promise<void> {
    const path = this.config.auditCheckpointFile;
    await mkdir(dirname(path), { recursive: true });
    const file = await open(path, 'a', 0o600);
    try {
      await file.write(`${JSON.stringify(checkpoint)}\n`);
      await file.sync();
    } finally {
      await file.close();
    }
  }
}

export function parseCheckpoint(raw: Record<string, unknown>): Checkpoint {
  return {
    chainId: String(raw['chainId']),
    chainSeq: Number(raw['chainSeq']),
    hash: String(raw['hash']),
    createdAt: new Date(String(raw['createdAt'])),
    keyId: String(raw['keyId']),
    signature: String(raw['signature']),
  };
}
