import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { cliUserToken } from '../support/faults.js';
import { authorizedHttp, createResource, type HttpFn } from '../support/http.js';
import { serviceEnv, startService, type RunningService } from '../support/process.js';
import { createScratchDatabase, type ScratchDatabase } from '../support/scratch-database.js';

const LAGGING_CLOCK = fileURLToPath(new URL('../support/lagging-clock.mjs', import.meta.url));
/** How far the service's wall clock runs behind the database server's. */
const LAG_MS = 5_000;

/**
 * A version's meta.lastUpdated is stamped by the instance that writes it, and a history Bundle's
 * meta.lastUpdated (the next poll's `_since`) is read off PostgreSQL's clock. When an
 * application host's clock runs behind the database server's, as two hosts' clocks do by
 * milliseconds even under NTP and by seconds without it, a version written after a poll must
 * still come after that poll's instant, or a client syncing `_since` never sees it.
 */
describe('an instance whose clock runs behind the database server', () => {
  let database: ScratchDatabase;
  let dataDir: string;
  let service: RunningService;
  let api: HttpFn;
  let db: pg.Client;

  beforeAll(async () => {
    database = await createScratchDatabase();
    dataDir = await mkdtemp(join(tmpdir(), 'carevault-clock-'));
    const env = serviceEnv(database.url, dataDir, {
      NODE_OPTIONS: `--import=${LAGGING_CLOCK}`,
      TEST_CLOCK_LAG_MS: String(LAG_MS),
    });
    service = await startService(env);
    api = authorizedHttp(await cliUserToken(env, service.url));
    db = new pg.Client({ connectionString: database.url });
    await db.connect();
  });

  afterAll(async () => {
    await db?.end();
    await service?.stop();
    await database?.drop();
    await rm(dataDir, { recursive: true, force: true });
  });

  it('stamps versions so that a `_since` poll from the last Bundle finds every later one', async () => {
    const first = await createResource(api, `${service.url}/fhir`, {
      resourceType: 'Patient',
      gender: 'female',
    });
    const poll = await api('GET', `${service.url}/fhir/Patient/_history`);
    expect(poll.status).toBe(200);
    const since = poll.body.meta.lastUpdated as string;

    // Written after the poll: a create, and an update of a record the poll listed.
    const later = await createResource(api, `${service.url}/fhir`, {
      resourceType: 'Patient',
      gender: 'male',
    });
    const updated = await api('PUT', `${service.url}/fhir/Patient/${first}`, {
      body: { resourceType: 'Patient', id: first, gender: 'other' },
    });
    expect(updated.status).toBe(200);
    const next = await api('GET', `${service.url}/fhir/Patient/_history?_since=${since}`);
    expect(next.status).toBe(200);
    const versions = (next.body.entry ?? []).map(
      (entry: any) => `${entry.resource.id}/${entry.resource.meta.versionId}`,
    );
    expect(versions).toEqual(expect.arrayContaining([`${later}/1`, `${first}/2`]));
  });

  it("stamps a version with the database server's time, not the host's", async () => {
    const id = await createResource(api, `${service.url}/fhir`, { resourceType: 'Patient' });
    const { rows } = await db.query<{ now: Date }>('SELECT clock_timestamp() AS now');
    const read = await api('GET', `${service.url}/fhir/Patient/${id}`);
    const stamped = Date.parse(read.body.meta.lastUpdated as string);
    expect(rows[0]!.now.getTime() - stamped).toBeGreaterThanOrEqual(0);
    expect(rows[0]!.now.getTime() - stamped).toBeLessThan(LAG_MS / 2);
  });
});
