import { Injectable } from '@nestjs/common';
import { createReadStream } from 'node:fs';
import { open } from 'node:fs/promises';
import { createInterface } from 'node:readline';
import { AppConfig } from '../config/config.js';
import { GENESIS_HASH, type ChainedAuditEntry } from './audit-record.js';
import { AuditCheckpoints, parseCheckpoint } from './audit-checkpoints.js';
import { AuditSigner, type ExportStatement } from './audit-signer.js';
import { AuditVerifier, type ChainSource, type VerifyReport } from './audit-verifier.js';
import { AuditRepository, type Checkpoint } from './audit.repository.js';

const BATCH = 5000;
const FORMAT = 'carevault-audit-export';

/** What an export was asked for: a date range (audit:export) or a cut-off (audit:archive). */
export interface ExportRange {
  from?: string;
  to?: string;
  before?: string;
}

/** The seal's last line: the signed export statement, less what the header and rows give. */
interface Seal {
  lastSeq: number;
  lastHash: string;
  at: Date;
  keyId: string;
  signature: string;
}

export interface ExportSummary {
  rows: number;
  firstSeq: number;
  lastSeq: number;
}

/**
 * Exports a contiguous stretch of the chain as JSON lines that `audit:verify --file` checks
 * offline: a header with the hash the stretch links to, the rows, the checkpoints inside it,
 * and a fresh checkpoint sealing its last row. Archiving exports, seals, then removes.
 */
@Injectable()
export class AuditExport {
  constructor(
    private readonly repository: AuditRepository,
    private readonly checkpoints: AuditCheckpoints,
    private readonly verifier: AuditVerifier,
    private readonly signer: AuditSigner,
    private readonly config: AppConfig,
  ) {}

  /** Rows recorded from `from` (inclusive) to `to` (exclusive), by their place in the chain. */
  async exportRange(
    path: string,
    from: Date | undefined,
    to: Date | undefined,
  ): Promise<ExportSummary> {
    const bounds = await this.repository.bounds();
    const afterSeq = Math.max(
      Math.max(bounds.first - 1, 0),
      from ? await this.repository.lastSeqBefore(from) : 0,
    );
    const lastSeq = to ? await this.repository.lastSeqBefore(to) : bounds.last;
    return this.exportSeqs(path, afterSeq, lastSeq, {
      ...(from && { from: from.toISOString() }),
      ...(to && { to: to.toISOString() }),
    });
  }

  async exportSeqs(
    path: string,
    afterSeq: number,
    lastSeq: number,
    range: ExportRange,
  ): Promise<ExportSummary> {
    const { chainId } = await this.repository.head();
    const start = await this.hashOfRow(afterSeq);
    const file = await open(path, 'wx', 0o600);
    let rows = 0;
    let last = { seq: afterSeq, hash: start };
    try {
      await file.write(
        `${JSON.stringify({ type: FORMAT, version: 1, chainId, start: { seq: afterSeq, hash: start }, range })}\n`,
      );
      let after = afterSeq;
      while (after < lastSeq) {
        const batch = await this.repository.readAfter(after, BATCH, lastSeq);
        if (batch.length === 0) break;
        await file.write(
          batch.map((row) => `${JSON.stringify({ type: 'event', ...row })}\n`).join(''),
        );
        rows += batch.length;
        after = batch.at(-1)!.chainSeq;
        last = { seq: after, hash: batch.at(-1)!.hash };
      }
      const inside = (await this.repository.checkpoints()).filter(
        (checkpoint) => checkpoint.chainSeq > afterSeq && checkpoint.chainSeq <= last.seq,
      );
      if (rows > 0) {
        inside.push(await this.checkpoints.checkpoint({ chainId, ...last }));
      }
      await file.write(
        inside.map((c) => `${JSON.stringify({ type: 'checkpoint', ...c })}\n`).join(''),
      );
      const at = new Date();
      const statement: ExportStatement = {
        kind: 'export',
        chainId,
        afterSeq,
        startHash: start,
        lastSeq: last.seq,
        lastHash: last.hash,
        range: exportRangeText(range),
        at,
      };
      const seal = {
        type: 'seal',
        lastSeq: last.seq,
        lastHash: last.hash,
        at: at.toISOString(),
        keyId: this.signer.keyId,
        signature: this.signer.sign(statement),
      };
      await file.write(`${JSON.stringify(seal)}\n`);
      await file.sync();
    } finally {
      await file.close();
    }
    return { rows, firstSeq: afterSeq + 1, lastSeq: last.seq };
  }

  /** Verifies an export file with the configured audit signing key. */
  /**
   * `acceptUnsealed`: verify a file written before exports were sealed (2026-12-06), whose
   * start and range nothing vouches for. Only on the operator's word: removing the seal of a
   * newer file makes it look like one, and it then verifies cut back to a checkpoint.
   */
  async verifyFile(
    path: string,
    onProgress?: (done: number) => void,
    { acceptUnsealed = false }: { acceptUnsealed?: boolean } = {},
  ): Promise<VerifyReport> {
    const lines = createInterface({ input: createReadStream(path, 'utf8'), crlfDelay: Infinity });
    const events: ChainedAuditEntry[] = [];
    const checkpoints: Checkpoint[] = [];
    let start: { seq: number; hash: string } | undefined;
    let range: unknown;
    let seal: Seal | undefined;
    let chainId = '';
    for await (const line of lines) {
      if (line.trim() === '') continue;
      const record = JSON.parse(line) as Record<string, unknown>;
      if (record['type'] === FORMAT) {
        start = record['start'] as { seq: number; hash: string };
        chainId = String(record['chainId']);
        range = record['range'];
      } else if (record['type'] === 'event') {
        events.push({
          ...(record as unknown as ChainedAuditEntry),
          recordedAt: new Date(String(record['recordedAt'])),
        });
      } else if (record['type'] === 'checkpoint') {
        checkpoints.push(parseCheckpoint(record));
      } else if (record['type'] === 'seal') {
        seal = { ...(record as unknown as Seal), at: new Date(String(record['at'])) };
      }
    }
    if (!start) {
      throw new Error(`${path} is not a CareVault audit export (no header line)`);
    }
    const source: ChainSource = {
      start,
      batches: inBatches(events),
      total: events.length,
      // The signature covers the chain id: a checkpoint of another chain cannot vouch here.
      checkpoints: checkpoints.filter((checkpoint) => checkpoint.chainId === chainId),
      partial: true,
    };
    const report = await this.verifier.verify(source, onProgress);
    // An export is sealed by a trusted checkpoint of its chain at its last row: one past the
    // end means rows were cut from it (its checkpoint lines left in), one before it that rows
    // were added.
    const lastSigned = Math.max(
      0,
      ...source.checkpoints
        .filter((checkpoint) => this.signer.isTrusted(checkpoint.keyId))
        .map((checkpoint) => checkpoint.chainSeq),
    );
    if (report.ok && events.length > 0 && lastSigned !== report.lastSeq) {
      return {
        ...report,
        ok: false,
        problem:
          lastSigned > report.lastSeq
            ? `The export ends at row ${report.lastSeq} but is sealed at row ${lastSigned}: rows were cut`
            : `Rows after ${lastSigned} are not covered by a signed checkpoint: the export was extended or cut`,
      };
    }
    if (!report.ok) return report;
    // Before 2026-12-06 exports had no seal. One that starts at the chain's first row cannot
    // have lost rows at its front (row 1 links to the genesis hash): asked for, it verifies.
    if (
      acceptUnsealed &&
      !seal &&
      events.length > 0 &&
      start.seq === 0 &&
      start.hash === GENESIS_HASH
    ) {
      report.warnings.push(
        "UNSEALED: the export has no signed export statement (as before 2026-12-06); its end is sealed by a checkpoint and its start is the chain's first row, but the range it was asked for, and whether it was cut back to a checkpoint, is not vouched for",
      );
      return report;
    }
    const problem = this.sealProblem({
      chainId,
      start,
      range,
      seal,
      last: { seq: report.lastSeq, hash: events.at(-1)?.hash ?? start.hash },
    });
    return problem ? { ...report, ok: false, problem } : report;
  }

  /**
   * Why the export's signed statement does not vouch for what the file holds: its start, its
   * end and the range asked for. A checkpoint seals only the end, so without this a file whose
   * first rows were removed (and its header's start moved up to match) verified.
   */
  private sealProblem(file: {
    chainId: string;
    start: { seq: number; hash: string };
    range: unknown;
    seal: Seal | undefined;
    last: { seq: number; hash: string };
  }): string | undefined {
    const { seal, start, last } = file;
    if (!seal) {
      return (
        `The export has no signed export statement: nothing vouches for its start (row ${start.seq}) ` +
        'or its range, so rows may have been cut from its front (files written before 2026-12-06 ' +
        'have none; export the range again while its rows are in the database)'
      );
    }
    const range = parseExportRange(file.range);
    const signed =
      range !== undefined &&
      typeof seal.keyId === 'string' &&
      typeof seal.signature === 'string' &&
      !Number.isNaN(seal.at.getTime()) &&
      this.signer.verify(
        {
          kind: 'export',
          chainId: file.chainId,
          afterSeq: start.seq,
          startHash: start.hash,
          lastSeq: Number(seal.lastSeq),
          lastHash: String(seal.lastHash),
          range: exportRangeText(range),
          at: seal.at,
        },
        seal.keyId,
        seal.signature,
      );
    if (!signed) {
      return `The export's signed statement does not match its header (chain, start row ${start.seq}, range) or has no valid signature by a trusted key: the export was altered or cut`;
    }
    if (seal.lastSeq !== last.seq || seal.lastHash !== last.hash) {
      return `The export ends at row ${last.seq} but its signed statement says row ${seal.lastSeq}: the export was cut or extended`;
    }
    return undefined;
  }

  /**
   * Removes rows older than the retention period, after exporting them to `path`, verifying
   * them, and recording a signed archive boundary that later verification starts from.
   */
  async archive(path: string, before?: Date): Promise<ExportSummary & { removed: number }> {
    const limit = new Date(Date.now() - this.config.auditRetentionDays * 86_400_000);
    before ??= limit;
    if (before > limit) {
      throw new Error(
        `Rows are kept ${this.config.auditRetentionDays} days (AUDIT_RETENTION_DAYS): --before must be ${limit.toISOString()} or earlier`,
      );
    }
    const report = await this.verifier.verify(await this.verifier.databaseSource());
    if (!report.ok) {
      throw new Error(`The audit chain does not verify; nothing was archived. ${report.problem}`);
    }
    const bounds = await this.repository.bounds();
    // Only a stretch in which every row is past retention: the chain cannot have holes.
    const throughSeq = await this.repository.lastSeqWhollyBefore(before);
    if (throughSeq < bounds.first) {
      return { rows: 0, firstSeq: bounds.first, lastSeq: bounds.first - 1, removed: 0 };
    }
    const summary = await this.exportSeqs(path, bounds.first - 1, throughSeq, {
      before: before.toISOString(),
    });
    const hash = await this.hashOfRow(throughSeq);
    const archivedAt = new Date();
    const { chainId } = await this.repository.head();
    const removed = await this.repository.archiveThrough({
      chainId,
      throughSeq,
      hash,
      archivedAt,
      keyId: this.signer.keyId,
      signature: this.signer.sign({
        kind: 'archive',
        chainId,
        seq: throughSeq,
        hash,
        at: archivedAt,
      }),
    });
    return { ...summary, removed };
  }

  /** The hash of row `seq` (what row `seq + 1` links to), from the table or its archive boundary. */
  private async hashOfRow(seq: number): Promise<string> {
    if (seq === 0) return GENESIS_HASH;
    const [row] = await this.repository.readAfter(seq - 1, 1);
    if (row?.chainSeq === seq) return row.hash;
    const archive = (await this.repository.archives()).find((item) => item.throughSeq === seq);
    if (archive) return archive.hash;
    throw new Error(`Row ${seq} of the audit chain is not in the database`);
  }
}

/** The range as the export statement signs it: each key named, so none can stand for another. */
export function exportRangeText(range: ExportRange): string {
  return `from=${range.from ?? ''};to=${range.to ?? ''};before=${range.before ?? ''}`;
}

/** The header's range, or undefined when it is not one an export writes. */
function parseExportRange(value: unknown): ExportRange | undefined {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return undefined;
  const entries = Object.entries(value as Record<string, unknown>);
  const known = ['from', 'to', 'before'];
  const instant = (item: unknown): boolean =>
    typeof item === 'string' &&
    !Number.isNaN(Date.parse(item)) &&
    new Date(item).toISOString() === item;
  if (entries.some(([key, item]) => !known.includes(key) || !instant(item))) {
    return undefined;
  }
  return value;
}

/** The rows of an export in verification-sized batches. */
async function* inBatches(events: ChainedAuditEntry[]): AsyncIterable<ChainedAuditEntry[]> {
  for (let i = 0; i < events.length; i += BATCH) {
    yield await Promise.resolve(events.slice(i, i + BATCH));
  }
}
