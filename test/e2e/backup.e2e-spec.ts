import { Decrypter, Encrypter, generateX25519Identity, identityToRecipient } from 'age-encryption';
import { generateKeyPairSync, randomBytes, randomUUID } from 'node:crypto';
import { copyFile, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { gunzipSync, gzipSync } from 'node:zlib';
import pg from 'pg';
import { tokenFor } from '../support/auth.js';
import { withEnv } from '../support/env.js';
import { buildPatient } from '../support/factories.js';
import { authorizedHttp } from '../support/http.js';
import { startCliHost, type CliHost } from '../support/cli.js';
import { BUILT, runNode, serviceEnv, type Finished } from '../support/process.js';
import { createScratchDatabase, type ScratchDatabase } from '../support/scratch-database.js';
import {
  readRecords,
  record,
  RecordType,
  type BackupRecord,
} from '../../src/backup/backup-format.js';
import { keyIdOf } from '../../src/audit/audit-signer.js';
import { createDataSource } from '../../src/database/database-options.js';
import { MIGRATIONS } from '../../migrations/index.js';
import { createTestApp, type TestApp } from '../support/test-app.js';
import { createUser } from '../support/auth.js';
import { AuthorizationCodes } from '../../src/auth/apps/authorization-codes.js';
import { SmartAppsService } from '../../src/auth/apps/smart-apps.service.js';
import { BackendClientRepository } from '../../src/auth/backend-clients/backend-client.repository.js';
import { BackendClientsService } from '../../src/auth/backend-clients/backend-clients.service.js';

const SYNTHEA = fileURLToPath(new URL('../../../shared/fhir-samples/synthea/', import.meta.url));

interface Seeded {
  id: string;
  family: string;
  mrn: string;
}

describe('backup and restore (npm run cli -- backup / restore)', () => {
  const phiKey = randomBytes(32).toString('base64');
  let source: ScratchDatabase;
  let target: ScratchDatabase;
  let untouched: ScratchDatabase;
  let dir: string;
  let backupFile: string;
  const seeded: Seeded[] = [];

  const cliEnv = (database: ScratchDatabase, extra: Record<string, string>) =>
    serviceEnv(database.url, join(dir, 'data'), {
      PHI_MASTER_KEY: phiKey,
      LOG_LEVEL: 'warn',
      ...extra,
    });
  /** The built CLI in a process of its own: a backup, its refusal and a restore run it. */
  const binary = (database: ScratchDatabase, args: string[], extra: Record<string, string> = {}) =>
    runNode(BUILT.cli, args, cliEnv(database, extra), { timeoutMs: 120_000 });
  /** The other runs go through one built CLI process (see startCliHost): a start of the binary
   * costs seconds of CPU. */
  let host: CliHost;
  const cli = (database: ScratchDatabase, args: string[], extra: Record<string, string> = {}) =>
    host.run(args, cliEnv(database, extra));
  const count = async (database: ScratchDatabase, table: string): Promise<number> => {
    const client = new pg.Client({ connectionString: database.url });
    await client.connect();
    try {
      const { rows } = await client.query<{ n: string }>(`SELECT count(*) AS n FROM ${table}`);
      return Number(rows[0]!.n);
    } finally {
      await client.end();
    }
  };
  /** Rows in every table but those migrations fill (absent tables hold none). */
  const dataRows = async (database: ScratchDatabase): Promise<number> => {
    const client = new pg.Client({ connectionString: database.url });
    await client.connect();
    try {
      const { rows: tables } = await client.query<{ name: string }>(
        `SELECT tablename AS name FROM pg_tables
          WHERE schemaname = 'public' AND tablename NOT IN ('migrations', 'audit_chain_head')`,
      );
      let total = 0;
      for (const { name } of tables) {
        const { rows } = await client.query<{ n: string }>(`SELECT count(*) AS n FROM "${name}"`);
        total += Number(rows[0]!.n);
      }
      return total;
    } finally {
      await client.end();
    }
  };
  /** Runs the real service on `database` while `work` reads or writes through the API. */
  const withService = async (
    database: ScratchDatabase,
    work: (http: ReturnType<typeof authorizedHttp>, url: string, testApp: TestApp) => Promise<void>,
  ): Promise<void> => {
    const restoreEnv = withEnv({
      DATABASE_URL: database.url,
      PHI_MASTER_KEY: phiKey,
      DATA_DIR: join(dir, 'data'),
    });
    const testApp = await createTestApp();
    try {
      await work(authorizedHttp(await tokenFor(testApp, 'doctor')), testApp.url, testApp);
    } finally {
      await testApp.close();
      restoreEnv();
    }
  };
  const expectFailure = (run: Finished, message: RegExp): void => {
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(message);
  };

  beforeAll(async () => {
    host = await startCliHost();
    source = await createScratchDatabase();
    target = await createScratchDatabase(false);
    untouched = await createScratchDatabase(false);
    dir = await mkdtemp(join(tmpdir(), 'carevault-backup-'));
    backupFile = join(dir, 'carevault.backup');
    // A Synthea record too, so that the backup spans many encrypted chunks and a damaged one
    // is met only after some tables were already copied in.
    const synthea = join(dir, 'synthea');
    await mkdir(synthea);
    for (const file of [
      'hospitalInformation1559319163815.json',
      'practitionerInformation1559319163815.json',
      'Clemente_Kreiger_1484a42d-0eaf-4654-9cbf-6b050a5cd73b.json',
    ]) {
      await copyFile(join(SYNTHEA, file), join(synthea, file));
    }
    expect(await cli(source, ['import', synthea])).toMatchObject({ code: 0 });
    await withService(source, async (http, url) => {
      for (let i = 0; i < 3; i++) {
        const patient = buildPatient();
        const created = await http('POST', `${url}/fhir/Patient`, {
          body: patient,
          headers: { 'content-type': 'application/fhir+json' },
        });
        expect(created.status).toBe(201);
        const name = (patient['name'] as { family: string }[])[0]!;
        const mrn = (patient['identifier'] as { value: string }[])[1]!;
        seeded.push({ id: created.body.id, family: name.family, mrn: mrn.value });
      }
    });
  });

  afterAll(async () => {
    await host?.close();
    await Promise.all([source.drop(), target.drop(), untouched.drop()]);
    await rm(dir, { recursive: true, force: true });
  });

  it('writes an encrypted backup with a manifest of row counts and the audit chain head', async () => {
    const made = await binary(source, ['backup', backupFile]);
    expect(made).toMatchObject({ code: 0 });
    expect(made.stdout).toMatch(/Backup written: .* audit chain through row \d+/);

    const manifest = JSON.parse(await readFile(`${backupFile}.manifest.json`, 'utf8'));
    const rowsOf = (table: string): number =>
      manifest.tables.find((entry: { table: string }) => entry.table === table).rows;
    expect(rowsOf('resource')).toBe(await count(source, 'resource'));
    expect(rowsOf('audit_event')).toBe(manifest.header.audit.seq);
    expect(manifest.header.migrations).toHaveLength(await count(source, 'migrations'));
    expect(manifest.sha256).toMatch(/^[0-9a-f]{64}$/);
    // The audit key that signed it, which a deployment restoring it must trust.
    expect(manifest.signedBy).toMatch(/^[0-9a-f]{16}$/);

    const bytes = await readFile(backupFile);
    expect(bytes.subarray(0, 21).toString()).toBe('age-encryption.org/v1');
    expect(manifest.bytes).toBe(bytes.length);
    for (const patient of seeded) {
      expect(bytes.includes(patient.family)).toBe(false);
      expect(bytes.includes(patient.mrn)).toBe(false);
    }
    // The backup was audited in the source database, after the snapshot it holds.
    expect(await count(source, 'audit_event')).toBe(manifest.header.audit.seq + 1);

    const again = await binary(source, ['backup', backupFile]);
    expectFailure(again, /exists: a backup never overwrites a file/);
  });

  it('is not stopped by the partial file of a backup that was killed, and leaves it alone', async () => {
    // What a SIGKILLed or crashed backup to the same name leaves behind.
    const interrupted = join(dir, 'interrupted.backup');
    const leftover = `${interrupted}.partial`;
    await writeFile(leftover, 'half a backup');

    const made = await cli(source, ['backup', interrupted]);
    expect(made).toMatchObject({ code: 0 });
    expect((await readFile(interrupted)).subarray(0, 21).toString()).toBe('age-encryption.org/v1');
    expect(await readFile(leftover, 'utf8')).toBe('half a backup');
  });

  it('restores into an empty database, verifies it, and the same patients are found again', async () => {
    expect((await readFile(backupFile)).length).toBeGreaterThan(4 * 64 * 1024);
    const restored = await binary(target, ['restore', backupFile]);
    expect(restored).toMatchObject({ code: 0 });
    // Until 2026-12-06 its output began with an ERROR: the Subscriptions read at start, on a
    // database with no tables yet (caught, but logged by TypeORM first).
    expect(restored.stderr).not.toContain('ERROR');
    expect(restored.stdout).toMatch(/Restored \d+ tables, \d+ rows, .*every count matches/);
    expect(restored.stdout).toMatch(/Audit chain verified/);
    // A copy beside its source must not sign into the source's checkpoint file: said, with it.
    expect(restored.stderr).toMatch(
      /note: this database continues audit chain \S+, whose checkpoints go to \/\S+: a copy kept beside the database it came from needs its own AUDIT_CHECKPOINT_FILE/,
    );

    await withService(target, async (http, url) => {
      for (const patient of seeded) {
        const read = await http('GET', `${url}/fhir/Patient/${patient.id}`);
        expect(read.status).toBe(200);
        expect(read.body.name[0].family).toBe(patient.family);
        const found = await http(
          'GET',
          `${url}/fhir/Patient?identifier=${encodeURIComponent(`urn:oid:1.2.36.146.595.217.0.1|${patient.mrn}`)}`,
        );
        expect(
          found.body.entry.map((entry: { resource: { id: string } }) => entry.resource.id),
        ).toEqual([patient.id]);
        const byName = await http('GET', `${url}/fhir/Patient?family=${patient.family}`);
        expect(byName.body.total ?? byName.body.entry.length).toBe(1);
      }
      // New writes after a restore get fresh sequence numbers and extend the restored chain.
      const created = await http('POST', `${url}/fhir/Patient`, {
        body: buildPatient(),
        headers: { 'content-type': 'application/fhir+json' },
      });
      expect(created.status).toBe(201);
    });
    const verified = await cli(target, ['audit:verify']);
    expect(verified).toMatchObject({ code: 0 });
    expect(verified.stdout).toMatch(/Audit chain verified/);
  });

  it('refuses a database that holds data, an altered backup and the wrong identity, writing nothing', async () => {
    // The way out said too: a database a service started on holds its audit rows (a health
    // check is one), and is not emptied for a restore.
    expectFailure(
      await cli(target, ['restore', backupFile]),
      /The database is not empty \(\w+ holds \d+ rows\): restore only into an empty database, one no service has run on \(drop it and create it again\)/,
    );

    const altered = join(dir, 'altered.backup');
    const bytes = await readFile(backupFile);
    bytes[Math.floor(bytes.length * 0.9)]! ^= 0x01;
    await writeFile(altered, bytes);
    const damaged = await cli(untouched, ['restore', altered]);
    expectFailure(damaged, /is damaged or was altered .*: nothing was restored/);
    // Found only after tables were copied in: the transaction took them back.
    expect(damaged.stderr).toMatch(/resource: \d+ rows/);

    const truncated = join(dir, 'truncated.backup');
    await writeFile(truncated, (await readFile(backupFile)).subarray(0, bytes.length - 100));
    expectFailure(await cli(untouched, ['restore', truncated]), /damaged or was altered|truncated/);

    const otherIdentity = join(dir, 'other-identity.txt');
    await writeFile(otherIdentity, `${await generateX25519Identity()}\n`, { mode: 0o600 });
    expectFailure(
      await cli(untouched, ['restore', backupFile], { BACKUP_IDENTITY_FILE: otherIdentity }),
      /cannot be decrypted: no identity matched/,
    );

    expectFailure(
      await cli(untouched, ['restore', backupFile], {
        PHI_MASTER_KEY: randomBytes(32).toString('base64'),
      }),
      /encrypted under key\(s\) .* configure PHI_MASTER_KEY or PHI_KEY_FILE/,
    );
    expect(await dataRows(untouched)).toBe(0);
  });

  /** A copy of the backup whose records of one type have their JSON payload edited. */
  function rewritten(
    file: string,
    type: RecordType,
    edit: (payload: Record<string, unknown>) => Record<string, unknown>,
  ): Promise<string> {
    return rewrittenRecords(file, (records) =>
      records.map((item) =>
        item.type === type
          ? {
              ...item,
              payload: Buffer.from(JSON.stringify(edit(JSON.parse(item.payload.toString())))),
            }
          : item,
      ),
    );
  }

  /** A copy of the backup with its records changed by `change`, encrypted again. */
  async function rewrittenRecords(
    file: string,
    change: (records: BackupRecord[]) => BackupRecord[],
  ): Promise<string> {
    const identity = (await readFile(join(dir, 'data', 'backup-identity.txt'), 'utf8')).trim();
    const decrypter = new Decrypter();
    decrypter.addIdentity(identity);
    const plaintext = gunzipSync(await decrypter.decrypt(await readFile(file)));
    const records: BackupRecord[] = [];
    for await (const item of readRecords(Readable.from([plaintext]))) records.push(item);
    const encrypter = new Encrypter();
    encrypter.addRecipient(await identityToRecipient(identity));
    const changed = change(records);
    const body = Buffer.concat(changed.map((item) => record(item.type, item.payload)));
    const out = join(dir, `rewritten-${randomBytes(4).toString('hex')}.backup`);
    await writeFile(out, await encrypter.encrypt(gzipSync(body)));
    return out;
  }

  it('restores only backups signed by a trusted audit key, unless told to take an unsigned one', async () => {
    // Another deployment's backup: its audit key signed it.
    const foreign = generateKeyPairSync('ed25519');
    const foreignKey = join(dir, 'foreign-audit-key.pem');
    const foreignTrusted = join(dir, 'foreign-trusted.pem');
    await writeFile(foreignKey, foreign.privateKey.export({ type: 'pkcs8', format: 'pem' }));
    await writeFile(foreignTrusted, foreign.publicKey.export({ type: 'spki', format: 'pem' }));
    const foreignFile = join(dir, 'foreign.backup');
    const own = { AUDIT_CHECKPOINT_FILE: join(dir, 'signature-checkpoints.jsonl') };
    expect(
      await cli(source, ['backup', foreignFile], { ...own, AUDIT_SIGNING_KEY_FILE: foreignKey }),
    ).toMatchObject({ code: 0 });

    // The manifest names the signer before any restore, as the refusal does.
    const foreignId = keyIdOf(foreign.publicKey);
    const manifest = JSON.parse(await readFile(`${foreignFile}.manifest.json`, 'utf8'));
    expect(manifest.signedBy).toBe(foreignId);

    const fresh = await createScratchDatabase(false);
    try {
      expectFailure(
        await cli(fresh, ['restore', foreignFile], own),
        new RegExp(
          `signed by audit key ${foreignId}, which this deployment does not trust: ` +
            `AUDIT_TRUSTED_KEYS_FILE needs the audit public key ${foreignId}`,
        ),
      );
      expect(await dataRows(fresh)).toBe(0);

      // A signed backup whose content changed (its header here) no longer matches.
      const altered = await rewritten(backupFile, RecordType.Header, (header) => ({
        ...header,
        software: 'x',
      }));
      expectFailure(
        await cli(fresh, ['restore', altered], own),
        /signature does not match its content/,
      );
      // Without its signature: refused, unless the operator says they know where it is from.
      const unsigned = await rewritten(backupFile, RecordType.Trailer, (trailer) => ({
        tables: trailer['tables'],
      }));
      expectFailure(await cli(fresh, ['restore', unsigned], own), /is not signed.*--unsigned/);
      expect(await dataRows(fresh)).toBe(0);
      expect(await cli(fresh, ['restore', unsigned, '--unsigned'], own)).toMatchObject({
        code: 0,
      });
      const client = new pg.Client({ connectionString: fresh.url });
      await client.connect();
      try {
        const { rowCount } = await client.query(
          `SELECT 1 FROM audit_event WHERE detail LIKE '% signed_by=unsigned'`,
        );
        expect(rowCount).toBe(1);
      } finally {
        await client.end();
      }
    } finally {
      await fresh.drop();
    }

    const trusting = await createScratchDatabase(false);
    try {
      const restored = await cli(trusting, ['restore', foreignFile], {
        ...own,
        AUDIT_TRUSTED_KEYS_FILE: foreignTrusted,
      });
      expect(restored).toMatchObject({ code: 0 });
      expect(restored.stdout).toMatch(/every count matches/);
    } finally {
      await trusting.drop();
    }
  });

  it('restores tables whose foreign keys refer to tables after them by name (SMART apps, clients)', async () => {
    const apps = await createScratchDatabase();
    const restoredInto = await createScratchDatabase(false);
    const byNameInto = await createScratchDatabase(false);
    const own = { AUDIT_CHECKPOINT_FILE: join(dir, 'smart-checkpoints.jsonl') };
    const children = [
      'authorization_code',
      'smart_app',
      'backend_client',
      'backend_client_assertion',
    ];
    const rowsOf = async (database: ScratchDatabase): Promise<number[]> =>
      Promise.all(children.map((table) => count(database, table)));
    try {
      // authorization_code refers to smart_app, which comes after it by name.
      await withService(apps, async (_http, _url, testApp) => {
        const doctor = await createUser(testApp, ['doctor']);
        const redirectUri = 'https://chart.example/callback';
        const scope = 'openid fhirUser patient/*.rs';
        const app = await testApp.app.get(SmartAppsService).register('chart', [redirectUri], scope);
        await testApp.app.get(AuthorizationCodes).issue({
          appId: app.id,
          userId: doctor.id,
          sessionEpoch: 0,
          login: { amr: ['pwd'], authTime: new Date() },
          redirectUri,
          scope,
          codeChallenge: 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM',
        });
        const exporter = await createUser(testApp, ['exporter']);
        const client = await testApp.app
          .get(BackendClientsService)
          .register(
            'warehouse',
            exporter.username,
            { jwksUrl: 'https://warehouse.example/jwks.json' },
            'system/*.rs',
          );
        const spent = await testApp.app
          .get(BackendClientRepository)
          .spendAssertion(client.id, randomUUID(), new Date(Date.now() + 300_000));
        expect(spent).toBe(true);
      });
      expect(await rowsOf(apps)).toEqual([1, 1, 1, 1]);
      const file = join(dir, 'smart.backup');
      expect(await cli(apps, ['backup', file], own)).toMatchObject({ code: 0 });
      const restored = await cli(restoredInto, ['restore', file], own);
      expect(restored.stderr).not.toMatch(/foreign key/);
      expect(restored).toMatchObject({ code: 0 });
      expect(await rowsOf(restoredInto)).toEqual([1, 1, 1, 1]);
      // Written parents first: a backup of this CareVault never needs the waiting below.
      const manifest = JSON.parse(await readFile(`${file}.manifest.json`, 'utf8'));
      const order: string[] = manifest.tables.map((entry: { table: string }) => entry.table);
      expect(order.indexOf('smart_app')).toBeLessThan(order.indexOf('authorization_code'));
      expect(order.indexOf('app_user')).toBeLessThan(order.indexOf('backend_client'));

      // A backup written before backups followed foreign-key order has its tables by name:
      // restored all the same (unsigned, as reordering its records breaks its signature).
      const byName = await rewrittenRecords(file, (records) => {
        const tables: BackupRecord[][] = [];
        for (const item of records.slice(1, -1)) {
          if (item.type === RecordType.TableStart) tables.push([]);
          tables.at(-1)!.push(item);
        }
        const name = (table: BackupRecord[]): string =>
          (JSON.parse(table[0]!.payload.toString()) as { table: string }).table;
        tables.sort((a, b) => (name(a) < name(b) ? -1 : 1));
        expect(tables.map(name)).not.toEqual(order);
        const trailer = JSON.parse(records.at(-1)!.payload.toString()) as { tables: unknown };
        return [
          records[0]!,
          ...tables.flat(),
          {
            type: RecordType.Trailer,
            payload: Buffer.from(JSON.stringify({ tables: trailer.tables })),
          },
        ];
      });
      const fromByName = await cli(byNameInto, ['restore', byName, '--unsigned'], own);
      expect(fromByName.stderr).not.toMatch(/foreign key/);
      expect(fromByName).toMatchObject({ code: 0 });
      expect(fromByName.stdout).toMatch(/every count matches/);
      expect(await rowsOf(byNameInto)).toEqual([1, 1, 1, 1]);
    } finally {
      await Promise.all([apps.drop(), restoredInto.drop(), byNameInto.drop()]);
    }
    // A service, a backup and two restores: over the default minute on this 2-core machine.
  }, 180_000);

  it('restores a backup of an older schema and upgrades it, also into a database already migrated', async () => {
    // The source as an older CareVault left it: the last two migrations not yet applied.
    const older = createDataSource(source.url);
    await older.initialize();
    try {
      for (let i = 0; i < 2; i++) await older.undoLastMigration({ transaction: 'each' });
    } finally {
      await older.destroy();
    }
    const olderFile = join(dir, 'older.backup');
    expect(await cli(source, ['backup', olderFile])).toMatchObject({ code: 0 });
    const upgraded = await createScratchDatabase(); // migrated to this version, and empty
    try {
      // A checkpoint file of its own: the shared one holds checkpoints the other restore's chain
      // made after this backup (see the restore's warning about them).
      const checkpoints = { AUDIT_CHECKPOINT_FILE: join(dir, 'upgraded-checkpoints.jsonl') };
      const restored = await cli(upgraded, ['restore', olderFile], checkpoints);
      expect(restored.code).toBe(0);
      const later = MIGRATIONS.slice(-2).map((migration) => migration.name);
      expect(restored.stdout).toContain(
        `Upgraded from the backup's schema with 2 migration(s): ${later.join(', ')}`,
      );
      expect(await count(upgraded, 'migrations')).toBe(MIGRATIONS.length);
      expect(await count(upgraded, 'export_job')).toBe(0);
      expect(await cli(upgraded, ['audit:verify'], checkpoints)).toMatchObject({ code: 0 });
      await withService(upgraded, async (http, url) => {
        for (const patient of seeded) {
          const found = await http('GET', `${url}/fhir/Patient?identifier=${patient.mrn}`);
          expect(
            found.body.entry.map((entry: { resource: { id: string } }) => entry.resource.id),
          ).toEqual([patient.id]);
        }
      });
    } finally {
      await upgraded.drop();
    }
  });
});
