import { generateKeyPairSync, randomUUID, sign } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { chain, contentHash, GENESIS_HASH, type AuditEntry } from '../../src/audit/audit-record.js';
import { AuditCheckpoints } from '../../src/audit/audit-checkpoints.js';
import { AuditExport } from '../../src/audit/audit-export.js';
import { keyIdOf, statementBytes } from '../../src/audit/audit-signer.js';
import { AuditTrail } from '../../src/audit/audit-trail.js';
import { cliAuditEntry } from '../../src/audit/cli-audit.js';
import { AuditVerifier } from '../../src/audit/audit-verifier.js';
import { AuditRepository } from '../../src/audit/audit.repository.js';
import { auditRowValues, INSERT_AUDIT_ROW } from '../support/audit-rows.js';
import { withEnv } from '../support/env.js';
import { http } from '../support/http.js';
import { startCliHost } from '../support/cli.js';
import { BUILT, childEnv, runNode } from '../support/process.js';
import { createScratchDatabase, type ScratchDatabase } from '../support/scratch-database.js';
import { createTestApp, type TestApp } from '../support/test-app.js';

/**
 * Tampering as a database superuser would: triggers disabled, rows edited, removed, reordered,
 * or the whole chain rewritten with recomputed hashes. Each must be caught and the row named.
 */
describe('audit chain: append-only, tamper evidence, verification, export and archive', () => {
  let scratch: ScratchDatabase;
  let dataDir: string;
  let restoreEnv: () => void;
  let testApp: TestApp;
  let client: pg.Client;
  let verifier: AuditVerifier;

  async function verify(): Promise<string | undefined> {
    const report = await verifier.verify(await verifier.databaseSource());
    return report.ok ? undefined : report.problem;
  }

  /** Runs a tampering step with triggers off, checks what verification says, then restores. */
  async function tampered(sql: string[], params: unknown[][] = []): Promise<string | undefined> {
    await client.query('BEGIN');
    await client.query('CREATE TEMP TABLE saved_events AS SELECT * FROM audit_event');
    await client.query('CREATE TEMP TABLE saved_head AS SELECT * FROM audit_chain_head');
    await client.query('CREATE TEMP TABLE saved_checkpoints AS SELECT * FROM audit_checkpoint');
    await client.query('COMMIT');
    await client.query('ALTER TABLE audit_event DISABLE TRIGGER USER');
    await client.query('ALTER TABLE audit_checkpoint DISABLE TRIGGER USER');
    try {
      for (const [i, statement] of sql.entries()) await client.query(statement, params[i] ?? []);
      return await verify();
    } finally {
      await client.query('DELETE FROM audit_event');
      await client.query('INSERT INTO audit_event SELECT * FROM saved_events');
      await client.query('DELETE FROM audit_checkpoint');
      await client.query('INSERT INTO audit_checkpoint SELECT * FROM saved_checkpoints');
      await client.query(
        'UPDATE audit_chain_head h SET chain_id = s.chain_id, chain_seq = s.chain_seq, hash = s.hash FROM saved_head s',
      );
      await client.query('DROP TABLE saved_events, saved_head, saved_checkpoints');
      await client.query('ALTER TABLE audit_event ENABLE TRIGGER USER');
      await client.query('ALTER TABLE audit_checkpoint ENABLE TRIGGER USER');
    }
  }

  beforeAll(async () => {
    scratch = await createScratchDatabase();
    dataDir = await mkdtemp(join(tmpdir(), 'carevault-audit-'));
    restoreEnv = withEnv({ DATABASE_URL: scratch.url, DATA_DIR: dataDir });
    testApp = await createTestApp();
    verifier = testApp.app.get(AuditVerifier);
    client = new pg.Client({ connectionString: scratch.url });
    await client.connect();
    // Three rows from long ago open the chain: the archive test removes them.
    const trail = testApp.app.get(AuditTrail);
    for (let i = 0; i < 3; i++) {
      await trail.record({
        ...cliAuditEntry('test'),
        recordedAt: new Date('2015-01-01T00:00:00Z'),
      });
    }
    for (let i = 0; i < 12; i++) {
      await http('GET', `${testApp.url}/fhir/Patient/p${i}`);
    }
    await testApp.app.get(AuditCheckpoints).checkpointHead();
    await http('GET', `${testApp.url}/fhir/Patient/after-checkpoint`);
  });

  afterAll(async () => {
    await client?.end();
    await testApp?.close();
    restoreEnv?.();
    await scratch?.drop();
    await rm(dataDir, { recursive: true, force: true });
  });

  it('verifies the untouched chain', async () => {
    expect(await verify()).toBeUndefined();
    const { rows } = await client.query('SELECT count(*)::int AS n FROM audit_event');
    expect(rows[0].n).toBe(16);
  });

  it('rejects UPDATE, DELETE and TRUNCATE in PostgreSQL', async () => {
    await expect(client.query(`UPDATE audit_event SET action = 'x'`)).rejects.toThrow(
      /append-only/,
    );
    await expect(client.query('DELETE FROM audit_event WHERE chain_seq = 1')).rejects.toThrow(
      /append-only/,
    );
    await expect(client.query('TRUNCATE audit_event')).rejects.toThrow(/append-only/);
    await expect(client.query('DELETE FROM audit_checkpoint')).rejects.toThrow(/append-only/);
  });

  it('with the README role set-up, the service role can append but not change, remove or archive', async () => {
    const readme = await readFile(new URL('../../README.md', import.meta.url), 'utf8');
    const block = /### Separate database roles[\s\S]*?```sql\n([\s\S]*?)```/.exec(readme)![1]!;
    const suffix = randomUUID().slice(0, 8).replace(/-/g, '');
    const owner = `cv_owner_${suffix}`;
    const appRole = `cv_app_${suffix}`;
    const statements = block
      .split('\n')
      .map((line) => line.replace(/--.*$/, '').trim())
      .filter((line) => line.length > 0)
      .map((line) =>
        line.replaceAll('carevault_owner', owner).replaceAll('carevault_app', appRole),
      );
    expect(statements.length).toBeGreaterThanOrEqual(6);
    try {
      for (const statement of statements) await client.query(statement);
      await client.query(`SET ROLE ${appRole}`);
      const entry = cliAuditEntry('role-check');
      await client.query('SELECT audit_append($1::jsonb)', [
        JSON.stringify([
          {
            ...Object.fromEntries(
              Object.entries(entry).map(([key, value]) => [
                key.replace(/[A-Z]/g, (letter) => `_${letter.toLowerCase()}`),
                value,
              ]),
            ),
            content_hash: contentHash(entry),
          },
        ]),
      ]);
      for (const refused of [
        `UPDATE audit_event SET action = 'x' WHERE chain_seq = 1`,
        'DELETE FROM audit_event WHERE chain_seq = 1',
        'TRUNCATE audit_event',
        'DELETE FROM audit_checkpoint',
        `INSERT INTO audit_archive VALUES (gen_random_uuid(), 1, repeat('0', 64), now(), 'k', 's')`,
        'ALTER TABLE audit_event DISABLE TRIGGER USER',
      ]) {
        await expect(client.query(refused)).rejects.toThrow(/permission denied|must be owner/);
      }
    } finally {
      await client.query('RESET ROLE');
      for (const role of [appRole, owner]) {
        await client.query(`DROP OWNED BY ${role}`).catch(() => undefined);
        await client.query(`DROP ROLE IF EXISTS ${role}`);
      }
    }
    expect(await verify()).toBeUndefined();
  });

  it('detects an edited row and names it', async () => {
    expect(
      await tampered([`UPDATE audit_event SET status_code = 200 WHERE chain_seq = 5`]),
    ).toMatch(/^Row 5 \(id [0-9a-f-]{36}, recorded .*\) was altered/);
  });

  it('detects a deleted row', async () => {
    expect(await tampered(['DELETE FROM audit_event WHERE chain_seq = 7'])).toMatch(
      /^Row 7 is missing/,
    );
  });

  it('detects reordered rows', async () => {
    expect(
      await tampered([
        'UPDATE audit_event SET chain_seq = -3 WHERE chain_seq = 3',
        'UPDATE audit_event SET chain_seq = 3 WHERE chain_seq = 4',
        'UPDATE audit_event SET chain_seq = 4 WHERE chain_seq = -3',
      ]),
    ).toMatch(/^Row 3 .* does not link to row 2/);
  });

  it('detects a truncated tail, even with the head row rewound', async () => {
    expect(
      await tampered([
        'DELETE FROM audit_event WHERE chain_seq > 10',
        `UPDATE audit_chain_head SET chain_seq = 10, hash = (SELECT hash FROM audit_event WHERE chain_seq = 10)`,
      ]),
    ).toMatch(/^The chain ends at row 10, but a signed checkpoint covers row 15/);
  });

  it('detects a head row whose hash is not the last row’s, the row count left as it was', async () => {
    // The next row appended links to the head's hash: a head edited this way would hide
    // which row the chain really ended at.
    expect(await tampered([`UPDATE audit_chain_head SET hash = repeat('f', 64)`])).toMatch(
      /^The chain head says row (\d+), but the last row is \1: .*the head was altered$/,
    );
  });

  it('fails when the chain id was changed, which would set aside the checkpoint file', async () => {
    const { rows } = await client.query('SELECT chain_id FROM audit_chain_head');
    const real = rows[0].chain_id as string;
    expect(await verify()).toBeUndefined();
    await client.query('UPDATE audit_chain_head SET chain_id = $1', [randomUUID()]);
    try {
      // Until 2026-12-06 a warning only, and only while the file held none of the new chain's.
      // The database's checkpoints name the real chain too, and are read first.
      expect(await verify()).toMatch(/^Checkpoint at row 15 .* has no valid signature/);
      await client.query('ALTER TABLE audit_checkpoint DISABLE TRIGGER USER');
      await client.query('CREATE TEMP TABLE kept_checkpoints AS SELECT * FROM audit_checkpoint');
      await client.query('DELETE FROM audit_checkpoint');
      try {
        expect(await verify()).toMatch(new RegExp(`signed checkpoint of chain ${real}`));
      } finally {
        await client.query('INSERT INTO audit_checkpoint SELECT * FROM kept_checkpoints');
        await client.query('DROP TABLE kept_checkpoints');
        await client.query('ALTER TABLE audit_checkpoint ENABLE TRIGGER USER');
      }
    } finally {
      await client.query('UPDATE audit_chain_head SET chain_id = $1', [real]);
    }
  });

  it('detects a truncated tail hidden behind a changed chain id and removed checkpoints', async () => {
    // The chain id is in no row's hash: changed, it set the checkpoint file aside, and with the
    // database's checkpoints gone a shortened chain verified, with a warning only. The file's
    // checkpoint still names row 15, whose hash no other chain can have.
    expect(
      await tampered([
        'DELETE FROM audit_event WHERE chain_seq > 15',
        `UPDATE audit_chain_head SET chain_id = gen_random_uuid(), chain_seq = 15,
           hash = (SELECT hash FROM audit_event WHERE chain_seq = 15)`,
        'DELETE FROM audit_checkpoint',
      ]),
    ).toMatch(
      /^Row 15 .* is named by a signed checkpoint of chain [0-9a-f-]{36}: the chain id was changed/,
    );
  });

  it('detects a chain rewritten with recomputed hashes (no signing key), from the file alone', async () => {
    const repository = testApp.app.get(AuditRepository);
    const rows = await repository.readAfter(0, 100);
    const edited: AuditEntry[] = rows.map(
      ({ chainSeq: _seq, prevHash: _prev, hash: _hash, ...entry }) => entry,
    );
    edited[2] = { ...edited[2]!, statusCode: 200, outcome: 'success' };
    const rewritten = chain({ seq: 0, hash: GENESIS_HASH }, edited);
    const statements = [
      'DELETE FROM audit_event',
      // The attacker also removes the checkpoints in the database; the file outside it remains.
      'DELETE FROM audit_checkpoint',
      ...rewritten.map(() => INSERT_AUDIT_ROW),
      `UPDATE audit_chain_head SET chain_seq = $1, hash = $2`,
    ];
    const params: unknown[][] = [
      [],
      [],
      ...rewritten.map((e) => auditRowValues(e)),
      [rewritten.at(-1)!.chainSeq, rewritten.at(-1)!.hash],
    ];
    const problem = await tampered(statements, params);
    expect(problem).toMatch(/^Row 15 .* does not match the signed checkpoint for that row/);
  });

  it('detects a forged checkpoint', async () => {
    const file = join(dataDir, 'audit-checkpoints.jsonl');
    const original = await readFile(file, 'utf8');
    const forged = { ...JSON.parse(original.trim().split('\n')[0]!), hash: 'f'.repeat(64) };
    await writeFile(file, `${original}${JSON.stringify(forged)}\n`);
    try {
      expect(await verify()).toMatch(/^Checkpoint at row 15 .* has no valid signature/);
    } finally {
      await writeFile(file, original);
    }
  });

  it('sets aside checkpoints signed by keys it does not trust, with a warning', async () => {
    const { privateKey, publicKey } = generateKeyPairSync('ed25519');
    const { rows } = await client.query('SELECT chain_id FROM audit_chain_head');
    const foreign = {
      kind: 'checkpoint' as const,
      chainId: rows[0].chain_id as string,
      seq: 2,
      hash: 'e'.repeat(64),
      at: new Date(),
    };
    await client.query('BEGIN');
    try {
      await client.query(
        `INSERT INTO audit_checkpoint (chain_id, chain_seq, hash, created_at, key_id, signature)
         VALUES ($1, $2, $3, $4, $5, $6)`,
        [
          foreign.chainId,
          foreign.seq,
          foreign.hash,
          foreign.at,
          keyIdOf(publicKey),
          sign(null, statementBytes(foreign), privateKey).toString('base64'),
        ],
      );
      // Seen through the app's connection only once committed: commit, check, then the
      // row stays (append-only), which the remaining tests tolerate as it is set aside.
      await client.query('COMMIT');
    } catch (error) {
      await client.query('ROLLBACK');
      throw error;
    }
    const report = await verifier.verify(await verifier.databaseSource());
    expect(report.ok).toBe(true);
    expect(report.warnings.join('\n')).toMatch(/1 checkpoint\(s\) signed by keys not trusted here/);
  });

  it('audit:verify exits 0 on a clean chain and 1 naming the first bad row', async () => {
    const env = childEnv({
      DATABASE_URL: scratch.url,
      DATA_DIR: dataDir,
      PHI_MASTER_KEY: process.env['PHI_MASTER_KEY']!,
      NODE_ENV: 'test',
    });
    const clean = await runNode(BUILT.cli, ['audit:verify'], env);
    expect(clean.stdout).toMatch(/^Audit chain verified: 1[3-9] rows/);
    expect(clean.code).toBe(0);
    // Walking the trail reads who touched which patient: the run is itself a row.
    const cliRows = async (): Promise<unknown[]> =>
      (
        await client.query(
          `SELECT actor_name, outcome, detail FROM audit_event
            WHERE source = 'cli' AND subtype = 'audit:verify' ORDER BY chain_seq`,
        )
      ).rows;
    expect(await cliRows()).toEqual([
      {
        actor_name: expect.stringMatching(/^os:/),
        outcome: 'success',
        detail: expect.stringMatching(/^database rows 1\.\.1[3-9]: verified$/),
      },
    ]);
    const original = (await client.query('SELECT resource_id FROM audit_event WHERE chain_seq = 5'))
      .rows[0].resource_id as string;
    await client.query('ALTER TABLE audit_event DISABLE TRIGGER USER');
    await client.query(`UPDATE audit_event SET resource_id = 'p99' WHERE chain_seq = 5`);
    try {
      const broken = await runNode(BUILT.cli, ['audit:verify'], env);
      expect(broken.code).toBe(1);
      expect(broken.stdout).toMatch(/^Audit chain BROKEN: Row 5 \(id .*\) was altered/);
      expect((await cliRows())[1]).toMatchObject({
        outcome: 'failure',
        detail: 'database: broken',
      });
    } finally {
      await client.query(`UPDATE audit_event SET resource_id = $1 WHERE chain_seq = 5`, [original]);
      await client.query('ALTER TABLE audit_event ENABLE TRIGGER USER');
    }
  });

  it('exports a range that verifies offline, and catches an edit in the export', async () => {
    const env = childEnv({
      DATABASE_URL: scratch.url,
      DATA_DIR: dataDir,
      PHI_MASTER_KEY: process.env['PHI_MASTER_KEY']!,
      NODE_ENV: 'test',
    });
    const out = join(dataDir, 'export.jsonl');
    // Through one built CLI process (see startCliHost): the test above runs the binary itself,
    // and each start of it costs seconds of CPU.
    const host = await startCliHost();
    try {
      // A time without a UTC offset would be the host's local time (a server kept on New York
      // time exported other rows than one on UTC), and 30 February March 2nd: refused.
      for (const loose of ['2026-11-01T10:00', '2026-02-30', '1']) {
        const refused = await host.run(['audit:export', '--out', out, '--from', loose], env);
        expect(refused.code).toBe(1);
        expect(refused.stderr).toContain('--from must be a date (2026-11-01, UTC) or an instant');
        await expect(readFile(out)).rejects.toThrow('ENOENT');
      }
      const exported = await host.run(
        ['audit:export', '--out', out, '--from', '2000-01-01T00:00:00-05:00', '--to', '9999-12-31'],
        env,
      );
      expect(exported.code).toBe(0);
      const checked = await host.run(['audit:verify', '--file', out], env);
      expect(checked.stdout).toMatch(/^Audit chain verified/);
      expect(checked.code).toBe(0);
      const rows = await client.query(
        `SELECT subtype, outcome, detail FROM audit_event WHERE source = 'cli'
        AND subtype IN ('audit:export', 'audit:verify') ORDER BY chain_seq DESC LIMIT 2`,
      );
      expect(rows.rows).toEqual([
        {
          subtype: 'audit:verify',
          outcome: 'success',
          detail: expect.stringMatching(/^export rows \d+\.\.\d+: verified$/),
        },
        { subtype: 'audit:export', outcome: 'success', detail: expect.stringMatching(/^rows /) },
      ]);
      const text = await readFile(out, 'utf8');
      // The last rows cut, the checkpoint lines that seal the export left in.
      const lines = text.trim().split('\n');
      const lastEvent = lines.findLastIndex((line) => line.includes('"type":"event"'));
      await writeFile(out, `${lines.filter((_, i) => i !== lastEvent).join('\n')}\n`);
      const cut = await host.run(['audit:verify', '--file', out], env);
      expect(cut.code).toBe(1);
      expect(cut.stdout).toMatch(/BROKEN: The export ends at row \d+ but is sealed at row \d+/);
      await writeFile(out, text.replace('"statusCode":401', '"statusCode":200'));
      const edited = await host.run(['audit:verify', '--file', out], env);
      expect(edited.code).toBe(1);
      expect(edited.stdout).toMatch(/BROKEN: Row \d+ .* was altered/);
    } finally {
      await host.close();
    }
  });

  it('refuses an export cut at its front, or whose start or range was edited in its header', async () => {
    const exports = testApp.app.get(AuditExport);
    const out = join(dataDir, 'front.jsonl');
    await exports.exportRange(out, new Date('2000-01-01T00:00:00Z'), undefined);
    const text = await readFile(out, 'utf8');
    expect((await exports.verifyFile(out)).ok).toBe(true);
    const lines = text.trim().split('\n');
    const header = JSON.parse(lines[0]!) as Record<string, unknown>;
    const events = lines.filter((line) => line.includes('"type":"event"'));
    const others = lines.slice(1).filter((line) => !line.includes('"type":"event"'));
    expect(events.length).toBeGreaterThan(6);
    const write = (head: Record<string, unknown>, rows: string[], rest = others) =>
      writeFile(out, `${[JSON.stringify(head), ...rows, ...rest].join('\n')}\n`);
    // The first five rows removed and the header's start moved up to the fifth.
    const fifth = JSON.parse(events[4]!) as { chainSeq: number; hash: string };
    await write({ ...header, start: { seq: fifth.chainSeq, hash: fifth.hash } }, events.slice(5));
    const cut = await exports.verifyFile(out);
    expect(cut.ok).toBe(false);
    expect(cut.problem).toMatch(/signed statement does not match its header/);
    // The same rows, the range in the header edited to say they are what was asked for.
    await write({ ...header, range: { from: '2026-01-01T00:00:00.000Z' } }, events);
    expect((await exports.verifyFile(out)).problem).toMatch(/does not match its header/);
    // Without the seal (as a file written before it existed) a cut front is refused too.
    const unsealed = others.filter((line) => !line.includes('"type":"seal"'));
    await write(
      { ...header, start: { seq: fifth.chainSeq, hash: fifth.hash } },
      events.slice(5),
      unsealed,
    );
    expect((await exports.verifyFile(out)).problem).toMatch(/no signed export statement/);
    // One that starts at the chain's first row may be a file from before seals, or a newer one
    // whose seal was removed: refused, unless the operator says it is an old one.
    await write(header, events, unsealed);
    expect((await exports.verifyFile(out)).problem).toMatch(/no signed export statement/);
    const legacy = await exports.verifyFile(out, undefined, { acceptUnsealed: true });
    expect(legacy.ok).toBe(true);
    expect(legacy.warnings.join('\n')).toMatch(/UNSEALED/);
    // Nothing but its header: nothing vouches for it, even when asked.
    await write(
      header,
      [],
      unsealed.filter((line) => !line.includes('"type":"checkpoint"')),
    );
    expect((await exports.verifyFile(out, undefined, { acceptUnsealed: true })).ok).toBe(false);
    await rm(out);
  });

  it('signs the chain head when the service shuts down', async () => {
    const second = await createTestApp();
    await http('GET', `${second.url}/fhir/Patient/before-shutdown`);
    await second.close();
    const { rows } = await client.query('SELECT chain_id, chain_seq, hash FROM audit_chain_head');
    const lines = (await readFile(join(dataDir, 'audit-checkpoints.jsonl'), 'utf8'))
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line) as { chainId: string; chainSeq: number; hash: string });
    expect(lines.at(-1)).toMatchObject({
      chainId: rows[0].chain_id,
      chainSeq: Number(rows[0].chain_seq),
      hash: rows[0].hash,
    });
    expect(await verify()).toBeUndefined();
  });

  it('archives only rows past retention, after exporting them, and still verifies', async () => {
    const archive = testApp.app.get(AuditExport);
    const out = join(dataDir, 'archive.jsonl');
    await expect(archive.archive(out, new Date())).rejects.toThrow(/Rows are kept 2190 days/);
    const result = await archive.archive(out, new Date('2016-01-01'));
    expect(result).toMatchObject({ removed: 3, firstSeq: 1, lastSeq: 3 });
    expect(await verify()).toBeUndefined();
    await http('GET', `${testApp.url}/fhir/Patient/after-archive`);
    expect(await verify()).toBeUndefined();
    expect((await archive.verifyFile(out)).ok).toBe(true);
    // The boundary lets exactly the archived rows go: row 4 is still protected.
    await expect(client.query('DELETE FROM audit_event WHERE chain_seq = 4')).rejects.toThrow(
      /append-only/,
    );
  });
});
