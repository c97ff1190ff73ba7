import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DataSource } from 'typeorm';
import type { AuthenticatedUser } from '../../src/auth/authenticated-user.js';
import { UnitOfWork } from '../../src/database/unit-of-work.js';
import { FhirService } from '../../src/fhir/fhir.service.js';
import { ReindexService } from '../../src/fhir/search/reindex.service.js';
import {
  SEARCH_INDEX_VERSION,
  SearchIndexStatus,
} from '../../src/fhir/search/search-index-status.js';
import { buildPatient, heartRateObservation } from '../support/factories.js';
import { scopedHttp, tokenFor } from '../support/auth.js';
import { authorizedHttp, createResource } from '../support/http.js';
import { BUILT, childEnv, runNode, serviceEnv, startService } from '../support/process.js';
import { appOnScratchDatabase, type ScratchDatabase } from '../support/scratch-database.js';
import { untilWaitingForLock } from '../support/locks.js';
import type { TestApp } from '../support/test-app.js';

describe('npm run cli -- search:reindex', () => {
  let database: ScratchDatabase;
  let testApp: TestApp;
  let close: () => Promise<void>;

  beforeAll(async () => {
    ({ database, testApp, close } = await appOnScratchDatabase());
  });

  afterAll(() => close());

  it('rebuilds the index of resources written before it existed', async () => {
    const http = authorizedHttp(await tokenFor(testApp, 'doctor'));
    const created = await http('POST', `${testApp.url}/fhir/Patient`, {
      body: buildPatient({ family: 'Reindexable', mrn: 'MRN-REINDEX-1' }),
    });
    const find = async () =>
      ((await http('GET', `${testApp.url}/fhir/Patient?family=reindexable`)).body.entry ?? [])
        .length;
    expect(await find()).toBe(1);
    // A database that held no resources at start has nothing to rebuild.
    const status = testApp.app.get(SearchIndexStatus);
    expect(await status.staleSince()).toBeUndefined();
    // As after an upgrade from a version without the index tables:
    const dataSource = testApp.app.get(DataSource);
    for (const table of [
      'search_blind',
      'search_token',
      'search_string',
      'search_date',
      'search_reference',
    ]) {
      await dataSource.query(`DELETE FROM ${table}`);
    }
    expect(await find()).toBe(0);
    // ...which migrations leave saying nothing of what this version writes: the service asks for
    // a rebuild (at start, in its log) rather than letting searches miss records in silence.
    await dataSource.query(`DELETE FROM search_index_state`);
    expect(await status.staleSince()).toBe('before 1');
    expect(status.warning('before 1')).toContain('npm run cli -- search:reindex');

    // Its output read by one that stops early (`2>&1 | head`): the progress it writes to stderr
    // killed the rebuild midway (EPIPE) until 2026-12-06; it runs to its end.
    const env = childEnv({
      DATABASE_URL: database.url,
      PHI_MASTER_KEY: process.env['PHI_MASTER_KEY']!,
      LOG_LEVEL: 'silent',
    });
    const cut = await runNode(BUILT.cli, ['search:reindex'], env, {
      closeStdout: true,
      closeStderr: true,
    });
    expect(cut.code).toBe(0);
    expect(await find()).toBe(1);
    await dataSource.query(`DELETE FROM search_index_state`);
    const result = await runNode(BUILT.cli, ['search:reindex'], env);
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/^Reindexed \d+ resources in [\d.]+ s$/m);
    // Not on a terminal, its progress comes a line at a time: until 2026-12-06 it was redrawn
    // with `\r` alone, which a log or a pipe kept as one run-on line.
    expect(result.stderr).not.toContain('\r');
    const progress = result.stderr.split('\n').filter((line) => line.includes('resources'));
    expect(progress.length).toBeGreaterThan(0);
    for (const line of progress) {
      expect(line).toMatch(/^search:reindex \[[^\]]*\] \d+\/\d+ resources \| .* left$/);
    }
    expect(await find()).toBe(1);
    // The rebuild records that the index is this version's: the service stops asking for one.
    expect(await testApp.app.get(SearchIndexStatus).staleSince()).toBeUndefined();
    expect(await dataSource.query(`SELECT "version" FROM "search_index_state"`)).toEqual([
      { version: SEARCH_INDEX_VERSION },
    ]);
    expect(
      (
        (await http('GET', `${testApp.url}/fhir/Patient?identifier=MRN-REINDEX-1`)).body.entry as {
          resource: { id: string };
        }[]
      )[0]!.resource.id,
    ).toBe(created.body.id);
  });

  /**
   * Rebuilds the index while an update of `type`/`id` to `body` is written and not committed:
   * the rebuild waits for its lock, then the update commits, then the rebuild.
   */
  async function reindexAlongside(
    type: string,
    id: string,
    body: Record<string, unknown>,
  ): Promise<void> {
    const writer: AuthenticatedUser = {
      id: 'reindex-test',
      username: 'reindex-test',
      roles: ['doctor'],
      amr: [],
      authTime: 0,
    };
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    let written!: () => void;
    const wrote = new Promise<void>((resolve) => (written = resolve));
    const writing = testApp.app.get(UnitOfWork).run(async () => {
      await testApp.app.get(FhirService).update(writer, type, id, body);
      written();
      await gate;
    });
    await wrote;
    const reindexing = testApp.app.get(ReindexService).reindexAll(() => undefined);
    await untilWaitingForLock(testApp.app.get(DataSource), 'The rebuild');
    release();
    await writing;
    await reindexing;
  }

  it('indexes the version that stays current when a write runs alongside it', async () => {
    const http = authorizedHttp(await tokenFor(testApp, 'doctor'));
    const body = buildPatient({ family: 'Oldnamereindex' });
    const id = String((await http('POST', `${testApp.url}/fhir/Patient`, { body })).body.id);
    const find = async (family: string): Promise<number> =>
      ((await http('GET', `${testApp.url}/fhir/Patient?family=${family}`)).body.entry ?? []).length;
    // A write of a new version that has not committed yet, while the index is rebuilt: the
    // rebuild waits for it, then commits after it.
    await reindexAlongside('Patient', id, { ...body, id, name: [{ family: 'Newnamereindex' }] });
    expect(await find('newnamereindex')).toBe(1);
    expect(await find('oldnamereindex')).toBe(0);
  });

  it('files every version under the patients it names, as the backfill could not', async () => {
    // Migration 1767241601202 filed each version under the patients its record named then (a
    // version's own are in its encrypted content), and versions an old instance wrote during or
    // after it are filed nowhere: until 2026-12-07 search:reindex left both as they were.
    const doctorToken = await tokenFor(testApp, 'doctor');
    const http = authorizedHttp(doctorToken);
    const fhir = `${testApp.url}/fhir`;
    const a = await createResource(http, fhir, buildPatient({ family: 'Filedhere' }));
    const b = await createResource(http, fhir, buildPatient({ family: 'Filedthere' }));
    const moved = await createResource(http, fhir, heartRateObservation(a));
    const put = async (subject: string) =>
      expect(
        (
          await http('PUT', `${fhir}/Observation/${moved}`, {
            body: { ...heartRateObservation(subject), id: moved },
          })
        ).status,
      ).toBe(200);
    await put(b);
    const unfiled = await createResource(http, fhir, heartRateObservation(a));
    const data = testApp.app.get(DataSource);
    // As the backfill left them: the record moved to B before it, so both versions under B...
    await data.query(
      `UPDATE resource_history_patient SET patient_id = $2 WHERE id = $1 AND version_id = 1`,
      [moved, b],
    );
    // ...and one written by an old instance, under nobody.
    await data.query(`DELETE FROM resource_history_patient WHERE id = $1`, [unfiled]);
    // Moved back to A since.
    await put(a);
    const filed = async (id: string) =>
      (
        await data.query<{ patient_id: string; version_id: number }[]>(
          `SELECT patient_id, version_id FROM resource_history_patient WHERE id = $1
            ORDER BY version_id, patient_id`,
          [id],
        )
      ).map((row) => `${row.patient_id === a ? 'A' : 'B'}/${row.version_id}`);
    expect(await filed(moved)).toEqual(['B/1', 'B/2', 'A/3']);
    const patientA = await scopedHttp(testApp, doctorToken, 'patient/*.rs', a);
    const listed = async () =>
      (
        ((await patientA('GET', `${fhir}/Observation/_history`)).body.entry ?? []) as {
          fullUrl: string;
          resource: { id: string; meta: { versionId: string } };
        }[]
      ).map((e) => `${e.resource.id === moved ? 'moved' : 'unfiled'}/${e.resource.meta.versionId}`);
    expect(await listed()).toEqual(['moved/3']);

    await testApp.app.get(ReindexService).reindexAll(() => undefined);
    expect(await filed(moved)).toEqual(['A/1', 'B/2', 'A/3']);
    expect(await filed(unfiled)).toEqual(['A/1']);
    expect(await listed()).toEqual(['moved/3', 'unfiled/1', 'moved/1']);
  });

  it('keeps the filing of a version written alongside it', async () => {
    const http = authorizedHttp(await tokenFor(testApp, 'doctor'));
    const fhir = `${testApp.url}/fhir`;
    const a = await createResource(http, fhir, buildPatient({ family: 'Filedalongside' }));
    const id = await createResource(http, fhir, heartRateObservation(a));
    await reindexAlongside('Observation', id, {
      ...heartRateObservation(a),
      id,
      valueQuantity: { value: 80, unit: '/min' },
    });
    const data = testApp.app.get(DataSource);
    expect(
      await data.query(
        `SELECT patient_id, version_id FROM resource_history_patient WHERE id = $1
          ORDER BY version_id`,
        [id],
      ),
    ).toEqual([
      { patient_id: a, version_id: 1 },
      { patient_id: a, version_id: 2 },
    ]);
  });

  it('asks for a rebuild when PUBLIC_URL is not what the index was built with', async () => {
    // Until 2026-12-06 only the version was recorded: a service given PUBLIC_URL after a rebuild
    // without it started without a word, and another server's Patient/<id> stayed in the chart
    // of this server's Patient/<id> (its references indexed by type and id).
    const http = authorizedHttp(await tokenFor(testApp, 'doctor'));
    await http('POST', `${testApp.url}/fhir/Patient`, { body: buildPatient({ family: 'Hosted' }) });
    const dataSource = testApp.app.get(DataSource);
    const publicHost = async (): Promise<unknown> =>
      (await dataSource.query(`SELECT "public_host" FROM "search_index_state"`))[0].public_host;
    const env = childEnv({
      DATABASE_URL: database.url,
      PHI_MASTER_KEY: process.env['PHI_MASTER_KEY']!,
      LOG_LEVEL: 'silent',
    });
    expect((await runNode(BUILT.cli, ['search:reindex'], env)).code).toBe(0);
    expect(await publicHost()).toBeNull();

    const dir = await mkdtemp(join(tmpdir(), 'carevault-public-url-'));
    try {
      const service = await startService(
        serviceEnv(database.url, dir, {
          PHI_MASTER_KEY: process.env['PHI_MASTER_KEY']!,
          PUBLIC_URL: 'https://ehr.example.org',
        }),
      );
      await service.stop();
      expect(service.output()).toContain(
        "The search index was built with PUBLIC_URL's host unset, this service runs with " +
          'ehr.example.org',
      );
      expect(service.output()).toContain('npm run cli -- search:reindex');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }

    // The rebuild records the host it indexed for; this test's app, without PUBLIC_URL, now
    // differs from it, until a rebuild of its own.
    const withHost = { ...env, PUBLIC_URL: 'https://EHR.example.org/' };
    expect((await runNode(BUILT.cli, ['search:reindex'], withHost)).code).toBe(0);
    expect(await publicHost()).toBe('ehr.example.org');
    const status = testApp.app.get(SearchIndexStatus);
    expect(await status.staleSince()).toBeUndefined();
    expect(await status.builtForOtherHost()).toBe('ehr.example.org');
    await testApp.app.get(ReindexService).reindexAll(() => undefined);
    expect(await status.builtForOtherHost()).toBeUndefined();
  });
});
