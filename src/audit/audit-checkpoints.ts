import { Injectable } from '@nestjs/common';
import { mkdir, open, readFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { AppConfig } from '../config/config.js';
import { AuditSigner } from './audit-signer.js';
import { AuditRepository, type ChainHead, type Checkpoint } from './audit.repository.js';

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

  /** Signs the current chain head; nothing when the chain is empty or `unlessAt` is the head. */
  async checkpointHead(unlessAt?: number): Promise<Checkpoint | undefined> {
    const head = await this.repository.head();
    if (head.seq === 0 || head.seq === unlessAt) {
      return undefined;
    }
    return this.checkpoint(head);
  }

  /** Signs the statement that row `seq` of the chain has hash `hash`, and stores it twice. */
  async checkpoint({ chainId, seq, hash }: ChainHead): Promise<Checkpoint> {
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
