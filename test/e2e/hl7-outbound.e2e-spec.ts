import { jest } from '@jest/globals';
import { Logger } from '@nestjs/common';
import { DataSource } from 'typeorm';
import { UnitOfWork } from '../../src/database/unit-of-work.js';
import { MllpListener } from '../../src/hl7/mllp/mllp-listener.js';
import { Hl7OutboxRepository } from '../../src/hl7/outbound/hl7-outbox.repository.js';
import { tokenFor } from '../support/auth.js';
import { withEnv } from '../support/env.js';
import { authorizedHttp, type HttpFn } from '../support/http.js';
import { untilWaitingForLock } from '../support/locks.js';
import { controlIdOf, MllpTestClient, msaOf, MllpTestPeer } from '../support/mllp.js';
import { BUILT, childEnv, runNode } from '../support/process.js';
import { createTestApp, type TestApp } from '../support/test-app.js';

interface OutboxRow {
  id: string;
  status: string;
  attempts: number;
  failed_deliveries: number;
  control_id: string;
  message_type: string;
  resource_id: string;
  ack_code: string | null;
  last_error: string | null;
  message: string;
}

const patient = (family: string, extra: Record<string, unknown> = {}) => ({
  resourceType: 'Patient',
  name: [{ family, given: ['Test'] }],
  ...extra,
});

describe('HL7 outbound: Patient changes to ADT over MLLP through a durable outbox', () => {
  let peer: MllpTestPeer;
  let testApp: TestApp;
  let data: DataSource;
  let api: HttpFn;
  let restoreEnv: () => void;

  beforeAll(async () => {
    peer = await MllpTestPeer.start();
    restoreEnv = withEnv({
      // With its receiving application and facility, for MSH-5 and MSH-6.
      HL7_OUTBOUND: `127.0.0.1:${peer.port}/PEER/PEER_HOSP`,
      HL7_OUTBOUND_RETRY_MS: '50',
      HL7_OUTBOUND_POLL_MS: '20',
      // Short, for the stale-ACK test, yet long enough that a stalled event loop (the peer
      // answers from this process) is not taken for a silent receiver and answered twice.
      HL7_OUTBOUND_ACK_TIMEOUT_SECONDS: '3',
      // Enough for the receiver's downtime below (50 ms doubling: 6.35 s before the 8th).
      HL7_OUTBOUND_MAX_ATTEMPTS: '8',
    });
    testApp = await createTestApp();
    data = testApp.app.get(DataSource);
    api = authorizedHttp(await tokenFor(testApp, 'doctor'));
  });

  afterAll(async () => {
    await testApp.close();
    await peer.down();
    restoreEnv();
  });

  beforeEach(() => {
    peer.answer = () => 'AA';
  });

  const outbox = (resourceId: string): Promise<OutboxRow[]> =>
    data.query<OutboxRow[]>('SELECT * FROM hl7_outbox WHERE resource_id = $1 ORDER BY seq', [
      resourceId,
    ]);

  const createPatient = async (body: Record<string, unknown>): Promise<string> => {
    const created = await api('POST', `${testApp.url}/fhir/Patient`, { body });
    expect(created.status).toBe(201);
    return String(created.body.id);
  };

  /** Waits until every outbox row of the resource has left `pending`. */
  const settled = async (resourceId: string, timeoutMs = 20_000): Promise<OutboxRow[]> => {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const rows = await outbox(resourceId);
      if (rows.length > 0 && rows.every((row) => row.status !== 'pending')) return rows;
      if (Date.now() > deadline) throw new Error(`Outbox still pending: ${JSON.stringify(rows)}`);
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
  };

  it('sends ADT^A04 on create and ADT^A08 on update, escaped, in order, each ACKed', async () => {
    const start = peer.accepted.length;
    const id = await createPatient(
      patient('Smith|Jones^Co', {
        identifier: [{ system: 'urn:oid:2.16.840.1.113883.19.5', value: 'OUT-1' }],
        birthDate: '1970-01-31',
      }),
    );
    const updated = await api('PUT', `${testApp.url}/fhir/Patient/${id}`, {
      body: { ...patient('Smith|Jones^Co'), id, gender: 'female' },
    });
    expect(updated.status).toBe(200);
    // The same content again is no change, so there is nothing to tell the receivers.
    const unchanged = await api('PUT', `${testApp.url}/fhir/Patient/${id}`, {
      body: updated.body,
    });
    expect(unchanged.headers.get('etag')).toBe('W/"2"');

    const rows = await settled(id);
    expect(rows.map((row) => [row.message_type, row.status, row.ack_code])).toEqual([
      ['ADT^A04', 'sent', 'AA'],
      ['ADT^A08', 'sent', 'AA'],
    ]);
    // Stored encrypted: the outbox holds an envelope, never the message.
    for (const row of rows) expect(row.message).toMatch(/^cv1\./);
    const received = (await peer.waitForAccepted(start + 2)).slice(start);
    expect(received.map(controlIdOf)).toEqual(rows.map((row) => row.control_id));
    expect(received[0]).toContain('ADT^A04^ADT_A01');
    expect(received[0]).toMatch(/^MSH\|\^~\\&\|CAREVAULT\|CAREVAULT\|PEER\|PEER_HOSP\|/);
    expect(received[0]).toContain('|Smith\\F\\Jones\\S\\Co^Test|');
    expect(received[0]).toContain('OUT-1^^^&2.16.840.1.113883.19.5&ISO');
    expect(received[0]).toMatch(/\|19700131\r/);
    expect(received[1]).toContain('ADT^A08^ADT_A01');
    // An update says "" for what the Patient no longer has (here its birth date), so that the
    // receiver drops it too.
    expect(received[1]).toContain('||""|F|');

    // The disclosure is audited with the patient it was about.
    const audited = await data.query<{ n: number }[]>(
      `SELECT count(*)::int AS n FROM audit_event
        WHERE method = 'mllp-out' AND outcome = 'success' AND $1 = ANY(patient_ids)`,
      [id],
    );
    expect(audited[0]!.n).toBe(2);
  });

  it('sends ADT^A40 with MRG when a Patient is merged through the FHIR API, then A08', async () => {
    const start = peer.accepted.length;
    const mrn = (value: string) => [{ system: 'urn:oid:2.16.840.1.113883.19.5', value }];
    const survivor = await createPatient(patient('Survivor', { identifier: mrn('MRG-S') }));
    const prior = await createPatient(patient('Duplicate', { identifier: mrn('MRG-P') }));
    const retired = {
      ...patient('Duplicate', { identifier: mrn('MRG-P') }),
      id: prior,
      active: false,
      link: [{ other: { reference: `Patient/${survivor}` }, type: 'replaced-by' }],
    };
    expect(
      (await api('PUT', `${testApp.url}/fhir/Patient/${prior}`, { body: retired })).status,
    ).toBe(200);
    // A correction of the merged record afterwards is no second merge.
    const corrected = await api('PUT', `${testApp.url}/fhir/Patient/${prior}`, {
      body: { ...retired, gender: 'male' },
    });
    expect(corrected.status).toBe(200);
    expect((await settled(prior)).map((row) => row.message_type)).toEqual([
      'ADT^A04',
      'ADT^A40',
      'ADT^A08',
    ]);
    await settled(survivor);
    const received = (await peer.waitForAccepted(start + 4)).slice(start);
    const merge = received.find((message) => message.includes('|ADT^A40^ADT_A39|'))!;
    const segments = merge.split('\r');
    // PID is the survivor, MRG-1 the merged patient as the receiver knows it; no PV1.
    expect(segments.map((segment) => segment.slice(0, 3))).toEqual([
      'MSH',
      'EVN',
      'PID',
      'MRG',
      '',
    ]);
    expect(segments[2]).toContain(`MRG-S^^^&2.16.840.1.113883.19.5&ISO~${survivor}^^^CAREVAULT^PI`);
    expect(segments[2]).toContain('||Survivor^Test');
    expect(segments[3]).toBe(`MRG|MRG-P^^^&2.16.840.1.113883.19.5&ISO~${prior}^^^CAREVAULT^PI`);
    // Both patients' data went out: the delivery's audit row names both.
    const [audited] = await data.query<{ patient_ids: string[] }[]>(
      `SELECT patient_ids FROM audit_event WHERE method = 'mllp-out' AND subtype = 'ADT^A40'
          AND $1 = ANY(patient_ids)`,
      [prior],
    );
    expect(audited!.patient_ids).toEqual([prior, survivor]);
  });

  it('writes a Patient whose systems the message cannot decode, alone or in a Bundle', async () => {
    // A `%` that escapes nothing threw in the message builder, inside the write's transaction:
    // the create, the update and the whole Bundle failed with 500 and rolled back.
    const odd = {
      identifier: [
        {
          system: 'urn:carevault:v2:assigning-authority:100%',
          value: 'PCT-1',
          type: { text: 'Medical record number' },
        },
      ],
    };
    const start = peer.accepted.length;
    const id = await createPatient(patient('Percent', odd));
    const updated = await api('PUT', `${testApp.url}/fhir/Patient/${id}`, {
      body: { ...patient('Percent', odd), id, gender: 'male' },
    });
    expect(updated.status).toBe(200);
    const bundle = await api('POST', `${testApp.url}/fhir`, {
      body: {
        resourceType: 'Bundle',
        type: 'transaction',
        entry: [
          { resource: patient('PercentBundle', odd), request: { method: 'POST', url: 'Patient' } },
        ],
      },
    });
    expect(bundle.status).toBe(200);
    const bundled = String(bundle.body.entry[0].response.location).split('/')[1]!;
    expect((await api('GET', `${testApp.url}/fhir/Patient/${bundled}`)).status).toBe(200);

    const rows = [...(await settled(id)), ...(await settled(bundled))];
    expect(rows.map((row) => [row.message_type, row.status])).toEqual([
      ['ADT^A04', 'sent'],
      ['ADT^A08', 'sent'],
      ['ADT^A04', 'sent'],
    ]);
    const received = (await peer.waitForAccepted(start + 3)).slice(start);
    for (const message of received) expect(message).toContain('PCT-1^^^100%');
  });

  it('sends ADT^A29 when a Patient is deleted, and nothing for a deletion repeated', async () => {
    const start = peer.accepted.length;
    const id = await createPatient(
      patient('Deleted', {
        identifier: [{ system: 'urn:oid:2.16.840.1.113883.19.5', value: 'DEL-1' }],
      }),
    );
    expect((await api('DELETE', `${testApp.url}/fhir/Patient/${id}`)).status).toBe(204);
    expect((await api('DELETE', `${testApp.url}/fhir/Patient/${id}`)).status).toBe(204);
    const rows = await settled(id);
    expect(rows.map((row) => [row.message_type, row.status])).toEqual([
      ['ADT^A04', 'sent'],
      ['ADT^A29', 'sent'],
    ]);
    const versions = await data.query<{ version_id: number }[]>(
      'SELECT version_id FROM hl7_outbox WHERE resource_id = $1 ORDER BY seq',
      [id],
    );
    expect(versions.map((row) => row.version_id)).toEqual([1, 2]);
    const received = (await peer.waitForAccepted(start + 2)).slice(start);
    expect(received[1]).toContain('|ADT^A29^ADT_A21|');
    expect(received[1]).toContain(`DEL-1^^^&2.16.840.1.113883.19.5&ISO~${id}^^^CAREVAULT^PI`);
  });

  it('writes nothing to send when the change rolls back, or when an HL7 feed made it', async () => {
    const count = async (): Promise<number> =>
      (await data.query<{ n: number }[]>('SELECT count(*)::int AS n FROM hl7_outbox'))[0]!.n;
    const before = await count();
    // The Patient is written, then the second entry fails (its If-Match cannot hold): the
    // transaction rolls back, and the outbox row written with the Patient goes with it.
    const failed = await api('POST', `${testApp.url}/fhir`, {
      body: {
        resourceType: 'Bundle',
        type: 'transaction',
        entry: [
          {
            fullUrl: 'urn:uuid:5b0e7d2a-1111-4c3e-9a7e-000000000001',
            resource: patient('Rolledback'),
            request: { method: 'POST', url: 'Patient' },
          },
          {
            resource: { ...patient('Missing'), id: 'no-such-patient' },
            request: { method: 'PUT', url: 'Patient/no-such-patient', ifMatch: 'W/"9"' },
          },
        ],
      },
    });
    expect(failed.status).toBe(412);
    expect(await count()).toBe(before);

    const feed = await MllpTestClient.connect(testApp.app.get(MllpListener).address()!.port);
    await feed.send([
      Buffer.from(
        'MSH|^~\\&|LAB|HOSP|CV|CV|20240101||ADT^A28|OUT-FEED-1|P|2.5\rPID|1||FEED-1^^^HOSP&2.16.9&ISO^MR||Feed^Only',
      ),
    ]);
    expect(msaOf((await feed.waitForAcks(1))[0]!).code).toBe('AA');
    feed.close();
    const fed = await api(
      'GET',
      `${testApp.url}/fhir/Patient?identifier=${encodeURIComponent('urn:oid:2.16.9|FEED-1')}`,
    );
    expect(fed.body.entry).toHaveLength(1);
    expect(await outbox(String(fed.body.entry[0].resource.id))).toEqual([]);
  });

  it('loses nothing and keeps the order while the receiver is down, then delivers each once', async () => {
    await peer.down();
    const start = peer.accepted.length;
    const id = await createPatient(patient('Downtime'));
    for (let version = 2; version <= 5; version++) {
      const updated = await api('PUT', `${testApp.url}/fhir/Patient/${id}`, {
        body: { ...patient('Downtime'), id, birthDate: `200${version}-01-01` },
      });
      expect(updated.status).toBe(200);
    }
    // Attempts fail while it is down (connection refused), and the messages wait.
    let waiting = await outbox(id);
    try {
      while (waiting[0]!.attempts < 2) {
        await new Promise((resolve) => setTimeout(resolve, 20));
        waiting = await outbox(id);
      }
    } finally {
      await peer.up();
    }
    expect(waiting.map((row) => row.status)).toEqual(Array(5).fill('pending'));
    expect(waiting[0]!.last_error).toBe('ECONNREFUSED');

    const rows = await settled(id);
    expect(rows.map((row) => row.status)).toEqual(Array(5).fill('sent'));
    const received = (await peer.waitForAccepted(start + 5)).slice(start);
    // Each once, in the order of the changes.
    expect(received.map(controlIdOf)).toEqual(rows.map((row) => row.control_id));
    expect(received.map((message) => /\|(200\d)0101\|/.exec(message)?.[1])).toEqual([
      undefined,
      '2002',
      '2003',
      '2004',
      '2005',
    ]);
  });

  it('keeps trying a receiver that stays unreachable past the attempts AE is allowed', async () => {
    await peer.down();
    const start = peer.accepted.length;
    const id = await createPatient(patient('Longoutage'));
    let [row] = await outbox(id);
    try {
      // As after a long outage: one failure short of HL7_OUTBOUND_MAX_ATTEMPTS (8), which set
      // the message aside as dead until 2026-12-06.
      while (row!.attempts < 1) {
        await new Promise((resolve) => setTimeout(resolve, 20));
        [row] = await outbox(id);
      }
      await data.query(
        `UPDATE hl7_outbox SET attempts = 7, next_attempt_at = now() WHERE id = $1`,
        [row!.id],
      );
      while (row!.attempts < 8) {
        await new Promise((resolve) => setTimeout(resolve, 20));
        [row] = await outbox(id);
      }
      expect(row).toMatchObject({
        status: 'pending',
        failed_deliveries: 0,
        last_error: 'ECONNREFUSED',
      });
    } finally {
      await peer.up();
    }
    // Due now rather than after the 8th attempt's back-off (6.4 s), which is not under test.
    await data.query(`UPDATE hl7_outbox SET next_attempt_at = now() WHERE id = $1`, [row!.id]);
    const [sent] = await settled(id);
    expect(sent).toMatchObject({ status: 'sent', ack_code: 'AA' });
    expect((await peer.waitForAccepted(start + 1)).slice(start).map(controlIdOf)).toEqual([
      sent!.control_id,
    ]);
  });

  it('sets aside a message the receiver takes and never answers, and goes on with the next', async () => {
    // A poison message: written each time, never acknowledged. Counted as a failed delivery,
    // as an AE is, it is dead after HL7_OUTBOUND_MAX_ATTEMPTS (8) rather than hold the queue.
    peer.answer = (message) => (message.includes('Poison^') ? 'none' : 'AA');
    // Down at first, so that the one delivery left to fail is the only ACK timeout waited for.
    await peer.down();
    const poison = await createPatient(patient('Poison'));
    let [row] = await outbox(poison);
    try {
      while (row!.attempts < 1) {
        await new Promise((resolve) => setTimeout(resolve, 20));
        [row] = await outbox(poison);
      }
      await data.query(
        `UPDATE hl7_outbox SET failed_deliveries = 7, next_attempt_at = now() WHERE id = $1`,
        [row!.id],
      );
    } finally {
      await peer.up();
    }
    const fine = await createPatient(patient('Afterpoison'));
    expect((await settled(poison))[0]).toMatchObject({
      status: 'dead',
      failed_deliveries: 8,
      last_error: 'ACK_TIMEOUT',
    });
    expect((await settled(fine))[0]).toMatchObject({ status: 'sent' });
  });

  it('waits for the ACK of its own control id, and sends again after a timeout', async () => {
    let attempts = 0;
    peer.answer = () => (++attempts === 1 ? 'stale' : 'AA');
    const start = peer.frames.length;
    const id = await createPatient(patient('Stale'));
    const [row] = await settled(id);
    expect(row).toMatchObject({ status: 'sent', attempts: 2, ack_code: 'AA' });
    const frames = peer.frames.slice(start).map(controlIdOf);
    expect(frames).toEqual([row!.control_id, row!.control_id]);
  });

  it('sets a message aside as dead on AR, or after the last AE, and goes on with the next', async () => {
    peer.answer = (message) =>
      message.includes('Refused^') ? 'AR' : message.includes('Failing^') ? 'AE' : 'AA';
    const refused = await createPatient(patient('Refused'));
    const failing = await createPatient(patient('Failing'));
    const fine = await createPatient(patient('Fine'));
    // After its first AE, as after its seventh: the back-off before the 8th (6.35 s in all) is
    // not under test here.
    let [failed] = await outbox(failing);
    while (failed!.attempts < 1) {
      await new Promise((resolve) => setTimeout(resolve, 20));
      [failed] = await outbox(failing);
    }
    await data.query(
      `UPDATE hl7_outbox SET attempts = 7, failed_deliveries = 7, next_attempt_at = now()
        WHERE id = $1`,
      [failed!.id],
    );
    expect((await settled(refused))[0]).toMatchObject({
      status: 'dead',
      attempts: 1,
      ack_code: 'AR',
    });
    const [dead] = await settled(failing);
    expect(dead).toMatchObject({
      status: 'dead',
      attempts: 8,
      failed_deliveries: 8,
      ack_code: 'AE',
    });
    expect(dead!.last_error).toMatch(/^AE/);
    expect((await settled(fine))[0]).toMatchObject({ status: 'sent' });
    const failures = await data.query<{ n: number }[]>(
      `SELECT count(*)::int AS n FROM audit_event
        WHERE method = 'mllp-out' AND outcome = 'failure' AND patient_ids && $1::text[]`,
      [[refused, failing]],
    );
    expect(failures[0]!.n).toBe(2);

    // Operations list the dead (without content) and send one again once the cause is fixed.
    const ops = authorizedHttp(await tokenFor(testApp, 'integration'));
    const listed = await ops('GET', `${testApp.url}/hl7/outbox?status=dead`);
    expect(listed.status).toBe(200);
    const deadRows = listed.body as Record<string, unknown>[];
    expect(deadRows.map((row) => row['resourceId'])).toEqual(
      expect.arrayContaining([refused, failing]),
    );
    expect(deadRows.every((row) => !('message' in row))).toBe(true);
    // Narrowed to one patient's messages, or to a destination; a page at a time.
    const ofRefused = await ops(
      'GET',
      `${testApp.url}/hl7/outbox?status=dead&resource=Patient/${refused}`,
    );
    expect(ofRefused.body.map((row: Record<string, unknown>) => row['resourceId'])).toEqual([
      refused,
    ]);
    const elsewhere = await ops(
      'GET',
      `${testApp.url}/hl7/outbox?status=dead&destination=nowhere:1`,
    );
    expect(elsewhere.body).toEqual([]);
    const first = await ops('GET', `${testApp.url}/hl7/outbox?status=dead&_count=1`);
    expect(first.body).toHaveLength(1);
    const next = /^<([^>]+)>; rel="next"$/.exec(first.headers.get('link') ?? '')?.[1];
    expect(next).toContain(`_after=${String(first.body[0].seq)}`);
    const second = await ops('GET', `${testApp.url}${next!}`);
    expect(second.body.length).toBeGreaterThan(0);
    expect(BigInt(second.body[0].seq)).toBeGreaterThan(BigInt(first.body[0].seq));
    expect(
      (await ops('GET', `${testApp.url}/hl7/outbox?status=dead&resource=Patient`)).status,
    ).toBe(400);
    expect((await ops('GET', `${testApp.url}/hl7/outbox?status=dead&sort=seq`)).status).toBe(400);
    peer.answer = () => 'AA';
    const failingId = deadRows.find((row) => row['resourceId'] === failing)!['id'] as string;
    const resent = await ops('POST', `${testApp.url}/hl7/outbox/${failingId}/resend`);
    expect(resent.status).toBe(200);
    expect((await settled(failing))[0]).toMatchObject({ status: 'sent', attempts: 1 });
    expect((await ops('POST', `${testApp.url}/hl7/outbox/${failingId}/resend`)).status).toBe(409);
    // The refused registration is older than an update delivered since: resending it would
    // overwrite newer data at the receiver, so it is refused.
    await api('PUT', `${testApp.url}/fhir/Patient/${refused}`, {
      body: { ...patient('Accepted'), id: refused },
    });
    await settled(refused);
    const refusedId = deadRows.find((row) => row['resourceId'] === refused)!['id'] as string;
    const stale = await ops('POST', `${testApp.url}/hl7/outbox/${refusedId}/resend`);
    expect(stale.status).toBe(409);
    expect(stale.text).toContain('later message');
    expect((await api('GET', `${testApp.url}/hl7/outbox?status=dead`)).status).toBe(403);
  });

  it('purges, from the CLI, messages processed and delivered before a date, and nothing else', async () => {
    const tag = `purge-${Date.now()}`;
    const inbound = testApp.app.get(MllpListener).address()!.port;
    const sender = await MllpTestClient.connect(inbound);
    const adt = (control: string, event: string) =>
      `MSH|^~\\&|ADT|HOSP|CV|CV|20240101||ADT^${event}|${control}|P|2.5\rPID|1||${tag}^^^HOSP&2.16.9&ISO^MR||Purge^Pat\rPV1|1|I|||||||||||||||||V-${tag}^^^HOSP&2.16.9&ISO^VN`;
    // One processed (AA), one failed (AE: a discharge of no known visit).
    const acks = await sender.exchange([adt(`${tag}-ok`, 'A28'), adt(`${tag}-ae`, 'A03')]);
    sender.close();
    expect(acks.map((ack) => msaOf(ack).code)).toEqual(['AA', 'AE']);
    const delivered = await createPatient(patient('Purged'));
    await settled(delivered);
    // A delivered message behind which an older one lies dead stays: it is what keeps the
    // dead one from being resent over it (see requeue).
    const guarded = await createPatient(patient('Guarded'));
    await settled(guarded);
    await api('PUT', `${testApp.url}/fhir/Patient/${guarded}`, {
      body: { ...patient('Guarded'), id: guarded, birthDate: '1999-01-01' },
    });
    const [a04] = await settled(guarded);
    await data.query(`UPDATE hl7_outbox SET status = 'dead' WHERE id = $1`, [a04!.id]);
    const old = `now() - interval '40 days'`;
    // Received, and processed, long ago (a message processed only lately stays: see hl7-instances).
    await data.query(
      `UPDATE hl7_message SET received_at = ${old}, processed_at = ${old} WHERE control_id LIKE $1`,
      [`${tag}-%`],
    );
    await data.query(
      `UPDATE hl7_outbox SET sent_at = ${old} WHERE resource_id = ANY($1) AND status = 'sent'`,
      [[delivered, guarded]],
    );
    const env = childEnv({
      DATABASE_URL: process.env['DATABASE_URL']!,
      PHI_MASTER_KEY: process.env['PHI_MASTER_KEY']!,
      LOG_LEVEL: 'silent',
    });
    const before = new Date(Date.now() - 30 * 86_400_000).toISOString();
    const soon = await runNode(BUILT.cli, ['hl7:purge', '--before', new Date().toISOString()], env);
    expect(soon.code).toBe(1);
    expect(soon.stderr).toContain('--before must be at least a day ago');
    const purged = await runNode(BUILT.cli, ['hl7:purge', '--before', before], env);
    expect(purged.code).toBe(0);
    expect(purged.stdout).toMatch(/^Purged [1-9]\d* HL7 message\(s\) and [1-9]\d* outbound/);
    const left = await data.query<{ control_id: string; status: string }[]>(
      `SELECT control_id, status FROM hl7_message WHERE control_id LIKE $1`,
      [`${tag}-%`],
    );
    expect(left).toEqual([{ control_id: `${tag}-ae`, status: 'error' }]);
    expect(await outbox(delivered)).toEqual([]);
    expect((await outbox(guarded)).map((one) => one.status)).toEqual(['dead', 'sent']);
    const [row] = await data.query<{ detail: string }[]>(
      `SELECT detail FROM audit_event WHERE subtype = 'hl7:purge' ORDER BY chain_seq DESC LIMIT 1`,
    );
    expect(row!.detail).toMatch(/^before=\S+ messages=[1-9]\d* outbox=[1-9]\d*$/);
  });

  it('says at start that messages wait for a destination HL7_OUTBOUND no longer names', async () => {
    const resourceId = `stranded-${Date.now()}`;
    await testApp.app.get(UnitOfWork).run(() =>
      testApp.app.get(Hl7OutboxRepository).add(
        [
          {
            destination: '127.0.0.1:9',
            messageType: 'ADT^A08',
            controlId: resourceId,
            resourceType: 'Patient',
            resourceId,
            versionId: 1,
            message: `MSH|^~\\&|CV|CV|R|R|20240101||ADT^A08|${resourceId}|P|2.5`,
          },
        ],
        new Date(),
      ),
    );
    const warn = jest.spyOn(Logger.prototype, 'warn');
    const second = await createTestApp();
    try {
      expect(warn).toHaveBeenCalledWith(
        { destination: '127.0.0.1:9', pending: 1 },
        'HL7 outbound messages wait for a destination HL7_OUTBOUND does not name: name it again to send them',
      );
    } finally {
      warn.mockRestore();
      await second.close();
      await data.query(`DELETE FROM hl7_outbox WHERE resource_id = $1`, [resourceId]);
    }
  });

  it('with two instances on one database, sends each message once and in order', async () => {
    const second = await createTestApp();
    try {
      const start = peer.accepted.length;
      const id = await createPatient(patient('Shared'));
      for (let version = 2; version <= 20; version++) {
        await api('PUT', `${testApp.url}/fhir/Patient/${id}`, {
          body: { ...patient('Shared'), id, birthDate: `19${version + 50}-01-01` },
        });
      }
      const rows = await settled(id);
      expect(rows).toHaveLength(20);
      const received = (await peer.waitForAccepted(start + 20)).slice(start);
      expect(received.map(controlIdOf)).toEqual(rows.map((row) => row.control_id));
      expect(peer.accepted.length).toBe(start + 20);
    } finally {
      await second.close();
    }
  });

  it('refuses to resend a dead message once a later one, in flight meanwhile, is delivered', async () => {
    const repository = testApp.app.get(Hl7OutboxRepository);
    const unitOfWork = testApp.app.get(UnitOfWork);
    // A destination no worker here sends to: the test plays the worker.
    const destination = '127.0.0.1:1';
    const resourceId = `requeue-${Date.now()}`;
    const message = (version: number) => ({
      destination,
      messageType: 'ADT^A08',
      controlId: `${resourceId}-${version}`,
      resourceType: 'Patient',
      resourceId,
      versionId: version,
      message: `MSH|^~\\&|CV|CV|R|R|20240101||ADT^A08|${resourceId}-${version}|P|2.5`,
    });
    await unitOfWork.run(() => repository.add([message(1), message(2)], new Date()));
    const [older, later] = await outbox(resourceId);
    await data.query(`UPDATE hl7_outbox SET status = 'dead' WHERE id = $1`, [older!.id]);

    // The worker claims the later message and holds it while it waits for the ACK...
    let acked!: () => void;
    const ack = new Promise<void>((resolve) => (acked = resolve));
    let claimed!: () => void;
    const isClaimed = new Promise<void>((resolve) => (claimed = resolve));
    const sending = unitOfWork.run(async () => {
      expect((await repository.claimNext(destination, 60_000))?.id).toBe(later!.id);
      claimed();
      await ack;
      const now = new Date();
      await repository.recordAttempt(later!.id, {
        status: 'sent',
        attempts: 1,
        failedDeliveries: 0,
        nextAttemptAt: now,
        ackCode: 'AA',
        lastError: null,
        sentAt: now,
      });
    });
    await isClaimed;
    // ...when an operator resends the older one: it waits for that send to end.
    const resent = repository.requeue(older!.id);
    await untilWaitingForLock(data, 'The resend');
    acked();
    await sending;
    expect(await resent).toBe(false);
    expect((await outbox(resourceId)).map((row) => row.status)).toEqual(['dead', 'sent']);
  });
});
