import {
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  randomBytes,
  randomUUID,
} from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { calculateJwkThumbprint, decodeJwt, decodeProtectedHeader, exportJWK, SignJWT } from 'jose';
import { SigningKeys } from '../../src/auth/signing-keys.js';
import { TokenService } from '../../src/auth/token.service.js';
import type { UserEntity } from '../../src/auth/user.entity.js';
import { tokenFor } from '../support/auth.js';
import { withEnv } from '../support/env.js';
import { http } from '../support/http.js';
import { startCliHost, type CliHost } from '../support/cli.js';
import { BUILT, runNode, serviceEnv, type Finished } from '../support/process.js';
import { createScratchDatabase, type ScratchDatabase } from '../support/scratch-database.js';
import { createTestApp, type TestApp } from '../support/test-app.js';

describe('signing key rotation (keys:rotate-jwt, audit:rotate-key)', () => {
  let dir: string;
  let database: ScratchDatabase;
  let testApp: TestApp;
  let restoreEnv: () => void;
  let env: Record<string, string>;
  const phiKey = randomBytes(32).toString('base64');

  /** The built CLI in a process of its own: kept for each command family's main run. */
  const cli = (...args: string[]): Promise<Finished> => runNode(BUILT.cli, args, env);
  /** The same, through one built CLI process (see startCliHost): a start of the binary costs
   * seconds of CPU. */
  let host: CliHost | undefined;
  const hosted = async (...args: string[]): Promise<Finished> =>
    (host ??= await startCliHost()).run(args, env);
  const read = (token: string) =>
    http('GET', `${testApp.url}/fhir/Patient?_count=1`, {
      headers: { authorization: `Bearer ${token}` },
    });
  /** The kids in the JWKS of one algorithm: ES256 access-token keys, RS256 id_token keys. */
  const jwks = async (alg = 'ES256'): Promise<string[]> =>
    (await http('GET', `${testApp.url}/.well-known/jwks.json`)).body.keys
      .filter((key: { alg: string }) => key.alg === alg)
      .map((key: { kid: string }) => key.kid);

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'carevault-signing-'));
    database = await createScratchDatabase();
    const files = {
      DATA_DIR: join(dir, 'data'),
      JWT_SIGNING_KEY_FILE: join(dir, 'jwt.pem'),
      JWT_VERIFICATION_KEYS_FILE: join(dir, 'jwt-verification.pem'),
      AUDIT_SIGNING_KEY_FILE: join(dir, 'audit.pem'),
      AUDIT_TRUSTED_KEYS_FILE: join(dir, 'audit-trusted.pem'),
      AUDIT_CHECKPOINT_FILE: join(dir, 'checkpoints.jsonl'),
    };
    const pem = (key: ReturnType<typeof generateKeyPairSync>['privateKey']): string =>
      key.export({ type: 'pkcs8', format: 'pem' }).toString();
    await writeFile(
      files.JWT_SIGNING_KEY_FILE,
      pem(generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey),
      { mode: 0o600 },
    );
    await writeFile(files.AUDIT_SIGNING_KEY_FILE, pem(generateKeyPairSync('ed25519').privateKey), {
      mode: 0o600,
    });
    restoreEnv = withEnv({ DATABASE_URL: database.url, PHI_MASTER_KEY: phiKey, ...files });
    testApp = await createTestApp();
    env = serviceEnv(database.url, files.DATA_DIR, {
      ...files,
      PHI_MASTER_KEY: phiKey,
      LOG_LEVEL: 'warn',
    });
  });

  afterAll(async () => {
    await host?.close();
    await testApp?.close();
    restoreEnv();
    await database.drop();
    await rm(dir, { recursive: true, force: true });
  });

  it('keeps tokens of the old JWT key valid and published until they expire, and signs new ones with the new key', async () => {
    const before = await tokenFor(testApp, 'doctor');
    const oldKid = decodeProtectedHeader(before).kid;
    expect(await jwks()).toEqual([oldKid]);

    const rotated = await cli('keys:rotate-jwt');
    expect(rotated).toMatchObject({ code: 0 });
    expect(rotated.stdout).toMatch(
      new RegExp(
        `New JWT signing key \\S+ .* the old key ${oldKid} stays accepted and published until \\S+Z`,
      ),
    );
    // What every instance does by itself every 30 s.
    await testApp.app.get(SigningKeys).reload();

    const after = await tokenFor(testApp, 'doctor');
    const newKid = decodeProtectedHeader(after).kid;
    expect(newKid).not.toBe(oldKid);
    expect(await jwks()).toEqual([newKid, oldKid]);
    expect((await read(before)).status).toBe(200);
    expect((await read(after)).status).toBe(200);

    // Once the old key's expiry has passed, it is neither accepted nor published.
    const file = join(dir, 'jwt-verification.pem');
    const text = await readFile(file, 'utf8');
    await writeFile(
      file,
      text.replace(/expires \S+/, `expires ${new Date(Date.now() - 1000).toISOString()}`),
    );
    await testApp.app.get(SigningKeys).reload();
    expect(await jwks()).toEqual([newKid]);
    expect((await read(before)).status).toBe(401);
    expect((await read(after)).status).toBe(200);
  });

  it('rotates the id_token key with --id-token: the old one stays published, access tokens keep theirs', async () => {
    const idKid = async (): Promise<string | undefined> =>
      decodeProtectedHeader(
        await testApp.app
          .get(TokenService)
          .idToken(
            { id: randomUUID() } as UserEntity,
            { amr: ['pwd'], authTime: new Date() },
            { issuer: testApp.url, clientId: 'app' },
          ),
      ).kid;
    const accessKids = await jwks();
    const oldKid = await idKid();
    expect(await jwks('RS256')).toEqual([oldKid]);

    const rotated = await hosted('keys:rotate-jwt', '--id-token');
    expect(rotated).toMatchObject({ code: 0 });
    expect(rotated.stdout).toMatch(
      new RegExp(
        `New id_token signing key \\S+ .* the old key ${oldKid} stays published until \\S+Z`,
      ),
    );
    await testApp.app.get(SigningKeys).reload();
    const newKid = await idKid();
    expect(newKid).not.toBe(oldKid);
    expect(await jwks('RS256')).toEqual([newKid, oldKid]);
    expect(await jwks()).toEqual(accessKids);
    // Published for apps, never accepted as an access token's key.
    const token = await new SignJWT({ sub: randomUUID() })
      .setProtectedHeader({ alg: 'RS256', typ: 'at+jwt', kid: newKid })
      .setIssuer(process.env['JWT_ISSUER'] ?? 'carevault')
      .setAudience(process.env['JWT_AUDIENCE'] ?? 'carevault-api')
      .setExpirationTime('5m')
      .sign(
        createPrivateKey(await readFile(join(dir, 'data', 'id-token-signing-key.pem'), 'utf8')),
      );
    expect((await read(token)).status).toBe(401);
  });

  it('accepts at once a token another instance signed with a key rotated in since the last reload', async () => {
    const issued = await tokenFor(testApp, 'doctor');
    expect(await hosted('keys:rotate-jwt')).toMatchObject({ code: 0 });
    // Another instance that has re-read the files signs the same claims with the new key; this
    // one has not re-read them yet (its timer runs every 30 s). (Two applications in one test
    // process would share passport's strategy, so the other instance is played here.)
    const privateKey = createPrivateKey(await readFile(join(dir, 'jwt.pem'), 'utf8'));
    const kid = await calculateJwkThumbprint(await exportJWK(createPublicKey(privateKey)));
    expect(await jwks()).not.toContain(kid);
    const token = await new SignJWT(decodeJwt(issued))
      .setProtectedHeader({ alg: 'ES256', typ: 'at+jwt', kid })
      .sign(privateKey);
    expect((await read(token)).status).toBe(200);
    expect(await jwks()).toContain(kid);
  });

  it('rotates the audit signing key: old checkpoints still verify, the head is signed with the new key', async () => {
    expect(await hosted('audit:checkpoint')).toMatchObject({ code: 0 });
    const rotated = await cli('audit:rotate-key');
    expect(rotated).toMatchObject({ code: 0 });
    const [, current, retired] =
      /New audit signing key (\w+); (\w+) is trusted in .*; row \d+ signed with the new key/.exec(
        rotated.stdout,
      ) ?? [];
    expect(current).toBeDefined();
    expect(current).not.toBe(retired);

    const verified = await hosted('audit:verify');
    expect(verified).toMatchObject({ code: 0 });
    expect(verified.stdout).toMatch(
      /Audit chain verified: \d+ rows .*, [2-9]\d* signed checkpoint\(s\)/,
    );
    expect(verified.stderr).not.toMatch(/not trusted/);
    const checkpoints = (await readFile(join(dir, 'checkpoints.jsonl'), 'utf8'))
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line) as { keyId: string });
    expect(new Set(checkpoints.map((checkpoint) => checkpoint.keyId))).toEqual(
      new Set([retired, current]),
    );

    // Without the trusted keys file, the old key's checkpoints are set aside, and said so.
    await rm(join(dir, 'audit-trusted.pem'));
    const untrusted = await hosted('audit:verify');
    expect(untrusted.stderr).toMatch(
      new RegExp(`signed by keys not trusted here \\(${retired}\\)`),
    );
  });
});
