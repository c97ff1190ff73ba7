import { existsSync } from 'node:fs';
import { generateKeyPairSync, randomBytes, randomUUID, type KeyObject } from 'node:crypto';
import { mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { buildPatient } from '../support/factories.js';
import { createDataSource } from '../../src/database/database-options.js';
import { selfSignedCertificate } from '../support/certificates.js';
import { http } from '../support/http.js';
import { BUILT, childEnv, runNode, serviceEnv, startService } from '../support/process.js';
import { createScratchDatabase } from '../support/scratch-database.js';

/** The statuses in the audit rows of one request id; waits briefly for rows written late. */
async function auditStatuses(requestId: string): Promise<number[]> {
  const db = new pg.Client({ connectionString: process.env['DATABASE_URL'] });
  await db.connect();
  try {
    for (let attempt = 0; ; attempt++) {
      const { rows } = await db.query<{ status_code: number }>(
        'SELECT status_code FROM audit_event WHERE request_id = $1',
        [requestId],
      );
      if (rows.length > 0 || attempt >= 40) return rows.map((row) => row.status_code);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  } finally {
    await db.end();
  }
}

/**
 * What the service needs to start with NODE_ENV=production: its key files (written in `dir`)
 * and PUBLIC_URL.
 */
async function productionEnv(dir: string): Promise<Record<string, string>> {
  const keyFile = join(dir, 'jwt.pem');
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  await writeFile(keyFile, privateKey.export({ type: 'pkcs8', format: 'pem' }), {
    mode: 0o600,
  });
  const auditKeyFile = join(dir, 'audit.pem');
  await writeFile(
    auditKeyFile,
    generateKeyPairSync('ed25519').privateKey.export({ type: 'pkcs8', format: 'pem' }),
    { mode: 0o600 },
  );
  const idTokenKeyFile = join(dir, 'id-token.pem');
  await writeFile(
    idTokenKeyFile,
    generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({
      type: 'pkcs8',
      format: 'pem',
    }),
    { mode: 0o600 },
  );
  return {
    NODE_ENV: 'production',
    DATABASE_URL: process.env['DATABASE_URL']!,
    PHI_MASTER_KEY: process.env['PHI_MASTER_KEY']!,
    JWT_SIGNING_KEY_FILE: keyFile,
    ID_TOKEN_SIGNING_KEY_FILE: idTokenKeyFile,
    AUDIT_SIGNING_KEY_FILE: auditKeyFile,
    PUBLIC_URL: 'https://ehr.example.org',
    DATA_DIR: dir,
    PORT: '0',
    LOG_LEVEL: 'info',
  };
}

describe('the service as a process', () => {
  it.each([
    [
      { PORT: 'eighty' },
      /^Invalid configuration: PORT must be an integer between 0 and 65535 \(got "eighty"\)$/,
    ],
    [
      { PHI_MASTER_KEY: 'not-a-key' },
      /^Invalid configuration: PHI_MASTER_KEY must be one or more comma-separated base64 keys/,
    ],
    [{ LOG_LEVEL: 'chatty' }, /^Invalid configuration: LOG_LEVEL must be one of/],
    [
      { TRUSTED_PROXIES: 'garbage' },
      /^Invalid configuration: TRUSTED_PROXIES must be a comma-separated list of IP addresses/,
    ],
    [{ TRUSTED_PROXIES: '10.0.0.0/33' }, /^Invalid configuration: TRUSTED_PROXIES must be/],
    [{ TLS_CIPHERS: 'RC4-NONE' }, /^Invalid configuration: TLS_CIPHERS must be an OpenSSL/],
  ])('stops on invalid configuration %j with one line naming the variable', async (env, line) => {
    const result = await runNode(BUILT.main, [], childEnv(env));
    expect(result.code).toBe(1);
    expect(result.stderr.trim().split('\n')).toHaveLength(1);
    expect(result.stderr.trim()).toMatch(line);
    expect(result.stderr).not.toContain('not-a-key');
  });

  describe('a file or an address it cannot use stops it with one line naming the variable', () => {
    const NOT_PEM = join(process.cwd(), 'package.json');
    let dir: string;

    beforeAll(async () => {
      dir = await mkdtemp(join(tmpdir(), 'carevault-files-'));
    });

    afterAll(async () => {
      await rm(dir, { recursive: true, force: true });
    });

    // Read before Nest exists (the HTTPS adapter), inside its factory (a provider), in a
    // module's init hook, in a bootstrap hook (the MLLP listener), and at listen.
    it.each([
      [
        { TLS_CERT_FILE: '/missing/cert.pem', TLS_KEY_FILE: '/missing/key.pem' },
        /^Invalid configuration: TLS_CERT_FILE \/missing\/cert\.pem cannot be read \(ENOENT\)$/,
      ],
      [
        { METRICS_TOKEN_FILE: '/missing/metrics-token' },
        /^Invalid configuration: METRICS_TOKEN_FILE \/missing\/metrics-token cannot be read \(ENOENT\)$/,
      ],
      [
        { JWT_SIGNING_KEY_FILE: '/missing/jwt.pem' },
        /^Invalid configuration: JWT_SIGNING_KEY_FILE \/missing\/jwt\.pem cannot be read \(ENOENT\)$/,
      ],
      [
        { HL7_TLS_CERT_FILE: '/missing/mllp.pem', HL7_TLS_KEY_FILE: '/missing/mllp-key.pem' },
        /^Invalid configuration: HL7_TLS_CERT_FILE \/missing\/mllp\.pem cannot be read \(ENOENT\)$/,
      ],
      [
        // Files that are there but hold no PEM certificate and key (package.json).
        { TLS_CERT_FILE: NOT_PEM, TLS_KEY_FILE: NOT_PEM },
        /^Invalid configuration: TLS_CERT_FILE \S+package\.json and TLS_KEY_FILE \S+package\.json are not a PEM certificate and its private key \(ERR_OSSL_\w+\)$/,
      ],
      [
        { HL7_TLS_CERT_FILE: NOT_PEM, HL7_TLS_KEY_FILE: NOT_PEM },
        /^Invalid configuration: HL7_TLS_CERT_FILE \S+package\.json and HL7_TLS_KEY_FILE \S+package\.json are not a PEM certificate and its private key \(ERR_OSSL_\w+\)$/,
      ],
    ])('%j', async (env, line) => {
      const result = await runNode(
        BUILT.main,
        [],
        serviceEnv(process.env['DATABASE_URL']!, dir, {
          LOG_LEVEL: 'silent',
          PHI_MASTER_KEY: process.env['PHI_MASTER_KEY']!,
          ...env,
        }),
      );
      expect(result.code).toBe(1);
      expect(result.stderr.trim()).toMatch(line);
      expect(result.stdout).toBe('');
    });
  });

  // Bound before the application loads, and so before the database is reached (a database that
  // does not exist would answer first): until 2026-12-06 after it, and after the migrations.
  it.each([
    [
      { HOST: 'carevault.invalid' },
      /^Invalid configuration: HOST carevault\.invalid cannot be resolved \(\w+\)$/,
    ],
    [
      { HL7_MLLP_HOST: 'carevault.invalid' },
      /^Invalid configuration: HL7_MLLP_HOST carevault\.invalid cannot be resolved \(\w+\)$/,
    ],
    [
      { HOST: '192.0.2.1' },
      /^Invalid configuration: HOST 192\.0\.2\.1 is not an address of this machine \(EADDRNOTAVAIL\)$/,
    ],
    [
      { HL7_MLLP_HOST: '192.0.2.1' },
      /^Invalid configuration: HL7_MLLP_HOST 192\.0\.2\.1 is not an address of this machine \(EADDRNOTAVAIL\)$/,
    ],
  ])('stops on %j with one line, before it reaches the database', async (env, line) => {
    const database = new URL(process.env['DATABASE_URL']!);
    database.pathname = '/carevault_no_such_database';
    const dir = await mkdtemp(join(tmpdir(), 'carevault-host-'));
    const result = await runNode(
      BUILT.main,
      [],
      serviceEnv(database.href, dir, { LOG_LEVEL: 'silent', ...env }),
    ).finally(() => rm(dir, { recursive: true, force: true }));
    expect(result.code).toBe(1);
    expect(result.stderr.trim()).toMatch(line);
    expect(result.stdout).toBe('');
  });

  describe('a key or CA file that holds none it can use stops it with one line naming the variable', () => {
    const rawKey = randomBytes(32).toString('base64');
    let dir: string;

    beforeAll(async () => {
      dir = await mkdtemp(join(tmpdir(), 'carevault-keys-'));
      const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' });
      const ed = generateKeyPairSync('ed25519');
      const pem = (key: KeyObject, type: 'pkcs8' | 'spki'): string =>
        key.export({ type, format: 'pem' }).toString();
      const keyFile = (keys: object[], current = 'a'): string =>
        JSON.stringify({ version: 1, current, blindIndexRoot: current, keys });
      const files: Record<string, string> = {
        'text.pem': 'not a key\n',
        'ec-public.pem': pem(ec.publicKey, 'spki'),
        'ec-private.pem': pem(ec.privateKey, 'pkcs8'),
        'ed-private.pem': pem(ed.privateKey, 'pkcs8'),
        'ed-public.pem': pem(ed.publicKey, 'spki'),
        'raw-key': `${rawKey}\n`,
        'short-key.json': keyFile([{ id: 'a', key: 'c2hvcnQ=', createdAt: '2026-01-01' }]),
        'no-key.json': keyFile([{ id: 'a', createdAt: '2026-01-01' }]),
        'other-current.json': keyFile([{ id: 'a', key: rawKey, createdAt: '2026-01-01' }], 'b'),
      };
      for (const [name, text] of Object.entries(files)) {
        await writeFile(join(dir, name), text, { mode: 0o600 });
      }
      selfSignedCertificate(dir, 'mllp');
    });

    afterAll(async () => {
      await rm(dir, { recursive: true, force: true });
    });

    // They stopped it with OpenSSL's or JSON.parse's error and a stack naming no variable, and
    // JSON.parse's quoted the file's first characters: a PHI key's.
    it.each([
      [
        { JWT_SIGNING_KEY_FILE: 'text.pem' },
        /^Invalid configuration: JWT_SIGNING_KEY_FILE \S+text\.pem does not hold a PEM private key \(ERR_OSSL_\w+\)$/,
      ],
      [
        { JWT_SIGNING_KEY_FILE: 'ec-public.pem' },
        /^Invalid configuration: JWT_SIGNING_KEY_FILE \S+ec-public\.pem does not hold a PEM private key: it holds a public key \(ERR_OSSL_\w+\)$/,
      ],
      [
        { JWT_SIGNING_KEY_FILE: 'ed-private.pem' },
        /^Invalid configuration: JWT_SIGNING_KEY_FILE \S+ed-private\.pem must hold an EC P-256 private key \(ES256\)$/,
      ],
      [
        { ID_TOKEN_SIGNING_KEY_FILE: 'ec-private.pem' },
        /^Invalid configuration: ID_TOKEN_SIGNING_KEY_FILE \S+ec-private\.pem must hold an RSA private key of 2048 bits or more \(RS256\)$/,
      ],
      [
        { AUDIT_SIGNING_KEY_FILE: 'text.pem' },
        /^Invalid configuration: AUDIT_SIGNING_KEY_FILE \S+text\.pem does not hold a PEM private key \(ERR_OSSL_\w+\)$/,
      ],
      [
        { AUDIT_SIGNING_KEY_FILE: 'ec-private.pem' },
        /^Invalid configuration: AUDIT_SIGNING_KEY_FILE \S+ec-private\.pem must hold an Ed25519 private key$/,
      ],
      [
        { JWT_VERIFICATION_KEYS_FILE: 'ed-public.pem' },
        /^Invalid configuration: JWT_VERIFICATION_KEYS_FILE \S+ed-public\.pem: public key 1 is not an EC P-256 key or an RSA key of 2048 bits or more$/,
      ],
      [
        { AUDIT_TRUSTED_KEYS_FILE: 'ec-public.pem' },
        /^Invalid configuration: AUDIT_TRUSTED_KEYS_FILE \S+ec-public\.pem: public key 1 is not an Ed25519 key$/,
      ],
      [
        // Read as no keys: the service started without the keys the file was meant to add.
        { JWT_VERIFICATION_KEYS_FILE: 'ec-private.pem' },
        /^Invalid configuration: JWT_VERIFICATION_KEYS_FILE \S+ec-private\.pem holds no PEM public key: it holds a private key$/,
      ],
      [
        { AUDIT_TRUSTED_KEYS_FILE: 'text.pem' },
        /^Invalid configuration: AUDIT_TRUSTED_KEYS_FILE \S+text\.pem holds no PEM public key$/,
      ],
      [
        // TLS took them, and refused every sender's (or destination's) certificate.
        {
          HL7_TLS_CERT_FILE: 'mllp.crt',
          HL7_TLS_KEY_FILE: 'mllp.key',
          HL7_TLS_CLIENT_CA_FILE: 'text.pem',
        },
        /^Invalid configuration: HL7_TLS_CLIENT_CA_FILE \S+text\.pem holds no PEM certificate$/,
      ],
      [
        { HL7_OUTBOUND_TLS_CA_FILE: 'ec-public.pem' },
        /^Invalid configuration: HL7_OUTBOUND_TLS_CA_FILE \S+ec-public\.pem holds no PEM certificate$/,
      ],
      [
        { PHI_KEY_FILE: 'raw-key' },
        /^Invalid configuration: PHI_KEY_FILE \S+raw-key is not a CareVault key file \(not JSON; keys:init and keys:rotate write one\)$/,
      ],
      [
        { PHI_KEY_FILE: 'short-key.json' },
        /^Invalid configuration: PHI_KEY_FILE \S+short-key\.json holds key 1 of 1 not as 32 bytes of base64$/,
      ],
      [
        { PHI_KEY_FILE: 'no-key.json' },
        /^Invalid configuration: PHI_KEY_FILE \S+no-key\.json holds key 1 of 1 not as 32 bytes of base64$/,
      ],
      [
        { PHI_KEY_FILE: 'other-current.json' },
        /^Invalid configuration: PHI_KEY_FILE \S+other-current\.json lacks key b, its blind-index root: every search index is keyed by it, so it cannot be retired; put it back$/,
      ],
      [
        { PHI_KEY_FILE: 'missing.json' },
        /^Invalid configuration: PHI_KEY_FILE \S+missing\.json cannot be read \(ENOENT\)$/,
      ],
    ])('%j', async (files, line) => {
      const env = serviceEnv(process.env['DATABASE_URL']!, dir, {
        LOG_LEVEL: 'silent',
        PHI_MASTER_KEY: process.env['PHI_MASTER_KEY']!,
        ...Object.fromEntries(Object.entries(files).map(([name, file]) => [name, join(dir, file)])),
      });
      if ('PHI_KEY_FILE' in files) delete env['PHI_MASTER_KEY'];
      const result = await runNode(BUILT.main, [], env);
      expect(result.code).toBe(1);
      expect(result.stderr.trim()).toMatch(line);
      expect(result.stderr).not.toContain(rawKey.slice(0, 8));
      expect(result.stdout).toBe('');
    });

    // Checked before the application's modules load (main.ts), and so before the database is
    // reached: one that does not exist answered first, after its connection retries.
    it.each([
      [
        { PHI_KEY_FILE: 'short-key.json' },
        /^Invalid configuration: PHI_KEY_FILE \S+short-key\.json /,
      ],
      [
        { JWT_SIGNING_KEY_FILE: 'ec-public.pem' },
        /^Invalid configuration: JWT_SIGNING_KEY_FILE \S+ec-public\.pem does not hold/,
      ],
      [
        { HL7_OUTBOUND_TLS_CA_FILE: 'ec-public.pem' },
        /^Invalid configuration: HL7_OUTBOUND_TLS_CA_FILE \S+ec-public\.pem holds no PEM/,
      ],
    ])('%j before it reaches the database', async (files, line) => {
      const database = new URL(process.env['DATABASE_URL']!);
      database.pathname = '/carevault_no_such_database';
      const env = serviceEnv(database.href, dir, {
        LOG_LEVEL: 'silent',
        ...Object.fromEntries(Object.entries(files).map(([name, file]) => [name, join(dir, file)])),
      });
      if ('PHI_KEY_FILE' in files) delete env['PHI_MASTER_KEY'];
      const result = await runNode(BUILT.main, [], env);
      expect(result.code).toBe(1);
      expect(result.stderr.trim()).toMatch(line);
      expect(result.stdout).toBe('');
    });

    // Until 2026-12-06 pg read it at each connection attempt: ENOENT with a stack after ~40 s of
    // retries.
    it("DATABASE_URL's sslrootcert, at once, without the URL's password", async () => {
      const database = new URL(process.env['DATABASE_URL']!);
      database.password = 'pw-not-to-print';
      database.searchParams.set('sslrootcert', join(dir, 'missing-ca.pem'));
      const started = Date.now();
      const result = await runNode(
        BUILT.main,
        [],
        serviceEnv(database.href, dir, { LOG_LEVEL: 'silent' }),
      );
      expect(result.stderr.trim()).toMatch(
        /^Invalid configuration: DATABASE_URL's sslrootcert \S+missing-ca\.pem cannot be read \(ENOENT\)$/,
      );
      expect(result.code).toBe(1);
      expect(result.stderr).not.toContain('pw-not-to-print');
      expect(Date.now() - started).toBeLessThan(10_000);
    });
  });

  it('refuses a database that does not exist at once, in one line, without retrying it', async () => {
    // Until 2026-12-06: 30 s of silence (ten attempts 3 s apart), then a stack trace.
    const database = new URL(process.env['DATABASE_URL']!);
    database.pathname = '/carevault_no_such_database';
    const dir = await mkdtemp(join(tmpdir(), 'carevault-nodb-'));
    const result = await runNode(
      BUILT.main,
      [],
      serviceEnv(database.href, dir, { LOG_LEVEL: 'silent' }),
    ).finally(() => rm(dir, { recursive: true, force: true }));
    expect(result.code).toBe(1);
    expect(result.stderr).toBe(
      'CareVault failed to start: the database of DATABASE_URL cannot be used: database "carevault_no_such_database" does not exist (SQLSTATE 3D000)\n',
    );
    expect(result.stdout).toBe('');
    // Never the URL, whose password this database's test server may have.
    if (database.password) expect(result.stderr).not.toContain(database.password);
  });

  it('refuses to start in production without a PHI key', async () => {
    const result = await runNode(
      BUILT.main,
      [],
      childEnv({
        NODE_ENV: 'production',
        DATABASE_URL: process.env['DATABASE_URL']!,
        PORT: '0',
        LOG_LEVEL: 'silent',
      }),
    );
    expect(result.code).toBe(1);
    expect(result.stderr.trim()).toBe(
      'Invalid configuration: PHI_MASTER_KEY or PHI_KEY_FILE must be set when NODE_ENV=production',
    );
  });

  it('refuses to start in production without PUBLIC_URL, whose absolute URLs the Host header would choose', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'carevault-prod-'));
    try {
      const env = await productionEnv(dir);
      delete env['PUBLIC_URL'];
      const result = await runNode(BUILT.main, [], childEnv({ ...env, LOG_LEVEL: 'silent' }));
      // Until 2026-12-07 it started, with a warning, and answered SMART discovery, Bundle links
      // and client assertions' audience with whatever host a request named.
      expect(result.code).toBe(1);
      expect(result.stderr.trim()).toBe(
        'Invalid configuration: PUBLIC_URL must be set when NODE_ENV=production (the origin clients reach the service at, such as https://ehr.example.org): without it the Host header, which clients choose, names the token endpoint in SMART discovery, the links of Bundles and the audience client assertions must have',
      );
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('refuses to start, and its commands to run, on a schema with pending migrations, naming the way out', async () => {
    const database = await createScratchDatabase();
    const dir = await mkdtemp(join(tmpdir(), 'carevault-pending-'));
    try {
      const older = await createDataSource(database.url).initialize();
      try {
        await older.undoLastMigration({ transaction: 'each' });
      } finally {
        await older.destroy();
      }
      const env = serviceEnv(database.url, dir, { LOG_LEVEL: 'silent' });
      const refusal =
        'CareVault failed to start: the database schema is 1 migration behind this version: ' +
        'run `npm run migration:run`, or set MIGRATIONS_RUN=true';
      const result = await runNode(BUILT.main, [], env);
      expect(result.code).toBe(1);
      expect(result.stderr.trim()).toBe(refusal);
      // Until 2026-12-06 the commands ran on it and failed on a column that did not exist.
      for (const command of ['user:list', 'search:reindex', 'hl7:reprocess']) {
        const ran = await runNode(BUILT.cli, [command], env);
        expect([command, ran.code]).toEqual([command, 1]);
        // Its last line (a warning of a key it generated may come first), and no SQL error.
        expect(ran.stderr.trim().split('\n').at(-1)).toBe(refusal);
        expect(ran.stderr).not.toContain('ERROR');
      }
    } finally {
      await Promise.all([database.drop(), rm(dir, { recursive: true, force: true })]);
    }
  });

  it('refuses a schema a newer version migrated, service and commands, naming its migration', async () => {
    // An older instance left running after an upgrade started on it and wrote search rows in
    // its old format, which the newer version's searches missed, until 2026-12-06.
    const database = await createScratchDatabase();
    const dir = await mkdtemp(join(tmpdir(), 'carevault-newer-'));
    try {
      const db = new pg.Client({ connectionString: database.url });
      await db.connect();
      await db
        .query(
          `INSERT INTO migrations ("timestamp", "name") VALUES (9999999999999, 'FromTheFuture9999999999999')`,
        )
        .finally(() => db.end());
      const env = serviceEnv(database.url, dir, { LOG_LEVEL: 'silent' });
      const refusal =
        'CareVault failed to start: a newer version of CareVault migrated this database ' +
        '(FromTheFuture9999999999999 is unknown to this version): run that version or a later one';
      const service = await runNode(BUILT.main, [], env);
      expect(service.code).toBe(1);
      expect(service.stderr.trim()).toBe(refusal);
      const command = await runNode(BUILT.cli, ['user:list'], env);
      expect(command.code).toBe(1);
      // Its last line (a warning of a key it generated may come first), and no SQL error.
      expect(command.stderr.trim().split('\n').at(-1)).toBe(refusal);
      expect(command.stderr).not.toContain('ERROR');
      expect(command.stdout).toBe('');
    } finally {
      await Promise.all([database.drop(), rm(dir, { recursive: true, force: true })]);
    }
  });

  it('stops on SIGTERM within SHUTDOWN_TIMEOUT_SECONDS, exit code 0, whatever clients hold open', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'carevault-stop-'));
    const sockets: Socket[] = [];
    try {
      // The worker's database holds what earlier files wrote under the worker's PHI key.
      const service = await startService(
        serviceEnv(process.env['DATABASE_URL']!, dir, {
          PHI_MASTER_KEY: process.env['PHI_MASTER_KEY']!,
          SHUTDOWN_TIMEOUT_SECONDS: '2',
        }),
      );
      const { hostname, port } = new URL(service.url);
      const open = (bytes: string): Promise<Socket> =>
        new Promise((resolve, reject) => {
          const socket = connect(Number(port), hostname, () => resolve(socket));
          socket.on('error', () => undefined);
          socket.once('error', reject);
          if (bytes) socket.write(bytes);
          sockets.push(socket);
        });
      // A connection that has sent nothing yet (a load balancer's spare, a preconnect), and a
      // request whose body trickles: neither is idle, and neither may hold the stop for minutes.
      await open('');
      await open('POST /auth/login HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\n');
      await new Promise((resolve) => setTimeout(resolve, 200));
      const started = Date.now();
      expect(await service.stop('SIGTERM')).toEqual({ code: 0, signal: null });
      expect(Date.now() - started).toBeLessThan(10_000);
      expect(service.output()).toContain('connections still open after 2 s');
    } finally {
      for (const socket of sockets) socket.destroy();
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('in production, keeps Swagger UI off unless DOCS_IN_PRODUCTION is set', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'carevault-prod-'));
    try {
      const env = await productionEnv(dir);
      const closed = await startService(childEnv(env));
      const open = await startService(childEnv({ ...env, DOCS_IN_PRODUCTION: 'true' }));
      try {
        expect((await http('GET', `${closed.url}/docs`)).status).toBe(404);
        expect((await http('GET', `${closed.url}/docs-json`)).status).toBe(404);
        expect((await http('GET', `${closed.url}/health`)).status).toBe(200);
        const docsRequest = randomUUID();
        const docs = await http('GET', `${open.url}/docs`, {
          headers: { 'x-request-id': docsRequest },
        });
        expect(docs.status).toBe(200);
        // Swagger UI is served outside Nest's router and still gets its audit row.
        expect(await auditStatuses(docsRequest)).toEqual([200]);
      } finally {
        await Promise.all([closed.stop(), open.stop()]);
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  describe('in embedded mode (DATABASE_URL unset)', () => {
    let dataDir: string;

    beforeAll(async () => {
      dataDir = await mkdtemp(join(tmpdir(), 'carevault-embedded-'));
    });

    afterAll(async () => {
      await rm(dataDir, { recursive: true, force: true });
    });

    it('starts its own PostgreSQL, keeps data across a restart, stops cleanly on SIGTERM, and logs no PHI', async () => {
      const env = childEnv({ DATA_DIR: dataDir, PORT: '0', LOG_LEVEL: 'debug' });
      const known = {
        family: 'Oyelaran-Whitcombe',
        ssn: '078-05-1120',
        line: '1313 Mockingbird Lane',
      };

      const password = 'Correct-Horse-Battery-4713';
      const createdUser = await runNode(
        BUILT.cli,
        ['user:create', '--username', 'clinician', '--role', 'doctor'],
        env,
        { stdin: `${password}\n` },
      );
      expect(createdUser).toMatchObject({ code: 0 });
      expect(createdUser.stdout + createdUser.stderr).not.toContain(password);

      const first = await startService(env);
      expect(first.output()).toContain('Database: embedded PostgreSQL at 127.0.0.1:');
      const docs = await http('GET', `${first.url}/docs`);
      expect(docs.status).toBe(200);
      expect(docs.text).toContain('swagger-ui');
      const openapi = await http('GET', `${first.url}/docs-json`);
      expect(openapi.body.paths['/fhir/{type}/{id}']).toBeDefined();
      expect((await http('GET', `${first.url}/docs/swagger-ui-bundle.js`)).status).toBe(200);
      expect((await stat(join(dataDir, 'phi-keys.json'))).mode & 0o777).toBe(0o600);
      expect((await http('GET', `${first.url}/fhir/Patient/unknown`)).status).toBe(401);
      const session = await http('POST', `${first.url}/auth/login`, {
        body: { username: 'clinician', password },
        headers: { 'content-type': 'application/json' },
      });
      expect(session.status).toBe(200);
      const authorization = `Bearer ${session.body.access_token}`;
      const created = await http('POST', `${first.url}/fhir/Patient`, {
        body: buildPatient(known),
        headers: { authorization },
      });
      expect(created.status).toBe(201);
      const rejected = await http('POST', `${first.url}/fhir/Patient`, {
        raw: `{"resourceType":"Patient","name":[{"family":"${known.family}"`,
        headers: { 'content-type': 'application/fhir+json', authorization },
      });
      expect(rejected.status).toBe(400);
      await http('GET', `${first.url}/fhir/Patient/${created.body.id}?name=${known.family}`, {
        headers: { authorization: 'Bearer secret-token-4711', cookie: 'session=cookie-4712' },
      });
      expect(await first.stop('SIGTERM')).toEqual({ code: 0, signal: null });
      expect(first.output()).toContain('Embedded PostgreSQL stopped');
      expect(existsSync(join(dataDir, 'postgres', 'postmaster.pid'))).toBe(false);

      const second = await startService(env);
      // The signing key generated on first start survives the restart: the old token still works.
      const read = await http('GET', `${second.url}/fhir/Patient/${created.body.id}`, {
        headers: { authorization },
      });
      expect(read.status).toBe(200);
      expect(read.body.name[0].family).toBe(known.family);
      // Ctrl+C under npm start delivers SIGINT twice; the second must not cut shutdown short.
      second.child.kill('SIGINT');
      expect(await second.stop('SIGINT')).toEqual({ code: 0, signal: null });
      expect(second.output()).toContain('Embedded PostgreSQL stopped');

      expect(first.output()).toContain(`"url":"/fhir/Patient/${created.body.id}"`);
      for (const output of [first.output(), second.output()]) {
        for (const value of [
          ...Object.values(known),
          'secret-token-4711',
          'cookie-4712',
          password,
          session.body.access_token as string,
          session.body.refresh_token as string,
        ]) {
          expect(output).not.toContain(value);
        }
      }
    });
  });
});
