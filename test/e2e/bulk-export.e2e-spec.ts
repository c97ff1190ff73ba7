import { randomBytes, randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import pg from 'pg';
import { AppConfig } from '../../src/config/config.js';
import { AuditContext } from '../../src/audit/audit-context.js';
import { UsersService } from '../../src/auth/users.service.js';
import { UnitOfWork } from '../../src/database/unit-of-work.js';
import { CHUNK_CHARACTERS } from '../../src/fhir/export/export-files.js';
import { FhirService } from '../../src/fhir/fhir.service.js';
import { HL7_USER } from '../../src/hl7/hl7-user.js';
import { createUser, enableMfa, loginWithMfa, tokenFor, type TestUser } from '../support/auth.js';
import { withEnv } from '../support/env.js';
import { http, type HttpResult } from '../support/http.js';
import { createScratchDatabase, type ScratchDatabase } from '../support/scratch-database.js';
import { createTestApp, type TestApp } from '../support/test-app.js';

const RETENTION_SECONDS = 4;

describe('Bulk Data export ($export)', () => {
  let testApp: TestApp;
  let restoreEnv: () => void;
  let authorization: string;
  let doctor: TestUser;
  let db: pg.Client;
  let database: ScratchDatabase;
  const family = `Exportable-${randomUUID().slice(0, 8)}`;
  const ids: Record<string, string> = {};

  const get = (url: string, headers: Record<string, string> = {}): Promise<HttpResult> =>
    http('GET', url.startsWith('http') ? url : `${testApp.url}${url}`, {
      headers: { authorization, ...headers },
    });
  const kickOff = (path: string, headers: Record<string, string> = {}): Promise<HttpResult> =>
    get(path, { prefer: 'respond-async', accept: 'application/fhir+json', ...headers });
  const create = async (resource: Record<string, unknown>): Promise<string> => {
    const res = await http('POST', `${testApp.url}/fhir/${String(resource['resourceType'])}`, {
      body: resource,
      headers: { authorization },
    });
    expect(res.status).toBe(201);
    return res.body.id as string;
  };

  /** Polls the status URL until the manifest comes (with the token that started the export). */
  async function manifestOf(
    kickedOff: HttpResult,
    as = authorization,
  ): Promise<{
    transactionTime: string;
    request: string;
    requiresAccessToken: boolean;
    output: { type: string; url: string; count: number }[];
    error: { type: string; url: string; count: number }[];
  }> {
    expect(kickedOff.status).toBe(202);
    const status = kickedOff.headers.get('content-location')!;
    for (let attempt = 0; attempt < 200; attempt++) {
      const res = await get(status, { authorization: as });
      if (res.status === 200) return res.body;
      expect(res.status).toBe(202);
      expect(res.headers.get('x-progress')).toBeTruthy();
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    throw new Error('export did not complete');
  }

  const jobOf = (kickedOff: HttpResult): string =>
    /\$export-status\/([0-9a-f-]+)$/.exec(kickedOff.headers.get('content-location')!)![1]!;

  /** The job's stored files: name, and its lines as stored. */
  async function storedFiles(job: string): Promise<Map<string, string[]>> {
    const { rows } = await db.query<{ file: string; lines: string }>(
      'SELECT file, lines FROM export_chunk WHERE job_id = $1 ORDER BY file, first_line',
      [job],
    );
    const files = new Map<string, string[]>();
    for (const row of rows) {
      files.set(row.file, [...(files.get(row.file) ?? []), ...row.lines.split('\n')]);
    }
    return files;
  }

  /** The doctor's token narrowed to SMART scopes (and a patient), as an app would hold it. */
  const scopedToken = async (scope: string, patient?: string): Promise<string> => {
    const res = await http('POST', `${testApp.url}/auth/token/scoped`, {
      body: { scope, ...(patient ? { patient } : {}) },
      headers: { authorization, 'content-type': 'application/json' },
    });
    expect(res.status).toBe(200);
    return `Bearer ${res.body.access_token as string}`;
  };

  /** Until a statement starting so waits for a lock (one the test holds), as `watcher` sees. */
  async function waitingOn(watcher: pg.Client, statement: string): Promise<void> {
    for (let attempt = 0; attempt < 200; attempt++) {
      const { rowCount } = await watcher.query(
        `SELECT 1 FROM pg_stat_activity
          WHERE datname = current_database() AND wait_event_type = 'Lock' AND query LIKE $1`,
        [`${statement}%`],
      );
      if (rowCount) return;
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
    throw new Error(`no ${statement} came to wait`);
  }

  /**
   * Kicks an export off and runs `change` once it has begun, before it reads beyond its first
   * file: that file cannot be stored while the test holds the table.
   */
  async function kickOffThenChange(path: string, change: () => Promise<void>): Promise<HttpResult> {
    const watcher = new pg.Client({ connectionString: database.url });
    await watcher.connect();
    try {
      await db.query('BEGIN');
      await db.query('LOCK TABLE export_chunk IN ACCESS EXCLUSIVE MODE');
      const kickedOff = await kickOff(path);
      expect(kickedOff.status).toBe(202);
      await waitingOn(watcher, 'INSERT INTO export_chunk');
      await change();
      return kickedOff;
    } finally {
      await db.query('COMMIT');
      await watcher.end();
    }
  }

  const jobExists = async (job: string): Promise<boolean> =>
    (await db.query('SELECT 1 FROM export_job WHERE id = $1', [job])).rowCount === 1;

  async function download(url: string, as = authorization): Promise<Record<string, unknown>[]> {
    const res = await get(url, { authorization: as });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('application/fhir+ndjson');
    return res.text
      .split('\n')
      .filter((line) => line !== '')
      .map((line) => JSON.parse(line) as Record<string, unknown>);
  }

  beforeAll(async () => {
    // A database of its own: a test below swaps a ciphertext between two rows, which a search
    // of another suite on the shared database could meet (as a 500) while it lasts.
    database = await createScratchDatabase();
    restoreEnv = withEnv({
      EXPORT_RETENTION_SECONDS: String(RETENTION_SECONDS),
      DATABASE_URL: database.url,
      // Nothing listens there: the Subscription below is exported, never notified.
      SUBSCRIPTION_ENDPOINTS: 'http://127.0.0.1:9/hooks/',
    });
    testApp = await createTestApp();
    db = new pg.Client({ connectionString: database.url });
    await db.connect();
    doctor = await createUser(testApp, ['doctor']);
    const secret = await enableMfa(testApp, doctor);
    authorization = `Bearer ${(await loginWithMfa(testApp, doctor, secret)).access_token}`;

    ids['ana'] = await create({ resourceType: 'Patient', name: [{ family, given: ['Ana'] }] });
    ids['ben'] = await create({ resourceType: 'Patient', name: [{ family, given: ['Ben'] }] });
    for (const who of ['ana', 'ben']) {
      ids[`${who}-obs`] = await create({
        resourceType: 'Observation',
        status: 'final',
        code: { text: `export-${family}` },
        subject: { reference: `Patient/${ids[who]}` },
      });
    }
    ids['restricted'] = await create({
      resourceType: 'Observation',
      status: 'final',
      code: { text: `export-${family}` },
      subject: { reference: `Patient/${ids['ana']}` },
      meta: {
        security: [
          { system: 'http://terminology.hl7.org/CodeSystem/v3-Confidentiality', code: 'R' },
        ],
      },
    });
    ids['group'] = await create({
      resourceType: 'Group',
      type: 'person',
      actual: true,
      member: [{ entity: { reference: `Patient/${ids['ana']}` } }],
    });
  });

  afterAll(async () => {
    await db.end();
    await testApp.close();
    restoreEnv();
    await database.drop();
  });

  it('refuses kick-offs that are not asynchronous, not NDJSON, malformed, or without the right or a recent MFA', async () => {
    expect((await get('/fhir/Patient/$export')).status).toBe(400);
    for (const query of [
      '_outputFormat=application/json',
      '_since=yesterday',
      '_since=2026-02-30T00:00:00Z',
      '_typeFilter=x',
    ]) {
      const res = await kickOff(`/fhir/Patient/$export?${query}`);
      expect({ query, status: res.status }).toEqual({ query, status: 400 });
      expect(res.body.resourceType).toBe('OperationOutcome');
    }
    expect((await kickOff('/fhir/$export?_type=NotAType')).status).toBe(400);

    const withoutMfa = `Bearer ${await tokenFor(testApp, 'doctor')}`;
    const stale = await kickOff('/fhir/Patient/$export', { authorization: withoutMfa });
    expect(stale.status).toBe(403);
    expect(stale.body.issue[0].diagnostics).toContain('MFA in the last 5 minutes');
    const nurse = `Bearer ${await tokenFor(testApp, 'nurse')}`;
    expect((await kickOff('/fhir/Patient/$export', { authorization: nurse })).status).toBe(403);
    expect((await kickOff(`/fhir/Group/${randomUUID()}/$export`)).status).toBe(404);
  });

  it('takes a POST kick-off with a Parameters body, and narrows it to the patients it names', async () => {
    const post = (path: string, body: unknown, headers: Record<string, string> = {}) =>
      http('POST', `${testApp.url}${path}`, {
        body,
        headers: {
          authorization,
          prefer: 'respond-async',
          accept: 'application/fhir+json',
          ...headers,
        },
      });
    const parameters = (...parameter: Record<string, unknown>[]) => ({
      resourceType: 'Parameters',
      parameter,
    });
    const patient = (who: string) => ({
      name: 'patient',
      valueReference: { reference: `Patient/${ids[who] ?? who}` },
    });
    const types = { name: '_type', valueString: 'Patient,Observation' };
    const idsIn = async (manifest: Awaited<ReturnType<typeof manifestOf>>, type: string) =>
      (await download(manifest.output.find((file) => file.type === type)!.url)).map(
        (resource) => resource['id'],
      );

    const kickedOff = await post(
      '/fhir/Patient/$export',
      parameters(types, patient('ben'), {
        name: '_outputFormat',
        valueString: 'application/fhir+ndjson',
      }),
    );
    const manifest = await manifestOf(kickedOff);
    // The URL without its parameters, as the IG has it: no patient's id in the job's row.
    expect(manifest.request).toBe(`${testApp.url}/fhir/Patient/$export`);
    expect(await idsIn(manifest, 'Patient')).toEqual([ids['ben']]);
    expect(await idsIn(manifest, 'Observation')).toEqual([ids['ben-obs']]);
    const { rows } = await db.query<{ action: string }>(
      `SELECT action FROM audit_event WHERE method = 'POST' AND route = '/fhir/Patient/$export'`,
    );
    expect(rows.map((row) => row.action)).toEqual(['export']);

    // A Group's export narrowed to a member; one who is not a member is named in a 400.
    const group = `/fhir/Group/${ids['group']}/$export`;
    const ofAna = await manifestOf(await post(group, parameters(types, patient('ana'))));
    expect(await idsIn(ofAna, 'Patient')).toEqual([ids['ana']]);
    const notMember = await post(group, parameters(types, patient('ben')));
    expect(notMember.status).toBe(400);
    expect(notMember.body.issue[0].diagnostics).toContain(`Patient/${ids['ben']}`);

    const unknown = randomUUID();
    for (const [path, body, diagnostics] of [
      ['/fhir/Patient/$export', parameters(patient(unknown)), `Patient/${unknown}`],
      ['/fhir/$export', parameters(patient('ana')), 'not a system-level export'],
      ['/fhir/$export', parameters({ name: '_elements', valueString: 'id' }), '_elements'],
      ['/fhir/$export', parameters({ name: '_since', valueString: '2026' }), 'valueInstant'],
      ['/fhir/$export', { resourceType: 'Bundle' }, 'Parameters'],
      ['/fhir/$export?_type=Patient', parameters(), 'in its body'],
    ] as const) {
      const refused = await post(path, body);
      expect({ path, status: refused.status }).toEqual({ path, status: 400 });
      expect(refused.body.issue[0].diagnostics).toContain(diagnostics);
    }
    const withoutMfa = `Bearer ${await tokenFor(testApp, 'doctor')}`;
    expect((await post('/fhir/$export', parameters(), { authorization: withoutMfa })).status).toBe(
      403,
    );
  });

  it('lets a token with the export right on other types than Patient take a system-level export of them', async () => {
    const observations = await scopedToken('user/Observation.rs');
    const kickedOff = await kickOff('/fhir/$export?_type=Observation', {
      authorization: observations,
    });
    const manifest = await manifestOf(kickedOff, observations);
    expect(manifest.output.map((file) => file.type)).toEqual(['Observation']);
    const exported = await download(manifest.output[0]!.url, observations);
    expect(exported.map((resource) => resource['id'])).toEqual(
      expect.arrayContaining([ids['ana-obs'], ids['ben-obs']]),
    );
    // Without _type: the types it may export, Observation alone.
    const all = await manifestOf(
      await kickOff('/fhir/$export', { authorization: observations }),
      observations,
    );
    expect(all.output.map((file) => file.type)).toEqual(['Observation']);

    // Patient- and Group-level exports choose by patient: they need the right on Patient.
    for (const path of [
      '/fhir/$export?_type=Patient',
      '/fhir/Patient/$export?_type=Observation',
      `/fhir/Group/${ids['group']}/$export?_type=Observation`,
    ]) {
      const res = await kickOff(path, { authorization: observations });
      expect({ path, status: res.status }).toEqual({ path, status: 403 });
    }
    // A token that may export nothing is refused, as before.
    const reader = await scopedToken('user/Observation.r');
    expect((await kickOff('/fhir/$export', { authorization: reader })).status).toBe(403);
    expect(
      (await get(kickedOff.headers.get('content-location')!, { authorization: reader })).status,
    ).toBe(403);
  });

  it('narrows a type to what its _typeFilter searches match, and refuses filters it would not keep', async () => {
    const filter = encodeURIComponent(`Observation?subject=Patient/${ids['ana']}`);
    const kickedOff = await kickOff(
      `/fhir/Patient/$export?_type=Patient,Observation&_typeFilter=${filter}`,
    );
    const manifest = await manifestOf(kickedOff);
    const byType: Record<string, unknown[]> = {};
    for (const file of manifest.output) {
      byType[file.type] = (await download(file.url)).map((resource) => resource['id']);
    }
    // Ana's Observation alone (her restricted one stays out); Patients are not filtered.
    expect(byType['Observation']).toEqual([ids['ana-obs']]);
    expect(byType['Patient']).toEqual(expect.arrayContaining([ids['ana'], ids['ben']]));
    // Two filters of one type are OR-ed; a comma inside a filter stays in it.
    const either = [
      encodeURIComponent(`Observation?subject=Patient/${ids['ben']}`),
      encodeURIComponent(
        `Observation?subject=Patient/${ids['ana']},Patient/${ids['ben']}&status=cancelled`,
      ),
    ].join(',');
    const second = await manifestOf(
      await kickOff(`/fhir/Patient/$export?_type=Observation&_typeFilter=${either}`),
    );
    const found = await download(second.output[0]!.url);
    expect(found.map((resource) => resource['id'])).toEqual([ids['ben-obs']]);

    const refusal = async (query: string) => {
      const res = await kickOff(`/fhir/Patient/$export?${query}`);
      return `${res.status} ${res.body.issue[0].diagnostics}`;
    };
    expect(await refusal(`_typeFilter=${encodeURIComponent('Patient?family=Smith')}`)).toBe(
      '400 Stored criteria may not search direct identifiers (family): name the resource by id instead, such as subject=Patient/123',
    );
    expect(
      await refusal(
        `_type=Patient,Observation&_typeFilter=${encodeURIComponent('Observation?code-value-string=8251-1$Zqxcanaryfam')}`,
      ),
    ).toMatch(/^400 Stored criteria may not search direct identifiers \(code-value-string\)/);
    expect(
      await refusal(`_type=Patient&_typeFilter=${encodeURIComponent('Observation?status=final')}`),
    ).toBe('400 _typeFilter names Observation, which _type leaves out');
    expect(await refusal(`_typeFilter=${encodeURIComponent('Observation?colour=blue')}`)).toMatch(
      /^400 /,
    );
    // Whole resources went out to a client that asked for their ids alone.
    expect(
      await refusal(`_typeFilter=${encodeURIComponent('Observation?status=final&_elements=id')}`),
    ).toBe(
      '400 _typeFilter selects resources, it does not narrow them: _elements is not supported',
    );
  });

  it("exports the patients' compartments as NDJSON, encrypted at rest, restricted records left out, and audited", async () => {
    const kickedOff = await kickOff('/fhir/Patient/$export?_type=Patient,Observation,Organization');
    const manifest = await manifestOf(kickedOff);
    expect(manifest.requiresAccessToken).toBe(true);
    expect(manifest.request).toContain('/fhir/Patient/$export?_type=Patient,Observation');
    // Organization is outside every patient compartment: no file for it.
    expect(manifest.output.map((file) => file.type).sort()).toEqual(['Observation', 'Patient']);
    const job = jobOf(kickedOff);

    const byType: Record<string, Record<string, unknown>[]> = {};
    for (const file of manifest.output) {
      byType[file.type] = await download(file.url);
      expect(byType[file.type]).toHaveLength(file.count);
    }
    const patientIds = byType['Patient']!.map((patient) => patient['id']);
    expect(patientIds).toEqual(expect.arrayContaining([ids['ana'], ids['ben']]));
    const observationIds = byType['Observation']!.map((observation) => observation['id']);
    expect(observationIds).toEqual(expect.arrayContaining([ids['ana-obs'], ids['ben-obs']]));
    expect(observationIds).not.toContain(ids['restricted']);

    // At rest, each line is a PHI envelope: no name, no JSON.
    const files = await storedFiles(job);
    // errors.ndjson as well on a shared database holding rows under PHI keys this run lacks.
    expect([...files.keys()].filter((file) => file !== 'errors.ndjson').sort()).toEqual([
      'Observation.ndjson',
      'Patient.ndjson',
    ]);
    const raw = files.get('Patient.ndjson')!;
    expect(raw).toHaveLength(byType['Patient']!.length);
    expect(raw.join('\n')).not.toContain(family);
    for (const line of raw) expect(line).toMatch(/^cv1\.k[0-9a-f]{12}\./);

    // Someone else cannot see the job or its files.
    const other = `Bearer ${await tokenFor(testApp, 'doctor')}`;
    expect(
      (await get(kickedOff.headers.get('content-location')!, { authorization: other })).status,
    ).toBe(404);
    expect((await get(manifest.output[0]!.url, { authorization: other })).status).toBe(404);

    // The finished export and each download are audited with the patients they hold.
    const { rows } = await db.query<{
      source: string;
      route: string | null;
      patient_ids: string[];
    }>(
      `SELECT source, route, patient_ids FROM audit_event
        WHERE (source = 'system' AND action = 'export' AND detail LIKE $1)
           OR (route = '/fhir/$export-file/:job/:file' AND status_code = 200
               AND $2 = ANY (patient_ids))`,
      [`job=${job} %`, ids['ben']],
    );
    const finished = rows.find((row) => row.source === 'system')!;
    expect(finished.patient_ids).toEqual(expect.arrayContaining([ids['ana'], ids['ben']]));
    expect(rows.filter((row) => row.source === 'http').length).toBeGreaterThanOrEqual(2);
  });

  it('keeps a job to tokens of the scopes and patient that started it, even of the same user', async () => {
    const kickedOff = await kickOff('/fhir/Patient/$export?_type=Patient');
    const manifest = await manifestOf(kickedOff);
    const status = kickedOff.headers.get('content-location')!;
    const job = jobOf(kickedOff);

    // The doctor's own token, narrowed to Ana: every patient's export is not its to see.
    const anas = await scopedToken('patient/*.rs', ids['ana']);
    expect((await get(status, { authorization: anas })).status).toBe(404);
    expect((await get(manifest.output[0]!.url, { authorization: anas })).status).toBe(404);
    const deleted = await http('DELETE', status, { headers: { authorization: anas } });
    expect(deleted.status).toBe(404);
    const narrowed = await scopedToken('user/Patient.rs');
    expect((await get(status, { authorization: narrowed })).status).toBe(404);
    expect(await jobExists(job)).toBe(true);
    expect((await get(status)).status).toBe(200);

    // What the scoped token starts is its own, and holds its patient alone.
    const own = await kickOff('/fhir/Patient/$export?_type=Patient', { authorization: anas });
    const owned = await manifestOf(own, anas);
    const patients = await download(owned.output[0]!.url, anas);
    expect(patients.map((patient) => patient['id'])).toEqual([ids['ana']]);
    expect((await get(own.headers.get('content-location')!)).status).toBe(404);
    expect((await get(owned.output[0]!.url)).status).toBe(404);
    const removed = await http('DELETE', own.headers.get('content-location')!, {
      headers: { authorization: anas },
    });
    expect(removed.status).toBe(202);
    expect(await jobExists(jobOf(own))).toBe(false);
  });

  it('keeps a job from the account once its sessions end: enabled again, it starts afresh', async () => {
    const user = await createUser(testApp, ['doctor']);
    const secret = await enableMfa(testApp, user);
    const before = `Bearer ${(await loginWithMfa(testApp, user, secret)).access_token}`;
    const kickedOff = await kickOff('/fhir/Patient/$export?_type=Patient', {
      authorization: before,
    });
    const manifest = await manifestOf(kickedOff, before);
    const status = kickedOff.headers.get('content-location')!;
    const users = testApp.app.get(UsersService);
    await users.disable(user.username);
    await users.enable(user.username);
    // As if the account's last code were long past: it signs in with MFA again.
    await db.query('UPDATE app_user SET totp_last_step = NULL WHERE id = $1', [user.id]);
    const after = `Bearer ${(await loginWithMfa(testApp, user, secret)).access_token}`;
    expect((await get(status, { authorization: after })).status).toBe(404);
    expect((await get(manifest.output[0]!.url, { authorization: after })).status).toBe(404);
    // What it starts now is its own.
    const again = await kickOff('/fhir/Patient/$export?_type=Patient', { authorization: after });
    expect((await manifestOf(again, after)).output.length).toBeGreaterThan(0);
  });

  it("stops a job still running from before the account's sessions ended, which no token can cancel", async () => {
    const user = await createUser(testApp, ['doctor']);
    const secret = await enableMfa(testApp, user);
    // A job of the first session epoch, still heard from (another instance runs it).
    const running = randomUUID();
    await db.query(
      `INSERT INTO export_job (id, user_id, session_epoch, level, status, progress,
                               transaction_time, request_url, base_url, heartbeat_at)
       VALUES ($1, $2, 0, 'system', 'in-progress', 'exporting Patient', now(), $3, $3, now())`,
      [running, user.id, `${testApp.url}/fhir`],
    );
    const users = testApp.app.get(UsersService);
    await users.disable(user.username);
    await users.enable(user.username);
    await db.query('UPDATE app_user SET totp_last_step = NULL WHERE id = $1', [user.id]);
    const after = `Bearer ${(await loginWithMfa(testApp, user, secret)).access_token}`;
    // The old job is not this token's to wait for or cancel: it does not hold the account up.
    expect((await get(`/fhir/$export-status/${running}`, { authorization: after })).status).toBe(
      404,
    );
    const again = await kickOff('/fhir/Patient/$export?_type=Patient', { authorization: after });
    expect(again.status).toBe(202);
    const { rows } = await db.query('SELECT status FROM export_job WHERE id = $1', [running]);
    expect(rows).toEqual([{ status: 'failed' }]);
    await manifestOf(again, after);
  });

  it.each([
    ['between its types', 'Patient,Observation'],
    ['after its last page', 'Patient'],
  ])("stops a job of its own instance once the account's sessions end, %s", async (_, types) => {
    // It read and stored PHI on until it finished, in files that no token could open any more.
    const user = await createUser(testApp, ['doctor']);
    const secret = await enableMfa(testApp, user);
    const token = `Bearer ${(await loginWithMfa(testApp, user, secret)).access_token}`;
    const watcher = new pg.Client({ connectionString: database.url });
    await watcher.connect();
    let job: string;
    try {
      // The first type's file cannot be stored while the test holds the table.
      await db.query('BEGIN');
      await db.query('LOCK TABLE export_chunk IN ACCESS EXCLUSIVE MODE');
      const kickedOff = await kickOff(`/fhir/$export?_type=${types}`, {
        authorization: token,
      });
      expect(kickedOff.status).toBe(202);
      job = jobOf(kickedOff);
      await waitingOn(watcher, 'INSERT INTO export_chunk');
      await testApp.app.get(UsersService).disable(user.username);
    } finally {
      await db.query('COMMIT');
      await watcher.end();
    }
    let status = 'in-progress';
    for (let attempt = 0; attempt < 200 && status === 'in-progress'; attempt++) {
      await new Promise((resolve) => setTimeout(resolve, 50));
      const { rows } = await db.query<{ status: string }>(
        'SELECT status FROM export_job WHERE id = $1',
        [job],
      );
      status = rows[0]!.status;
    }
    expect(status).toBe('failed');
    expect((await storedFiles(job)).size).toBe(0);
    const { rows: audited } = await db.query<{ outcome: string }>(
      `SELECT outcome FROM audit_event
        WHERE source = 'system' AND action = 'export' AND detail LIKE $1`,
      [`job=${job} %`],
    );
    expect(audited).toEqual([{ outcome: 'failure' }]);
  });

  it("exports a Group's members only, and cancels and removes an export on DELETE", async () => {
    const kickedOff = await kickOff(
      `/fhir/Group/${ids['group']}/$export?_type=Patient,Observation`,
    );
    const manifest = await manifestOf(kickedOff);
    const patients = await download(manifest.output.find((file) => file.type === 'Patient')!.url);
    expect(patients.map((patient) => patient['id'])).toEqual([ids['ana']]);
    const observations = await download(
      manifest.output.find((file) => file.type === 'Observation')!.url,
    );
    expect(observations.map((observation) => observation['id'])).toEqual([ids['ana-obs']]);

    const status = kickedOff.headers.get('content-location')!;
    const job = jobOf(kickedOff);
    expect((await storedFiles(job)).size).toBeGreaterThan(0);
    const deleted = await http('DELETE', status, { headers: { authorization } });
    expect(deleted.status).toBe(202);
    expect((await get(status)).status).toBe(404);
    expect(await jobExists(job)).toBe(false);
    expect((await storedFiles(job)).size).toBe(0);
  });

  it('leaves out the members a Group no longer has: inactive, or their period ended', async () => {
    const cleo = await create({ resourceType: 'Patient', name: [{ family, given: ['Cleo'] }] });
    const group = await create({
      resourceType: 'Group',
      type: 'person',
      actual: true,
      member: [
        { entity: { reference: `Patient/${ids['ana']}` }, period: { start: '2020-01-01' } },
        { entity: { reference: `Patient/${ids['ben']}` }, inactive: true },
        { entity: { reference: `Patient/${cleo}` }, period: { start: '2020', end: '2024-03' } },
      ],
    });
    const manifest = await manifestOf(
      await kickOff(`/fhir/Group/${group}/$export?_type=Patient,Observation`),
    );
    const exported = async (type: string) =>
      (await download(manifest.output.find((file) => file.type === type)!.url)).map(
        (resource) => resource['id'],
      );
    expect(await exported('Patient')).toEqual([ids['ana']]);
    expect(await exported('Observation')).toEqual([ids['ana-obs']]);
  });

  it("exports the members' documents (Binary) through their securityContext", async () => {
    const letter = await create({
      resourceType: 'DocumentReference',
      status: 'current',
      subject: { reference: `Patient/${ids['ana']}` },
      content: [{ attachment: { contentType: 'text/plain', title: 'Letter' } }],
    });
    const binary = (securityContext?: string) =>
      create({
        resourceType: 'Binary',
        contentType: 'text/plain',
        data: Buffer.from(`letter ${family}`).toString('base64'),
        ...(securityContext ? { securityContext: { reference: securityContext } } : {}),
      });
    const anaLetter = await binary(`DocumentReference/${letter}`);
    const anaDirect = await binary(`Patient/${ids['ana']}`);
    const benDirect = await binary(`Patient/${ids['ben']}`);
    const unattached = await binary();
    const manifest = await manifestOf(
      await kickOff(`/fhir/Group/${ids['group']}/$export?_type=Binary`),
    );
    const binaries = await download(manifest.output.find((file) => file.type === 'Binary')!.url);
    const exported = binaries.map((resource) => resource['id']);
    expect(exported.sort()).toEqual([anaLetter, anaDirect].sort());
    expect(exported).not.toContain(benDirect);
    expect(exported).not.toContain(unattached);
  });

  it('has a version committed after an export read its type in the next export, _since the first', async () => {
    // A write whose transaction stays open across the first export (a large transaction Bundle,
    // a feed's message): its version is stamped before that export's kick-off, committed after.
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    let created: string | undefined;
    const writing = testApp.app.get(UnitOfWork).run(async () => {
      const patient = { resourceType: 'Patient', name: [{ family, given: ['Held'] }] };
      created = (await testApp.app.get(FhirService).create(HL7_USER, 'Patient', patient)).id;
      await held;
    });
    while (!created) await new Promise((resolve) => setTimeout(resolve, 10));
    await new Promise((resolve) => setTimeout(resolve, 20));
    const first = await manifestOf(await kickOff('/fhir/$export?_type=Patient'));
    const firstIds = (await Promise.all(first.output.map((file) => download(file.url))))
      .flat()
      .map((patient) => patient['id']);
    release();
    await writing;
    const since = encodeURIComponent(first.transactionTime);
    const next = await manifestOf(await kickOff(`/fhir/$export?_type=Patient&_since=${since}`));
    const nextIds = (await Promise.all(next.output.map((file) => download(file.url))))
      .flat()
      .map((patient) => patient['id']);
    expect({ first: firstIds.includes(created), next: nextIds.includes(created) }).toEqual({
      first: false,
      next: true,
    });
  });

  it('exports only what changed after _since', async () => {
    const since = new Date().toISOString();
    await new Promise((resolve) => setTimeout(resolve, 20));
    const fresh = await create({
      resourceType: 'Observation',
      status: 'final',
      code: { text: `export-${family}` },
      subject: { reference: `Patient/${ids['ben']}` },
    });
    const manifest = await manifestOf(
      await kickOff(`/fhir/$export?_type=Observation&_since=${encodeURIComponent(since)}`),
    );
    const observations = await download(manifest.output[0]!.url);
    const exported = observations.map((observation) => observation['id']);
    expect(exported).toContain(fresh);
    expect(exported).not.toContain(ids['ana-obs']);
    for (const observation of observations) {
      const updated = (observation['meta'] as { lastUpdated: string }).lastUpdated;
      expect(Date.parse(updated)).toBeGreaterThan(Date.parse(since));
    }

    // The same instant with an offset, and the output format, their plus written unencoded (a
    // space once the query is decoded), as clients write them.
    const offset = new Date(Date.parse(since) + 3_600_000).toISOString().replace('Z', '+01:00');
    const unencoded = await manifestOf(
      await kickOff(
        `/fhir/$export?_type=Observation&_since=${offset}&_outputFormat=application/fhir+ndjson`,
      ),
    );
    const again = (await download(unencoded.output[0]!.url)).map((item) => item['id']);
    expect(again.sort()).toEqual([...exported].sort());
  });

  it.each([
    ['a system', () => '/fhir/$export'],
    ["the patients'", () => '/fhir/Patient/$export'],
    ["a Group's", () => `/fhir/Group/${ids['group']}/$export`],
  ])(
    'takes %s export as it stood at its transactionTime: changed or deleted since as it was, created since left out',
    async (_level, path) => {
      const restricted = [
        { system: 'http://terminology.hl7.org/CodeSystem/v3-Confidentiality', code: 'R' },
      ];
      // About Ana, a member of the Group.
      const observation = (value: string, meta?: object) => ({
        resourceType: 'Observation',
        status: 'final',
        code: { text: `export-${family}` },
        subject: { reference: `Patient/${ids['ana']}` },
        valueString: value,
        ...(meta ? { meta } : {}),
      });
      const update = async (
        id: string,
        resource: Record<string, unknown>,
        as = authorization,
      ): Promise<void> => {
        const res = await http('PUT', `${testApp.url}/fhir/Observation/${id}`, {
          body: { ...resource, id },
          headers: { authorization: as },
        });
        expect(res.status).toBe(200);
      };
      const remove = async (id: string): Promise<void> => {
        const res = await http('DELETE', `${testApp.url}/fhir/Observation/${id}`, {
          headers: { authorization },
        });
        expect(res.status).toBe(204);
      };
      const glass = async (): Promise<string> => {
        const clinician = await createUser(testApp, ['doctor']);
        const secret = await enableMfa(testApp, clinician);
        const token = `Bearer ${(await loginWithMfa(testApp, clinician, secret)).access_token}`;
        const granted = await http('POST', `${testApp.url}/auth/break-glass`, {
          body: { patient: ids['ana'], reason: 'Correcting a label set in error' },
          headers: { authorization: token, 'content-type': 'application/json' },
        });
        expect(granted.status).toBe(201);
        return token;
      };
      const changed = await create(observation('at kick-off'));
      const deleted = await create(observation('deleted later'));
      const goneBefore = await create(observation('deleted before'));
      await remove(goneBefore);
      const restrictedSince = await create(observation('restricted later'));
      const unrestrictedSince = await create(
        observation('unrestricted later', { security: restricted }),
      );

      let later = '';
      const kickedOff = await kickOffThenChange(`${path()}?_type=Patient,Observation`, async () => {
        later = await create(observation('created later'));
        await update(changed, observation('changed later'));
        await remove(deleted);
        await update(restrictedSince, observation('restricted later', { security: restricted }));
        // A restricted record changes only through break-glass: another doctor's.
        await update(unrestrictedSince, observation('unrestricted later'), await glass());
      });
      const manifest = await manifestOf(kickedOff);
      const file = manifest.output.find((output) => output.type === 'Observation')!;
      const exported = new Map(
        (await download(file.url)).map((item) => [item['id'] as string, item] as const),
      );
      expect(exported.has(ids['ana-obs']!)).toBe(true);
      // As they were at kick-off: the first version, and the one before the deletion.
      expect(exported.get(changed)).toMatchObject({
        valueString: 'at kick-off',
        meta: { versionId: '1' },
      });
      expect(exported.get(deleted)).toMatchObject({ valueString: 'deleted later' });
      expect(exported.has(goneBefore)).toBe(false);
      expect(exported.has(later)).toBe(false);
      // A version opens as the record does now: restricted since, it stays out as restricted
      // records do; restricted at kick-off, it was not to be exported then.
      expect(exported.has(restrictedSince)).toBe(false);
      expect(exported.has(unrestrictedSince)).toBe(false);
      // The manifest's count is the file's.
      expect(file.count).toBe(exported.size);
    },
  );

  it('keeps a type whose resources were all deleted after the kick-off in an export of every type', async () => {
    const medication = await create({ resourceType: 'Medication', code: { text: family } });
    // Group's file comes first, before Medication's.
    const kickedOff = await kickOffThenChange('/fhir/$export', async () => {
      const res = await http('DELETE', `${testApp.url}/fhir/Medication/${medication}`, {
        headers: { authorization },
      });
      expect(res.status).toBe(204);
    });
    const manifest = await manifestOf(kickedOff);
    const file = manifest.output.find((output) => output.type === 'Medication');
    expect(file).toBeDefined();
    expect((await download(file!.url)).map((item) => item['id'])).toEqual([medication]);
  });

  it('exports a Subscription with its channel.header values masked, as every read shows it', async () => {
    const id = await create({
      resourceType: 'Subscription',
      status: 'off',
      reason: 'Export check',
      criteria: `Observation?code=export-${family}`,
      channel: {
        type: 'rest-hook',
        endpoint: 'http://127.0.0.1:9/hooks/export',
        header: ['Authorization: Bearer export-secret'],
      },
    });
    const manifest = await manifestOf(await kickOff('/fhir/$export?_type=Subscription'));
    const [exported, ...others] = await download(manifest.output[0]!.url);
    expect(others).toEqual([]);
    expect(exported).toMatchObject({ id, channel: { header: ['Authorization: [stored]'] } });
    expect(JSON.stringify(exported)).not.toContain('export-secret');
  });

  it("leaves out a resource that does not decrypt, names it in the manifest's error file, and exports the rest", async () => {
    const since = new Date().toISOString();
    await new Promise((resolve) => setTimeout(resolve, 20));
    const observation = {
      resourceType: 'Observation',
      status: 'final',
      code: { text: `export-${family}` },
      subject: { reference: `Patient/${ids['ben']}` },
    };
    const good = await create(observation);
    const bad = await create(observation);
    // A value copied from another row does not decrypt there: its AAD names its own row.
    const where = `resource_type = 'Observation' AND id = $1`;
    const [{ content: original }] = (
      await db.query<{ content: string }>(`SELECT content FROM resource WHERE ${where}`, [bad])
    ).rows as [{ content: string }];
    await db.query(
      `UPDATE resource SET content = (SELECT content FROM resource WHERE ${where}) WHERE resource_type = 'Observation' AND id = $2`,
      [good, bad],
    );
    try {
      const manifest = await manifestOf(
        await kickOff(`/fhir/$export?_type=Observation&_since=${encodeURIComponent(since)}`),
      );
      const exported = (await download(manifest.output[0]!.url)).map((item) => item['id']);
      expect(exported).toEqual([good]);
      expect(manifest.error).toEqual([
        { type: 'OperationOutcome', url: expect.stringMatching(/\/errors\.ndjson$/), count: 1 },
      ]);
      const [outcome] = await download(manifest.error[0]!.url);
      expect(outcome).toMatchObject({
        resourceType: 'OperationOutcome',
        issue: [{ severity: 'error', code: 'exception', expression: [`Observation/${bad}`] }],
      });
    } finally {
      await db.query(`UPDATE resource SET content = $2 WHERE ${where}`, [bad, original]);
    }
  });

  it('stores a type of large resources in chunks of bounded size, and exports them whole', async () => {
    // Four documents of 0.9 MB, more than a chunk holds. Stored 500 lines a chunk, 500 such
    // lines were one string of 600 million characters, more than V8 holds: the export failed.
    const since = new Date().toISOString();
    await new Promise((resolve) => setTimeout(resolve, 20));
    const data = randomBytes(660_000).toString('base64');
    const binaries = await Promise.all(
      [1, 2, 3, 4].map(() =>
        create({ resourceType: 'Binary', contentType: 'application/pdf', data }),
      ),
    );
    try {
      const kickedOff = await kickOff(
        `/fhir/$export?_type=Binary&_since=${encodeURIComponent(since)}`,
      );
      const manifest = await manifestOf(kickedOff);
      const { rows } = await db.query<{ lines: number; characters: number }>(
        `SELECT cardinality(string_to_array(lines, E'\\n')) AS lines, length(lines) AS characters
           FROM export_chunk WHERE job_id = $1 ORDER BY first_line`,
        [jobOf(kickedOff)],
      );
      expect(rows.length).toBeGreaterThan(1);
      for (const row of rows) {
        expect(row.characters - (row.lines - 1)).toBeLessThanOrEqual(CHUNK_CHARACTERS);
      }
      const exported = await download(manifest.output[0]!.url);
      expect(exported.map((item) => item['id']).sort()).toEqual([...binaries].sort());
      expect(exported.every((item) => item['data'] === data)).toBe(true);
    } finally {
      await Promise.all(
        binaries.map((id) =>
          http('DELETE', `${testApp.url}/fhir/Binary/${id}`, { headers: { authorization } }),
        ),
      );
    }
  });

  it("runs a job outside its kick-off request's audit scope, which would hold every resource it exports", async () => {
    // The job was started from the kick-off request and ran in its AsyncLocalStorage scope:
    // each exported resource was added to that scope's entities, a Set no one writes once the
    // 202 is sent, held until the job ends (millions of "Type/id" strings in a large export).
    const audit = testApp.app.get(AuditContext);
    const touch = audit.touch.bind(audit);
    const held: string[] = [];
    audit.touch = (resource, patients) => {
      if (audit.current && resource.resourceType === 'Observation') {
        held.push(`Observation/${String(resource.id)}`);
      }
      touch(resource, patients);
    };
    try {
      const manifest = await manifestOf(await kickOff('/fhir/$export?_type=Observation'));
      expect(manifest.output[0]!.count).toBeGreaterThan(0);
    } finally {
      audit.touch = touch;
    }
    expect(held).toEqual([]);
  });

  it('takes a type named twice in _type once', async () => {
    // Each name was a file of its own, of the same name: the second's first chunk collided with
    // the first's (pk_export_chunk) and the export failed (500 at the status URL).
    const manifest = await manifestOf(await kickOff('/fhir/$export?_type=Group,%20Group'));
    expect(manifest.output).toEqual([expect.objectContaining({ type: 'Group' })]);
  });

  it('removes the files once the retention period has passed', async () => {
    const kickedOff = await kickOff('/fhir/$export?_type=Group');
    const manifest = await manifestOf(kickedOff);
    expect(manifest.output).toEqual([expect.objectContaining({ type: 'Group' })]);
    const job = jobOf(kickedOff);
    expect(await jobExists(job)).toBe(true);
    // The manifest says until when (the IG's optional Expires header), to the second.
    const expires = (await get(kickedOff.headers.get('content-location')!)).headers.get('expires');
    expect(Date.parse(expires!)).toBeGreaterThan(Date.now() - 1000);
    expect(Date.parse(expires!)).toBeLessThanOrEqual(Date.now() + RETENTION_SECONDS * 1000);
    await new Promise((resolve) => setTimeout(resolve, (RETENTION_SECONDS + 1) * 1000));
    expect((await get(manifest.output[0]!.url)).status).toBe(404);
    expect((await get(kickedOff.headers.get('content-location')!)).status).toBe(404);
    // Removed at once when found expired (the sweeper would within ten seconds).
    expect(await jobExists(job)).toBe(false);
    expect((await storedFiles(job)).size).toBe(0);
  });

  it('answers status polls and downloads on another instance than the one that ran the export', async () => {
    const other = await createTestApp();
    try {
      const kickedOff = await kickOff('/fhir/Patient/$export?_type=Patient');
      const status = kickedOff.headers.get('content-location')!.replace(testApp.url, other.url);
      let manifest: { output: { type: string; url: string; count: number }[] } | undefined;
      for (let attempt = 0; attempt < 200 && !manifest; attempt++) {
        const res = await get(status);
        if (res.status === 200) manifest = res.body;
        else await new Promise((resolve) => setTimeout(resolve, 50));
      }
      const file = manifest!.output[0]!;
      const patients = await download(file.url.replace(testApp.url, other.url));
      expect(patients).toHaveLength(file.count);
      expect(patients.map((patient) => patient['id'])).toEqual(
        expect.arrayContaining([ids['ana'], ids['ben']]),
      );
    } finally {
      await other.close();
    }
  });

  it('tells the owner of a job whose instance stopped that it was interrupted, removes its lines, and lets them start another', async () => {
    // A job another instance is running, still heard from: the owner has to wait for it.
    const running = randomUUID();
    await db.query(
      `INSERT INTO export_job (id, user_id, session_epoch, level, status, progress,
                               transaction_time, request_url, base_url, heartbeat_at)
       VALUES ($1, $2, 0, 'system', 'in-progress', 'exporting Patient', now(), $3, $3, now())`,
      [running, doctor.id, `${testApp.url}/fhir`],
    );
    const envelope = `cv1.k${'0'.repeat(12)}.${'A'.repeat(16)}.AAAA.${'A'.repeat(22)}`;
    await db.query(
      `INSERT INTO export_chunk (job_id, file, first_line, lines, patients)
       VALUES ($1, 'Patient.ndjson', 1, $2, '{}')`,
      [running, envelope],
    );
    await expect(
      db.query(
        `INSERT INTO export_chunk (job_id, file, first_line, lines, patients)
         VALUES ($1, 'Patient.ndjson', 2, '{"resourceType":"Patient"}', '{}')`,
        [running],
      ),
    ).rejects.toMatchObject({ code: '23514' });
    const refused = await kickOff('/fhir/$export?_type=Group');
    expect(refused.status).toBe(429);
    expect(Number(refused.headers.get('retry-after'))).toBeGreaterThan(0);
    const polled = await get(`/fhir/$export-status/${running}`);
    expect(polled.status).toBe(202);
    expect(polled.headers.get('x-progress')).toBe('exporting Patient');

    // That instance stops: nothing is heard from the job for over a minute.
    await db.query(
      `UPDATE export_job SET heartbeat_at = now() - interval '61 seconds' WHERE id = $1`,
      [running],
    );
    const interrupted = await get(`/fhir/$export-status/${running}`);
    expect(interrupted.status).toBe(500);
    expect(interrupted.body.issue[0].diagnostics).toMatch(/^The export was interrupted/);
    expect((await storedFiles(running)).size).toBe(0);
    const again = await kickOff('/fhir/$export?_type=Group');
    expect((await manifestOf(again)).output).toEqual([expect.objectContaining({ type: 'Group' })]);
  });

  it('marks its running jobs interrupted when the service stops, and removes the legacy export folder', async () => {
    const legacy = join(testApp.app.get(AppConfig).dataDir, 'exports');
    await mkdir(join(legacy, randomUUID()), { recursive: true });
    const instance = await createTestApp();
    expect(existsSync(legacy)).toBe(false);

    const watcher = new pg.Client({ connectionString: process.env['DATABASE_URL'] });
    await watcher.connect();
    const waiting = (statement: string) => waitingOn(watcher, statement);
    let job: string;
    let closing: Promise<void>;
    try {
      // The job's first file cannot be stored while the test holds the table: it is running
      // when its instance stops.
      await db.query('BEGIN');
      await db.query('LOCK TABLE export_chunk IN ACCESS EXCLUSIVE MODE');
      const kickedOff = await http('GET', `${instance.url}/fhir/$export?_type=Patient`, {
        headers: { authorization, prefer: 'respond-async' },
      });
      expect(kickedOff.status).toBe(202);
      job = jobOf(kickedOff);
      await waiting('INSERT INTO export_chunk');
      closing = instance.close();
      // Shutting down, the instance marks the job failed and then removes its chunks.
      await waiting('DELETE FROM export_chunk');
    } finally {
      await db.query('COMMIT');
      await watcher.end();
    }
    await closing;

    const { rows } = await db.query('SELECT status, failure FROM export_job WHERE id = $1', [job]);
    expect(rows).toEqual([
      { status: 'failed', failure: expect.stringMatching(/^The export was interrupted/) },
    ]);
    // The chunk that was waiting was not stored for a job no longer running.
    expect((await storedFiles(job)).size).toBe(0);
    const polled = await get(`/fhir/$export-status/${job}`);
    expect(polled.status).toBe(500);
    expect(polled.body.issue[0].diagnostics).toMatch(/^The export was interrupted/);
  });
});
