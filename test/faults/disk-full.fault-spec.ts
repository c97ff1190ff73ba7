import { spawnSync } from 'node:child_process';
import { chmod, mkdir, mkdtemp, open, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { EmbeddedPostgres } from '../../src/database/embedded-postgres.js';
import {
  cliUserToken,
  eventually,
  faultEnv,
  FAULT_SYSTEM,
  labReport,
  patientTransaction,
  writtenRowCounts,
} from '../support/faults.js';
import { authorizedHttp, type HttpResult } from '../support/http.js';
import { msaOf, MllpTestClient } from '../support/mllp.js';
import {
  BUILT,
  mllpPortOf,
  runNode,
  startService,
  type RunningService,
} from '../support/process.js';

/**
 * A volume that fills up under a running service. CareVault's tables and indexes live in a
 * tablespace on a small tmpfs of their own (mounting one takes root); the test fills it with a
 * file until the kernel says ENOSPC, so PostgreSQL's next file extension fails the way it does
 * on a full disk (SQLSTATE 53100). The WAL stays on the cluster's own volume, as it would in a
 * deployment that keeps it apart, so the server stays up and every failure is a clean ERROR.
 */
const ROOT = process.getuid?.() === 0;
if (!ROOT) {
  process.stderr.write('Disk-full fault test skipped: it mounts a tmpfs, which takes root.\n');
}

const VOLUME_BYTES = 48 * 1024 * 1024;
/** More writes than a full volume's last free pages can take. */
const MAX_ATTEMPTS = 400;

(ROOT ? describe : describe.skip)('PostgreSQL out of disk under a running service', () => {
  let dataDir: string;
  let volume: string;
  let mounted = false;
  let postgres: EmbeddedPostgres;
  let admin: pg.Client;
  let env: Record<string, string>;
  let service: RunningService;
  let api: ReturnType<typeof authorizedHttp>;
  let feedToken: string;
  const filler = (): string => join(volume, 'filler');

  beforeAll(async () => {
    dataDir = await mkdtemp(join(tmpdir(), 'carevault-disk-full-'));
    // The server runs as another user, which must reach the cluster below this directory.
    await chmod(dataDir, 0o755);
    postgres = new EmbeddedPostgres(join(dataDir, 'cluster'));
    const url = await postgres.start();
    // The server's own user (the one that owns the cluster) must own the tablespace directory:
    // the mount gives it the volume's root, which is where the tablespace goes.
    const owner = await stat(join(dataDir, 'cluster', 'postgres', 'PG_VERSION'));
    volume = join(dataDir, 'volume');
    await mkdir(volume);
    const mount = spawnSync('mount', [
      '-t',
      'tmpfs',
      '-o',
      `size=${VOLUME_BYTES},mode=0700,uid=${owner.uid},gid=${owner.gid}`,
      'tmpfs',
      volume,
    ]);
    if (mount.status !== 0) throw new Error(`mount failed: ${mount.stderr.toString()}`);
    mounted = true;

    admin = new pg.Client({ connectionString: url });
    await admin.connect();
    await admin.query(`CREATE TABLESPACE carevault_volume LOCATION '${volume}'`);
    // Everything the migrations create goes there; the catalogs and temporary files do not.
    await admin.query('ALTER DATABASE carevault SET default_tablespace = carevault_volume');

    env = faultEnv(url, join(dataDir, 'service'), { MIGRATIONS_RUN: 'true' });
    service = await startService(env);
    api = authorizedHttp(await cliUserToken(env, service.url));
    feedToken = await cliUserToken(env, service.url, 'integration');
  }, 120_000);

  afterAll(async () => {
    await service?.stop('SIGTERM');
    await admin?.end();
    await postgres?.stop();
    if (mounted) spawnSync('umount', [volume]);
    await rm(dataDir, { recursive: true, force: true });
  });

  /** Fills the volume with one file until the kernel refuses another byte. */
  const fill = async (): Promise<number> => {
    const file = await open(filler(), 'w');
    const chunk = Buffer.alloc(1024 * 1024);
    let written = 0;
    try {
      for (let size = chunk.length; size >= 4096; size /= 2) {
        for (;;) {
          try {
            written += (await file.write(chunk, 0, size)).bytesWritten;
          } catch (error) {
            if ((error as NodeJS.ErrnoException).code !== 'ENOSPC') throw error;
            break;
          }
        }
      }
    } finally {
      await file.close();
    }
    return written;
  };

  /** The stored status of the message with this control id, if it was stored. */
  const statusOf = async (controlId: string): Promise<string | undefined> =>
    (
      await admin.query<{ status: string }>(
        'SELECT status FROM hl7_message WHERE control_id = $1',
        [controlId],
      )
    ).rows[0]?.status;

  const search = async (identifier: string): Promise<HttpResult> =>
    api('GET', `${service.url}/fhir/Patient?identifier=${encodeURIComponent(identifier)}`);

  it('refuses writes with a clear 503 while the volume is full, writes nothing half, and recovers', async () => {
    // The tables really are on the small volume.
    const placed = await admin.query<{ spcname: string }>(
      `SELECT t.spcname FROM pg_class c JOIN pg_tablespace t ON t.oid = c.reltablespace
       WHERE c.relname = 'resource'`,
    );
    expect(placed.rows).toEqual([{ spcname: 'carevault_volume' }]);
    const healthy = await api('POST', `${service.url}/fhir`, {
      body: patientTransaction('DISK-OK', 3),
    });
    expect(healthy.status).toBe(200);

    expect(await fill()).toBeGreaterThan(0);

    // Pages with room left still take rows; sooner or later a write needs a new one.
    let refused: { tag: string; response: HttpResult } | undefined;
    for (let attempt = 0; attempt < MAX_ATTEMPTS && !refused; attempt++) {
      const tag = `DISK-FULL-${attempt}`;
      const before = await writtenRowCounts(admin);
      const response = await api('POST', `${service.url}/fhir`, {
        body: patientTransaction(tag, 3),
      });
      if (response.status === 503) {
        refused = { tag, response };
        // Nothing of the refused transaction is anywhere.
        expect(await writtenRowCounts(admin)).toEqual(before);
      } else {
        expect(response.status).toBe(200);
      }
    }
    expect(refused).toBeDefined();
    expect(refused!.response.headers.get('content-type')).toContain('application/fhir+json');
    expect(refused!.response.headers.get('retry-after')).toBe('5');
    expect(refused!.response.body.issue[0]).toMatchObject({
      severity: 'error',
      code: 'transient',
      diagnostics: expect.stringMatching(/^The database is out of disk space/),
    });

    // HL7: stored and processed (AA) while a page has room; once none has, no ACK at all, so
    // the sender keeps the message and resends it. Never an AE, which the sender would drop.
    const hl7 = await MllpTestClient.connect(mllpPortOf(service));
    let unstored: string | undefined;
    for (let attempt = 0; attempt < MAX_ATTEMPTS && !unstored; attempt++) {
      const controlId = `DISK-HL7-${attempt}`;
      await hl7.send([labReport(controlId)]);
      try {
        const [ack] = (await hl7.waitForAcks(attempt + 1)).slice(-1);
        expect(msaOf(ack!)).toEqual({ code: 'AA', controlId });
      } catch (error) {
        if (!hl7.closed) throw error;
        unstored = controlId;
      }
    }
    expect(unstored).toBeDefined();
    expect(await statusOf(unstored!)).not.toBe('error');

    // A message stored where there is room, and processed where there is none (the stored
    // messages on another volume, or the last free page taken by the message itself): still
    // no ACK, and the stored copy waits as `received` for the resend.
    await admin.query('ALTER TABLE hl7_message SET TABLESPACE pg_default');
    for (const { indexname } of (
      await admin.query<{ indexname: string }>(
        `SELECT indexname FROM pg_indexes WHERE tablename = 'hl7_message'`,
      )
    ).rows) {
      await admin.query(`ALTER INDEX "${indexname}" SET TABLESPACE pg_default`);
    }
    const unprocessed = 'DISK-HL7-STORED';
    const stored = await MllpTestClient.connect(mllpPortOf(service));
    await stored.send([labReport(unprocessed)]);
    await stored.waitForClose().catch(() => undefined);
    expect(stored.acks).toEqual([]);
    expect(stored.closed).toBe(true);
    expect(await statusOf(unprocessed)).toBe('received');
    // Over HTTPS the same case is a 503 the poster may retry, not a 200 carrying an AE.
    const posted = await fetch(`${service.url}/hl7/v2`, {
      method: 'POST',
      headers: { authorization: `Bearer ${feedToken}`, 'content-type': 'x-application/hl7-v2+er7' },
      body: labReport('DISK-HL7-POSTED'),
    });
    expect(posted.status).toBe(503);
    expect(((await posted.json()) as { issue: { diagnostics: string }[] }).issue[0]).toMatchObject({
      diagnostics: expect.stringMatching(/^The database is out of disk space/),
    });
    expect(await statusOf('DISK-HL7-POSTED')).toBe('received');

    // The volume has room again: writes resume in the same process, with nothing lost.
    const pid = service.child.pid;
    await rm(filler());
    await eventually('writes to succeed again', async () => {
      const res = await api('POST', `${service.url}/fhir`, {
        body: patientTransaction(refused!.tag, 3),
      });
      return res.status === 200;
    });
    expect(service.child.pid).toBe(pid);
    const found = await search(`${FAULT_SYSTEM}|${refused!.tag}`);
    expect(found.status).toBe(200);
    expect(found.body.entry).toHaveLength(1);
    const observations = await api(
      'GET',
      `${service.url}/fhir/Observation?subject=Patient/${found.body.entry[0].resource.id}&_summary=count`,
    );
    expect(observations.body.total).toBe(3);

    // Each resent message is processed once.
    const resent = await MllpTestClient.connect(mllpPortOf(service));
    await resent.send([unstored!, unprocessed, 'DISK-HL7-POSTED'].map((id) => labReport(id)));
    expect((await resent.waitForAcks(3)).map(msaOf)).toEqual([
      { code: 'AA', controlId: unstored },
      { code: 'AA', controlId: unprocessed },
      { code: 'AA', controlId: 'DISK-HL7-POSTED' },
    ]);
    resent.close();
    for (const controlId of [unstored!, unprocessed, 'DISK-HL7-POSTED']) {
      expect(await statusOf(controlId)).toBe('processed');
      const lab = await search(controlId);
      expect(lab.body.entry).toHaveLength(1);
      const reports = await api(
        'GET',
        `${service.url}/fhir/DiagnosticReport?subject=Patient/${lab.body.entry[0].resource.id}&_summary=count`,
      );
      expect(reports.body.total).toBe(1);
    }

    // Every refused write left the audit chain whole.
    const verified = await runNode(BUILT.cli, ['audit:verify'], env);
    expect(verified.stdout).toContain('Audit chain verified');
    expect(verified.code).toBe(0);
  }, 240_000);
});
