import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { buildPatient } from '../support/factories.js';
import { authorizedHttp, http } from '../support/http.js';
import {
  BUILT,
  childEnv,
  runNode,
  startService,
  type Finished,
  type RunningService,
} from '../support/process.js';
import { createScratchDatabase, type ScratchDatabase } from '../support/scratch-database.js';

const run = promisify(execFile);

/** Debian's SoftHSM2 (package softhsm2, which .ci/run installs): a PKCS#11 token in software. */
const SOFTHSM = process.env['SOFTHSM2_MODULE'] ?? '/usr/lib/softhsm/libsofthsm2.so';
if (!existsSync(SOFTHSM)) {
  process.stderr.write(
    `PKCS#11 key custody test skipped: no SoftHSM2 at ${SOFTHSM}. ` +
      'Install Debian\'s "softhsm2" package (as .ci/run does) or set SOFTHSM2_MODULE.\n',
  );
}
const describeWithHsm = existsSync(SOFTHSM) ? describe : describe.skip;

/** Reads the KEK's attributes through PKCS#11 in a process of its own (one library per process). */
const INSPECT_KEK = `
import { Module, ObjectClass, SessionFlag, UserType } from 'graphene-pk11';
const [lib, token, pin, label] = process.argv.slice(1);
const mod = Module.load(lib); mod.initialize();
const slots = mod.getSlots(true); let slot;
for (let i = 0; i < slots.length; i++) if (slots.items(i).getToken().label.trim() === token) slot = slots.items(i);
const session = slot.open(SessionFlag.SERIAL_SESSION | SessionFlag.RW_SESSION);
session.login(pin, UserType.USER);
const keys = session.find({ class: ObjectClass.SECRET_KEY, label });
const key = keys.items(0).toType();
const attributes = key.getAttribute({ token: null, sensitive: null, extractable: null, neverExtractable: null });
let value = 'readable';
try { key.getAttribute('value'); } catch (error) { value = error.message; }
console.log(JSON.stringify({ count: keys.length, ...attributes, value }));
mod.finalize();
`;

describeWithHsm('PHI keys wrapped by an HSM key (KEY_CUSTODY=pkcs11, SoftHSM2)', () => {
  const token = 'carevault-test';
  let dir: string;
  let database: ScratchDatabase;
  let env: Record<string, string>;
  let keyFile: string;
  let service: RunningService | undefined;

  const cli = (args: string[], extra: Record<string, string> = {}): Promise<Finished> =>
    runNode(BUILT.cli, args, { ...env, ...extra }, { timeoutMs: 60_000 });

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'carevault-hsm-'));
    await writeFile(
      join(dir, 'softhsm2.conf'),
      `directories.tokendir = ${dir}\nobjectstore.backend = file\nlog.level = ERROR\n`,
    );
    await writeFile(join(dir, 'pin'), '5678\n', { mode: 0o600 });
    const hsmEnv = { ...process.env, SOFTHSM2_CONF: join(dir, 'softhsm2.conf') };
    await run(
      'softhsm2-util',
      ['--init-token', '--free', '--label', token, '--so-pin', '1234', '--pin', '5678'],
      { env: hsmEnv },
    );
    database = await createScratchDatabase();
    keyFile = join(dir, 'phi-keys.json');
    env = childEnv({
      DATABASE_URL: database.url,
      DATA_DIR: join(dir, 'data'),
      LOG_LEVEL: 'warn',
      SOFTHSM2_CONF: join(dir, 'softhsm2.conf'),
      KEY_CUSTODY: 'pkcs11',
      PKCS11_MODULE: SOFTHSM,
      PKCS11_TOKEN_LABEL: token,
      PKCS11_PIN_FILE: join(dir, 'pin'),
      PHI_KEY_FILE: keyFile,
    });
  });

  afterAll(async () => {
    await service?.stop();
    await database.drop();
    await rm(dir, { recursive: true, force: true });
  });

  it('keys:init makes a non-extractable KEK in the token and a key file of wrapped keys only', async () => {
    const missing = await cli(['keys:init']);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(
      /holds no key labelled carevault-kek: create it with keys:init --create-kek/,
    );

    const init = await cli(['keys:init', '--create-kek']);
    expect(init).toMatchObject({ code: 0 });
    expect(init.stdout).toMatch(/PHI key k[0-9a-f]{12}, wrapped by the pkcs11 key carevault-kek/);
    const file = JSON.parse(await readFile(keyFile, 'utf8'));
    expect(file).toMatchObject({
      version: 2,
      custody: { provider: 'pkcs11', key: 'carevault-kek' },
    });
    expect(Object.keys(file.keys[0]).sort()).toEqual(['createdAt', 'id', 'wrapped']);

    const { stdout } = await run(
      process.execPath,
      ['--input-type=module', '-e', INSPECT_KEK, SOFTHSM, token, '5678', 'carevault-kek'],
      { env: { ...process.env, SOFTHSM2_CONF: env['SOFTHSM2_CONF'] }, cwd: process.cwd() },
    );
    expect(JSON.parse(stdout)).toEqual({
      count: 1,
      token: true,
      sensitive: true,
      extractable: false,
      neverExtractable: true,
      value: expect.stringContaining('CKR_ATTRIBUTE_SENSITIVE') as unknown,
    });
    expect((await cli(['keys:init'])).stderr).toMatch(/exists: a key file is never overwritten/);
  });

  it('serves PHI under the wrapped key, rotates to a new wrapped key, and says why it cannot start', async () => {
    // The service runs as a process of its own: SoftHSM reads SOFTHSM2_CONF from the real
    // environment, which a Jest test cannot change for its own process.
    const password = 'Correct-Horse-Battery-4713';
    expect(
      await runNode(
        BUILT.cli,
        ['user:create', '--username', 'hsm-doctor', '--role', 'doctor'],
        env,
        {
          stdin: `${password}\n`,
        },
      ),
    ).toMatchObject({ code: 0 });
    service = await startService({ ...env, PORT: '0', LOG_LEVEL: 'info' });
    const session = await http('POST', `${service.url}/auth/login`, {
      body: { username: 'hsm-doctor', password },
      headers: { 'content-type': 'application/json' },
    });
    const api = authorizedHttp(session.body.access_token);
    const patient = buildPatient();
    const created = await api('POST', `${service.url}/fhir/Patient`, {
      body: patient,
      headers: { 'content-type': 'application/fhir+json' },
    });
    expect(created.status).toBe(201);
    const family = (patient['name'] as { family: string }[])[0]!.family;
    const found = await api('GET', `${service.url}/fhir/Patient?family=${family}`);
    expect(
      found.body.entry.map((entry: { resource: { id: string } }) => entry.resource.id),
    ).toEqual([created.body.id]);

    const rotated = await cli(['keys:rotate']);
    expect(rotated).toMatchObject({ code: 0 });
    const file = JSON.parse(await readFile(keyFile, 'utf8'));
    expect(file.keys).toHaveLength(2);
    expect(file.keys.every((key: object) => !('key' in key))).toBe(true);
    // The running service adopts the new key (it unwraps it through the HSM) and reads on.
    const read = await api('GET', `${service.url}/fhir/Patient/${created.body.id}`);
    expect(read.body.name[0].family).toBe(family);

    await writeFile(join(dir, 'wrong-pin'), '0000\n');
    const wrongPin = await cli(['keys:status'], { PKCS11_PIN_FILE: join(dir, 'wrong-pin') });
    expect(wrongPin.code).toBe(1);
    expect(wrongPin.stderr).toMatch(/PKCS#11 login to carevault-test failed: .*CKR_PIN_INCORRECT/);

    const altered = join(dir, 'altered.json');
    const tampered = JSON.parse(await readFile(keyFile, 'utf8'));
    const wrapped = Buffer.from(tampered.keys[0].wrapped, 'base64');
    wrapped[20]! ^= 1;
    tampered.keys[0].wrapped = wrapped.toString('base64');
    await writeFile(altered, JSON.stringify(tampered));
    const broken = await cli(['keys:status'], { PHI_KEY_FILE: altered });
    expect(broken.code).toBe(1);
    expect(broken.stderr).toMatch(/does not unwrap with the HSM key carevault-kek/);
  });
});
