import { randomUUID } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DataSource } from 'typeorm';
import { MllpListener } from '../../src/hl7/mllp/mllp-listener.js';
import { tokenFor } from '../support/auth.js';
import { withEnv } from '../support/env.js';
import { authorizedHttp, type HttpFn } from '../support/http.js';
import { MllpTestClient, msaOf, MllpTestPeer } from '../support/mllp.js';
import { BUILT, childEnv, runNode } from '../support/process.js';
import { createTestApp, type TestApp } from '../support/test-app.js';

/**
 * A feed's change goes on to the other systems, never back to its sender: three receivers, the
 * admission system (ADT from HOSP, which also feeds CareVault), the lab (LIS, which does too),
 * and a registry whose senders HL7_OUTBOUND_SENDERS does not name.
 */
describe('HL7 outbound: a feed change goes to the destinations other than its sender', () => {
  let adt: MllpTestPeer;
  let lab: MllpTestPeer;
  let registry: MllpTestPeer;
  let testApp: TestApp;
  let data: DataSource;
  let api: HttpFn;
  let restoreEnv: () => void;

  beforeAll(async () => {
    [adt, lab, registry] = await Promise.all([
      MllpTestPeer.start(),
      MllpTestPeer.start(),
      MllpTestPeer.start(),
    ]);
    restoreEnv = withEnv({
      HL7_OUTBOUND: [adt, lab, registry].map((peer) => `127.0.0.1:${peer.port}`).join(','),
      HL7_OUTBOUND_SENDERS: `127.0.0.1:${adt.port}=ADT/HOSP,127.0.0.1:${lab.port}=LIS`,
      HL7_OUTBOUND_RETRY_MS: '50',
      HL7_OUTBOUND_POLL_MS: '20',
    });
    testApp = await createTestApp();
    data = testApp.app.get(DataSource);
    api = authorizedHttp(await tokenFor(testApp, 'doctor'));
  });

  afterAll(async () => {
    await testApp.close();
    await Promise.all([adt.down(), lab.down(), registry.down()]);
    restoreEnv();
  });

  /** The destinations (by peer) and event of each message about the Patient, once all are sent. */
  const sent = async (id: string, count: number): Promise<[string, string][]> => {
    const deadline = Date.now() + 20_000;
    const names = new Map(
      [
        ['adt', adt],
        ['lab', lab],
        ['registry', registry],
      ].map(([name, peer]) => [`127.0.0.1:${(peer as MllpTestPeer).port}`, name as string]),
    );
    for (;;) {
      const rows = await data.query<
        { destination: string; message_type: string; status: string }[]
      >(
        'SELECT destination, message_type, status FROM hl7_outbox WHERE resource_id = $1 ORDER BY seq',
        [id],
      );
      if (rows.length >= count && rows.every((row) => row.status === 'sent')) {
        return rows.map((row) => [names.get(row.destination)!, row.message_type]);
      }
      if (Date.now() > deadline) throw new Error(`Not all sent: ${JSON.stringify(rows)}`);
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
  };

  /** An ADT message about one patient from `sender` (MSH-3|MSH-4); each with its own name. */
  const feed = async (sender: string, event: string, family: string): Promise<void> => {
    const client = await MllpTestClient.connect(testApp.app.get(MllpListener).address()!.port);
    await client.send([
      Buffer.from(
        `MSH|^~\\&|${sender}|CV|CV|20240101||ADT^${event}|SND-${family}|P|2.5\rPID|1||SND-1^^^HOSP&2.16.9&ISO^MR||${family}^Pat||19800101`,
      ),
    ]);
    expect(msaOf((await client.waitForAcks(1))[0]!).code).toBe('AA');
    client.close();
  };

  it('sends a feed registration to the others named, an API change everywhere', async () => {
    await feed('ADT|HOSP', 'A28', 'Registered');
    const found = await api(
      'GET',
      `${testApp.url}/fhir/Patient?identifier=${encodeURIComponent('urn:oid:2.16.9|SND-1')}`,
    );
    const id = String(found.body.entry[0].resource.id);
    // From the admission system: to the lab only. Not back to its sender, and not to the
    // registry, which might be it for all CareVault is told.
    expect(await sent(id, 1)).toEqual([['lab', 'ADT^A04']]);

    // From the lab (any facility): to the admission system only.
    await feed('LIS|ANY', 'A31', 'Corrected');
    expect(await sent(id, 2)).toEqual([
      ['lab', 'ADT^A04'],
      ['adt', 'ADT^A08'],
    ]);

    // From a third system: to both systems named, which are not it.
    await feed('OTHER|ELSEWHERE', 'A08', 'Renamed');
    expect((await sent(id, 4)).slice(2)).toEqual([
      ['adt', 'ADT^A08'],
      ['lab', 'ADT^A08'],
    ]);

    // Through the FHIR API: everywhere.
    const current = (await api('GET', `${testApp.url}/fhir/Patient/${id}`)).body;
    const updated = await api('PUT', `${testApp.url}/fhir/Patient/${id}`, {
      body: { ...current, gender: 'female' },
    });
    expect(updated.status).toBe(200);
    expect((await sent(id, 7)).slice(4)).toEqual([
      ['adt', 'ADT^A08'],
      ['lab', 'ADT^A08'],
      ['registry', 'ADT^A08'],
    ]);
    await lab.waitForAccepted(3);
    await adt.waitForAccepted(3);
    await registry.waitForAccepted(1);
    expect([adt.accepted.length, lab.accepted.length, registry.accepted.length]).toEqual([3, 3, 1]);
  });

  it("sends a feed's merge on to the other systems as an ADT^A40", async () => {
    const client = await MllpTestClient.connect(testApp.app.get(MllpListener).address()!.port);
    const pid = (mrn: string, family: string) =>
      `PID|1||${mrn}^^^HOSP&2.16.9&ISO^MR||${family}^Pat||19800101`;
    const acks = await client.exchange([
      `MSH|^~\\&|ADT|HOSP|CV|CV|20240101||ADT^A28|MRG-A28|P|2.5\r${pid('SND-2', 'Duplicate')}`,
      `MSH|^~\\&|ADT|HOSP|CV|CV|20240101||ADT^A40|MRG-A40|P|2.5\r${pid('SND-1', 'Renamed')}\rMRG|SND-2^^^HOSP&2.16.9&ISO^MR`,
    ]);
    client.close();
    expect(acks.map((ack) => msaOf(ack).code)).toEqual(['AA', 'AA']);
    // This test's own receiver: other files' merges leave A40 rows in the worker's database.
    const [prior] = await data.query<{ resource_id: string }[]>(
      `SELECT resource_id FROM hl7_outbox WHERE message_type = 'ADT^A40' AND destination = $1`,
      [`127.0.0.1:${lab.port}`],
    );
    // Registered, then merged: to the lab, not back to the admission system.
    expect(await sent(prior!.resource_id, 2)).toEqual([
      ['lab', 'ADT^A04'],
      ['lab', 'ADT^A40'],
    ]);
    const merge = (await lab.waitForAccepted(5)).find((message) => message.includes('^A40^'))!;
    expect(merge).toContain('|ADT^A40^ADT_A39|');
    expect(merge).toMatch(/\rPID\|1\|\|SND-1\^/);
    expect(merge).toMatch(/\rMRG\|SND-2\^\^\^HOSP&2\.16\.9&ISO\^MR~/);
  });

  /** The admin CLI, with the service's database, key and outbound settings. */
  const runCli = (args: string[]) =>
    runNode(
      BUILT.cli,
      args,
      childEnv({
        DATABASE_URL: process.env['DATABASE_URL']!,
        PHI_MASTER_KEY: process.env['PHI_MASTER_KEY']!,
        LOG_LEVEL: 'silent',
        HL7_OUTBOUND: process.env['HL7_OUTBOUND']!,
        HL7_OUTBOUND_SENDERS: process.env['HL7_OUTBOUND_SENDERS']!,
      }),
    );

  it('sends nothing of what a bulk import loads', async () => {
    const id = `imported-${randomUUID().slice(0, 8)}`;
    const dir = await mkdtemp(join(tmpdir(), 'carevault-import-outbound-'));
    try {
      const patient = { resourceType: 'Patient', id, name: [{ family: 'Imported' }] };
      await writeFile(join(dir, 'Patient.ndjson'), `${JSON.stringify(patient)}\n`);
      const cli = await runCli(['import', dir]);
      expect(cli.code).toBe(0);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
    expect((await api('GET', `${testApp.url}/fhir/Patient/${id}`)).status).toBe(200);
    const rows = await data.query(`SELECT 1 FROM hl7_outbox WHERE resource_id = $1`, [id]);
    expect(rows).toEqual([]);
  });

  it('sends the change of a message reprocessed by the CLI on, as one reprocessed over HTTP', async () => {
    // A sender of its own: the CLI reprocesses this file's message only.
    const tag = randomUUID().slice(0, 8);
    const sender = `RPR${tag}`;
    const pid = (who: string) =>
      `PID|1||${who}-${tag}^^^HOSP&2.16.9&ISO^MR||Rep${who}^Pat||19800101`;
    const message = (control: string, event: string, ...rest: string[]) =>
      [
        `MSH|^~\\&|${sender}|HOSP|CV|CV|20240101||ADT^${event}|${control}-${tag}|P|2.5`,
        ...rest,
      ].join('\r');
    const client = await MllpTestClient.connect(testApp.app.get(MllpListener).address()!.port);
    // The link comes before the registrations: refused (204), stored in error.
    const link = message('RL', 'A24', pid('A'), 'PV1|1|N', pid('B'), 'PV1|1|N');
    const registrations = [message('RA', 'A28', pid('A')), message('RB', 'A28', pid('B'))];
    const acks = await client.exchange([link, ...registrations]);
    client.close();
    expect(acks.map((ack) => msaOf(ack).code)).toEqual(['AE', 'AA', 'AA']);
    const cli = await runCli(['hl7:reprocess', '--status', 'error', '--sender', sender]);
    expect(cli.stdout).toContain('Reprocessed 1 message(s): 1 processed');
    // Both patients linked, each change queued (in the CLI's transaction) for the two systems
    // named, which the service sends: until 2026-12-07 the CLI queued nothing.
    for (const who of ['A', 'B']) {
      const found = await api(
        'GET',
        `${testApp.url}/fhir/Patient?identifier=${encodeURIComponent(`urn:oid:2.16.9|${who}-${tag}`)}`,
      );
      const id = String(found.body.entry[0].resource.id);
      expect(found.body.entry[0].resource.link).toHaveLength(1);
      expect(await sent(id, 4)).toEqual([
        ['adt', 'ADT^A04'],
        ['lab', 'ADT^A04'],
        ['adt', 'ADT^A08'],
        ['lab', 'ADT^A08'],
      ]);
    }
  });
});
