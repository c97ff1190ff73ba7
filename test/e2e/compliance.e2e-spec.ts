import { generateX25519Identity, identityToRecipient } from 'age-encryption';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { chmod, mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { createUser, enableMfa, tokenFor } from '../support/auth.js';
import { buildPatient } from '../support/factories.js';
import { authorizedHttp } from '../support/http.js';
import { selfSignedCertificate } from '../support/certificates.js';
import { withEnv } from '../support/env.js';
import { startCliHost, type CliHost } from '../support/cli.js';
import { BUILT, childEnv, runNode, type Finished } from '../support/process.js';
import { createScratchDatabase, type ScratchDatabase } from '../support/scratch-database.js';
import { createTestApp, type TestApp } from '../support/test-app.js';
import { keyIdOf } from '../../src/crypto/key-ring.js';

describe('compliance:report (HIPAA 164.312, live checks)', () => {
  let dir: string;
  let database: ScratchDatabase;
  /** A production-like configuration: every key from a file, PHI keys wrapped, TLS. */
  let production: Record<string, string>;

  /** Runs commands through one built CLI process (see startCliHost); the first test runs the
   * binary itself, for its exit code and output. */
  let cli: CliHost;
  const report = (env: Record<string, string>, out: string): Promise<Finished> =>
    cli.run(['compliance:report', '--out', join(dir, out)], childEnv(env));
  const written = async (out: string) => {
    const files = await readdir(join(dir, out));
    const json = files.find((file) => file.endsWith('.json'))!;
    const html = files.find((file) => file.endsWith('.html'))!;
    return {
      json: JSON.parse(await readFile(join(dir, out, json), 'utf8')),
      html: await readFile(join(dir, out, html), 'utf8'),
    };
  };
  const checkOf = async (out: string, id: string): Promise<{ status: string; evidence: string }> =>
    (await written(out)).json.checks.find((check: { id: string }) => check.id === id);

  beforeAll(async () => {
    cli = await startCliHost();
    dir = await mkdtemp(join(tmpdir(), 'carevault-compliance-'));
    const secrets = join(dir, 'secrets');
    await mkdir(secrets);
    const pem = (key: ReturnType<typeof generateKeyPairSync>['privateKey']): string =>
      key.export({ type: 'pkcs8', format: 'pem' }).toString();
    // Private to their owner, as signing keys must be (the report fails key custody otherwise).
    const secret = { mode: 0o600 };
    await writeFile(
      join(secrets, 'jwt.pem'),
      pem(generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey),
      secret,
    );
    await writeFile(
      join(secrets, 'id-token.pem'),
      pem(generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey),
      secret,
    );
    await writeFile(
      join(secrets, 'audit.pem'),
      pem(generateKeyPairSync('ed25519').privateKey),
      secret,
    );
    await writeFile(join(secrets, 'kek'), randomBytes(32).toString('base64'), { mode: 0o600 });
    const identity = await generateX25519Identity();
    await writeFile(join(secrets, 'backup-identity.txt'), `${identity}\n`);
    // Beyond the 30 days under which the report warns of the certificate's expiry.
    const tls = selfSignedCertificate(secrets, 'tls', '127.0.0.1', 90);
    database = await createScratchDatabase();
    production = {
      NODE_ENV: 'production',
      DATABASE_URL: database.url,
      DATA_DIR: join(dir, 'data'),
      LOG_LEVEL: 'warn',
      KEY_CUSTODY: 'local',
      KEK_FILE: join(secrets, 'kek'),
      PHI_KEY_FILE: join(dir, 'data', 'phi-keys.json'),
      JWT_SIGNING_KEY_FILE: join(secrets, 'jwt.pem'),
      ID_TOKEN_SIGNING_KEY_FILE: join(secrets, 'id-token.pem'),
      AUDIT_SIGNING_KEY_FILE: join(secrets, 'audit.pem'),
      AUDIT_CHECKPOINT_FILE: join(dir, 'data', 'audit-checkpoints.jsonl'),
      BACKUP_RECIPIENT: await identityToRecipient(identity),
      TLS_CERT_FILE: tls.cert,
      TLS_KEY_FILE: tls.key,
    };
    expect(await cli.run(['keys:init'], childEnv(production))).toMatchObject({
      code: 0,
    });
  });

  afterAll(async () => {
    await cli?.close();
    await database.drop();
    await rm(dir, { recursive: true, force: true });
  });

  it('fails a development configuration, naming what is missing', async () => {
    const dev = await runNode(
      BUILT.cli,
      ['compliance:report', '--out', join(dir, 'dev')],
      childEnv({
        DATABASE_URL: database.url,
        DATA_DIR: join(dir, 'dev-data'),
        PHI_MASTER_KEY: randomBytes(32).toString('base64'),
        LOG_LEVEL: 'warn',
        SUBSCRIPTION_ENDPOINTS: 'https://hooks.example.org/fhir/,http://hooks.example.org/plain/',
      }),
      { timeoutMs: 120_000 },
    );
    expect(dev.code).toBe(1);
    const failed = dev.stdout.split('\n').filter((line) => line.startsWith('FAIL'));
    expect(failed.join('\n')).toMatch(/PHI master keys are held in plaintext/);
    expect(failed.join('\n')).toMatch(/JWT_SIGNING_KEY_FILE unset/);
    expect(failed.join('\n')).toMatch(/plain HTTP on 127\.0\.0\.1:3000/);
    expect(failed.join('\n')).toMatch(
      /Subscription endpoints without TLS: http:\/\/hooks\.example\.org\/plain\/$/m,
    );
    expect(failed.join('\n')).toMatch(/No active administrator account/);
    expect(failed.join('\n')).toMatch(/No backup has been made/);
    const { json, html } = await written('dev');
    expect(json.summary.fail).toBe(failed.length);
    expect(json.checks).toHaveLength(14);
    expect(html).toContain('<td class="status">FAIL</td>');
  });

  it('fails encryption at rest and integrity on recent values a benchmark switch stored unencrypted, saying so', async () => {
    const benchmarked = await createScratchDatabase();
    const phiKey = randomBytes(32).toString('base64');
    const env = {
      DATABASE_URL: benchmarked.url,
      DATA_DIR: join(dir, 'benchmark-data'),
      PHI_MASTER_KEY: phiKey,
      LOG_LEVEL: 'warn',
    };
    const withApp = async (
      extra: Record<string, string>,
      work: (testApp: TestApp) => Promise<void>,
    ): Promise<void> => {
      const restoreEnv = withEnv({ ...env, ...extra });
      const testApp = await createTestApp();
      try {
        await work(testApp);
      } finally {
        await testApp.close();
        restoreEnv();
      }
    };
    try {
      // More encrypted Patients than the sample takes, then one Observation written with the
      // switch: the newest value, of a type before Patient by name.
      let patientId = '';
      await withApp({}, async (testApp) => {
        const api = authorizedHttp(await tokenFor(testApp, 'doctor'));
        const entry = Array.from({ length: 210 }, () => ({
          resource: buildPatient(),
          request: { method: 'POST', url: 'Patient' },
        }));
        const created = await api('POST', `${testApp.url}/fhir`, {
          body: { resourceType: 'Bundle', type: 'transaction', entry },
        });
        expect(created.status).toBe(200);
        patientId = created.body.entry[0].resource.id;
      });
      await withApp({ PHI_ENCRYPTION_BENCHMARK_SKIP: 'true' }, async (testApp) => {
        const api = authorizedHttp(await tokenFor(testApp, 'doctor'));
        const observation = await api('POST', `${testApp.url}/fhir/Observation`, {
          body: {
            resourceType: 'Observation',
            status: 'final',
            code: { coding: [{ system: 'http://loinc.org', code: '2339-0' }] },
            subject: { reference: `Patient/${patientId}` },
          },
        });
        expect(observation.status).toBe(201);
      });
      // And two recent Patients whose ciphertexts were swapped: altered, as no benchmark does.
      const scratch = new pg.Client({ connectionString: benchmarked.url });
      await scratch.connect();
      try {
        await scratch.query(
          `WITH newest AS (SELECT id FROM resource WHERE resource_type = 'Patient'
                            ORDER BY last_updated DESC, id DESC LIMIT 2)
           UPDATE resource r SET content = o.content FROM resource o
            WHERE r.resource_type = 'Patient' AND o.resource_type = 'Patient'
              AND r.id IN (SELECT id FROM newest) AND o.id IN (SELECT id FROM newest)
              AND r.id <> o.id`,
        );
      } finally {
        await scratch.end();
      }

      const run = await report(env, 'benchmarked');
      expect(run.code).toBe(1);
      const { json } = await written('benchmarked');
      const atRest = json.checks.find((check: { id: string }) => check.id === 'encryption-at-rest');
      expect(atRest.status).toBe('fail');
      expect(atRest.evidence).toMatch(
        /^Values stored unencrypted by the benchmark switch PHI_ENCRYPTION_BENCHMARK_SKIP in /,
      );
      // The newest value of each table holding the resource: its current row and its version.
      expect(atRest.evidence).toContain('resource.content (1)');
      expect(atRest.evidence).toContain('resource_history.content (1)');
      // No tag to verify is not a tag that fails: the benchmark's rows are named as what they
      // are and counted apart from the two altered ones, and both fail the check.
      const integrity = json.checks.find((check: { id: string }) => check.id === 'integrity');
      expect(integrity.status).toBe('fail');
      const [altered, benchmark, ...more] = (integrity.evidence as string).split('; ');
      expect(more).toEqual([]);
      expect(altered).toBe(
        'Values whose authentication tag does not verify in resource.content (2)',
      );
      expect(benchmark).toMatch(
        /^Values written unencrypted by the benchmark switch PHI_ENCRYPTION_BENCHMARK_SKIP \(refused in production\), which carry no authentication tag, in /,
      );
      expect(benchmark).toContain('resource.content (1)');
      expect(benchmark).toContain('resource_history.content (1)');
    } finally {
      await benchmarked.drop();
    }
    // A database, two services and a report: near the default minute on this 2-core machine.
  }, 180_000);

  it('passes every check on a production-like configuration with an admin with MFA, a backup and a checkpoint', async () => {
    // An administrator enrols in MFA through the API, under the same keys (and the production
    // password hash, which the report checks).
    const restoreEnv = withEnv({
      ...production,
      TLS_CERT_FILE: undefined,
      TLS_KEY_FILE: undefined,
      PHI_MASTER_KEY: undefined,
      PASSWORD_HASH_TEST_FAST: undefined,
    });
    const testApp = await createTestApp();
    try {
      await enableMfa(testApp, await createUser(testApp, ['admin']));
      await createUser(testApp, ['doctor']);
    } finally {
      await testApp.close();
      restoreEnv();
    }
    const env = childEnv(production);
    expect(await cli.run(['backup', join(dir, 'backups', 'nightly.cvb')], env)).toMatchObject({
      code: 0,
    });
    expect(await cli.run(['audit:checkpoint'], env)).toMatchObject({ code: 0 });

    const run = await report(production, 'production');
    expect(run.stderr).toBe('');
    expect(run.stdout).not.toMatch(/^FAIL/m);
    expect(run).toMatchObject({ code: 0 });
    const { json, html } = await written('production');
    expect(json.summary).toEqual({ pass: 14, warn: 0, fail: 0 });
    expect(json.environment).toBe('production');
    const byId = Object.fromEntries(
      json.checks.map((check: { id: string; evidence: string }) => [check.id, check.evidence]),
    );
    expect(byId['key-custody']).toMatch(/wrapped by the KEK/);
    expect(byId['transmission-security']).toMatch(/HTTPS with TLS 1\.2\+, certificate valid until/);
    expect(byId['mfa-for-admins']).toBe('All 1 active admins have MFA enabled');
    expect(byId['backups']).toMatch(/nightly\.cvb, with its manifest/);
    expect(byId['encryption-at-rest']).toMatch(/sampled values of .*app_user\.totp_secret/);
    expect(html).not.toContain('<td class="status">FAIL</td>');
    // The report itself is audited.
    expect((await cli.run(['audit:verify'], env)).stdout).toMatch(/Audit chain verified/);
  });

  it('fails key custody on a KEK file others may read, and on a plaintext key file left by keys:wrap', async () => {
    const kek = production['KEK_FILE']!;
    await chmod(kek, 0o644);
    try {
      const open = await report(production, 'kek-open');
      expect(open.code).toBe(1);
      // The custodian warns as it starts, as for a PHI key file.
      expect(open.stderr).toContain(`KEK_FILE ${kek} is open to group or others (mode 644)`);
      expect(await checkOf('kek-open', 'key-custody')).toMatchObject({
        status: 'fail',
        evidence: `The KEK file ${kek} is open to group or others (mode 644): chmod 600 it`,
      });
    } finally {
      await chmod(kek, 0o600);
    }

    // The signing keys too: whoever reads one signs tokens or checkpoints as the deployment.
    const jwt = production['JWT_SIGNING_KEY_FILE']!;
    const audit = production['AUDIT_SIGNING_KEY_FILE']!;
    await chmod(jwt, 0o644);
    await chmod(audit, 0o640);
    try {
      const open = await report(production, 'signing-open');
      expect(open.code).toBe(1);
      // The CLI reads the audit key (the service reads all three: private-key-file.spec.ts).
      expect(open.stderr).toContain(
        `AUDIT_SIGNING_KEY_FILE ${audit} is open to group or others (mode 640); chmod 600 it`,
      );
      expect(await checkOf('signing-open', 'key-custody')).toMatchObject({
        status: 'fail',
        evidence:
          `JWT_SIGNING_KEY_FILE ${jwt} is open to group or others (mode 644): chmod 600 it; ` +
          `AUDIT_SIGNING_KEY_FILE ${audit} is open to group or others (mode 640): chmod 600 it`,
      });
    } finally {
      await chmod(jwt, 0o600);
      await chmod(audit, 0o600);
    }

    // A development deployment's generated key file, wrapped as the README says.
    const data = join(dir, 'wrapping-data');
    await mkdir(data);
    const plaintext = join(data, 'phi-keys.json');
    const material = randomBytes(32);
    const id = keyIdOf(material);
    const key = { id, key: material.toString('base64'), createdAt: new Date().toISOString() };
    await writeFile(
      plaintext,
      JSON.stringify({ version: 1, current: id, blindIndexRoot: id, keys: [key] }),
      { mode: 0o600 },
    );
    const wrapping = {
      ...production,
      DATA_DIR: data,
      PHI_KEY_FILE: join(dir, 'wrapped', 'phi-keys.json'),
      AUDIT_CHECKPOINT_FILE: join(data, 'audit-checkpoints.jsonl'),
    };
    const wrapped = await cli.run(['keys:wrap', '--from', plaintext], childEnv(wrapping));
    expect(wrapped).toMatchObject({ code: 0 });
    expect(wrapped.stdout).toMatch(/Remove PHI_MASTER_KEY \(or the plaintext file\)/);
    expect((await report(wrapping, 'plaintext-left')).code).toBe(1);
    expect(await checkOf('plaintext-left', 'key-custody')).toMatchObject({
      status: 'fail',
      evidence: expect.stringContaining(
        `A plaintext PHI key file (version 1) is still at ${plaintext}: delete it`,
      ) as unknown,
    });

    await rm(plaintext);
    await report(wrapping, 'plaintext-gone');
    expect(await checkOf('plaintext-gone', 'key-custody')).toMatchObject({
      status: 'pass',
      evidence: expect.stringMatching(/wrapped by the KEK in .*, kept on another path/) as unknown,
    });
  });
});
