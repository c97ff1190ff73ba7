import { jest } from '@jest/globals';
import { randomUUID } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { chain, GENESIS_HASH, type AuditEntry } from '../../src/audit/audit-record.js';
import { AuditChainRefusedError, AuditCheckpoints } from '../../src/audit/audit-checkpoints.js';
import { AuditTrail } from '../../src/audit/audit-trail.js';
import { AuditVerifier } from '../../src/audit/audit-verifier.js';
import { AuditRepository } from '../../src/audit/audit.repository.js';
import { cliAuditEntry } from '../../src/audit/cli-audit.js';
import { auditRowValues, INSERT_AUDIT_ROW } from '../support/audit-rows.js';
import { withEnv } from '../support/env.js';
import { createScratchDatabase, type ScratchDatabase } from '../support/scratch-database.js';
import { createTestApp, type TestApp } from '../support/test-app.js';

/**
 * A DBA who rebuilds the whole trail (rows removed, every hash recomputed, a new chain id, the
 * database's checkpoints deleted) holds no signing key: the checkpoint file outside the
 * database still names the real chain, so verification fails and no new checkpoint is signed.
 */
describe('audit chain rebuilt under a new chain id', () => {
  let scratch: ScratchDatabase;
  let dataDir: string;
  let restoreEnv: () => void;
  let testApp: TestApp;
  let client: pg.Client;
  let verifier: AuditVerifier;
  let checkpoints: AuditCheckpoints;
  let repository: AuditRepository;
  let trail: AuditTrail;
  const file = (): string => join(dataDir, 'audit-checkpoints.jsonl');

  async function verify(): Promise<string | undefined> {
    const report = await verifier.verify(await verifier.databaseSource());
    return report.ok ? undefined : report.problem;
  }

  async function record(count: number, actorName = 'os:clerk'): Promise<void> {
    for (let i = 0; i < count; i++) {
      await trail.record({ ...cliAuditEntry('test'), actorName });
    }
  }

  /** As a DBA: rows rewritten from `entries` with recomputed hashes, triggers bypassed. */
  async function rewrite(entries: AuditEntry[], chainId?: string): Promise<void> {
    const rows = chain({ seq: 0, hash: GENESIS_HASH }, entries);
    await client.query('BEGIN');
    await client.query('SET LOCAL session_replication_role = replica');
    await client.query('DELETE FROM audit_event');
    await client.query('DELETE FROM audit_checkpoint');
    for (const e of rows) {
      await client.query(INSERT_AUDIT_ROW, auditRowValues(e));
    }
    await client.query(
      'UPDATE audit_chain_head SET chain_seq = $1, hash = $2, chain_id = coalesce($3, chain_id)',
      [rows.at(-1)!.chainSeq, rows.at(-1)!.hash, chainId ?? null],
    );
    await client.query('COMMIT');
  }

  async function entries(): Promise<AuditEntry[]> {
    return (await repository.readAfter(0, 1000)).map(
      ({ chainSeq: _seq, prevHash: _prev, hash: _hash, ...entry }) => entry,
    );
  }

  beforeAll(async () => {
    scratch = await createScratchDatabase();
    dataDir = await mkdtemp(join(tmpdir(), 'carevault-rebuild-'));
    restoreEnv = withEnv({ DATABASE_URL: scratch.url, DATA_DIR: dataDir });
    testApp = await createTestApp();
    verifier = testApp.app.get(AuditVerifier);
    checkpoints = testApp.app.get(AuditCheckpoints);
    repository = testApp.app.get(AuditRepository);
    trail = testApp.app.get(AuditTrail);
    client = new pg.Client({ connectionString: scratch.url });
    await client.connect();
    await record(4);
    await record(2, 'dr.snoop');
    await record(4);
    await checkpoints.checkpointHead();
  });

  afterAll(async () => {
    await client?.end();
    await testApp?.close();
    restoreEnv?.();
    await scratch?.drop();
    await rm(dataDir, { recursive: true, force: true });
  });

  it('signs the rows since the last checkpoint, reading only those', async () => {
    const last = (await repository.head()).seq;
    await record(3);
    const read = jest.spyOn(repository, 'readAfter');
    try {
      const made = await checkpoints.checkpointHead();
      expect(made?.chainSeq).toBe(last + 3);
      expect(read.mock.calls.map(([after]) => after)).toEqual([last]);
    } finally {
      read.mockRestore();
    }
    expect(await verify()).toBeUndefined();
  });

  it('refuses to sign a chain whose signed rows were rewritten, even with the same chain id', async () => {
    const signed = (await repository.head()).seq;
    await record(2);
    const original = await entries();
    const edited = original.map((entry, i) => (i === 2 ? { ...entry, outcome: 'failure' } : entry));
    const before = await readFile(file(), 'utf8');
    await rewrite(edited as AuditEntry[]);
    try {
      await expect(checkpoints.checkpointHead()).rejects.toThrow(
        new RegExp(`row ${signed} does not match the signed statement`),
      );
      expect(await readFile(file(), 'utf8')).toBe(before);
    } finally {
      await rewrite(original);
    }
  });

  it('fails verification and refuses to sign after the trail is rebuilt under a new chain id', async () => {
    const { chain_id: real } = (await client.query('SELECT chain_id FROM audit_chain_head'))
      .rows[0] as { chain_id: string };
    const kept = (await entries()).filter((entry) => entry.actorName !== 'dr.snoop');
    kept[0] = { ...kept[0]!, id: randomUUID() };
    const rebuilt = randomUUID();
    const fileBefore = await readFile(file(), 'utf8');
    await rewrite(kept, rebuilt);

    const problem = await verify();
    expect(problem).toContain(`The checkpoint file holds a signed checkpoint of chain ${real}`);
    expect(problem).toContain(`this database's chain is ${rebuilt}`);
    expect(problem).toContain('move AUDIT_CHECKPOINT_FILE aside');

    // What the scheduler does every AUDIT_CHECKPOINT_MINUTES: refused, nothing signed.
    const refused = checkpoints.checkpointHead();
    await expect(refused).rejects.toBeInstanceOf(AuditChainRefusedError);
    await expect(refused).rejects.toThrow(/chain id was changed/);
    expect(await readFile(file(), 'utf8')).toBe(fileBefore);
    const { rows } = await client.query('SELECT count(*)::int AS n FROM audit_checkpoint');
    expect(rows[0].n).toBe(0);
    expect(await verify()).toBe(problem);
  });
});
