import { randomUUID } from 'node:crypto';
import { DataSource } from 'typeorm';
import { MllpListener } from '../../src/hl7/mllp/mllp-listener.js';
import { tokenFor } from '../support/auth.js';
import { withEnv } from '../support/env.js';
import { authorizedHttp } from '../support/http.js';
import { msaOf, MllpTestClient } from '../support/mllp.js';
import { createTestApp, type TestApp } from '../support/test-app.js';

/**
 * A feed sends message types a deployment does not want, and an AR would stop the sender's
 * queue: HL7_IGNORE acknowledges them (AA) and keeps them, unmapped, for a reprocess later.
 */
describe('HL7 v2 message types acknowledged without mapping (HL7_IGNORE)', () => {
  let restoreEnv: () => void;
  let testApp: TestApp;
  let sender: MllpTestClient;

  beforeAll(async () => {
    // A whole type, and every event of a message code (in lower case: codes are matched as
    // HL7 writes them).
    restoreEnv = withEnv({ HL7_IGNORE: 'ADT^A29, dft' });
    testApp = await createTestApp();
    sender = await MllpTestClient.connect(testApp.app.get(MllpListener).address()!.port);
  });

  afterAll(async () => {
    sender.close();
    await testApp.close();
    restoreEnv();
  });

  it('answers AA, keeps them as ignored, resends alike, and processes one on reprocess', async () => {
    const tag = randomUUID().slice(0, 8);
    const message = (type: string, control: string, ...segments: string[]) =>
      Buffer.from(
        [
          `MSH|^~\\&|BILLING|HOSP|CV|CV|20250101||${type}|${control}-${tag}|P|2.5`,
          `PID|1||IGN-${tag}^^^HOSP&2.16.28&ISO^MR||Ignore^Pat`,
          ...segments,
        ].join('\r'),
      );
    const charge = message(
      'DFT^P03',
      'I3',
      `FT1|1|T-${tag}||20250110||CG|71045^Xray exam chest 1 view^C4|||1|100&USD`,
    );
    const steps = [
      message('ADT^A28', 'I1'),
      message('ADT^A29', 'I2'),
      charge,
      message('ADT^A29', 'I2'), // a resend: the same answer, stored once
      message('ADT^A45', 'I4'), // not named: mapped (no MRG, so AE) as without HL7_IGNORE
    ];
    await sender.send(steps);
    const acks = await sender.waitForAcks(steps.length);
    expect(acks.map((ack) => msaOf(ack).code)).toEqual(['AA', 'AA', 'AA', 'AA', 'AE']);
    const data = testApp.app.get(DataSource);
    const stored = await data.query<{ control_id: string; status: string }[]>(
      `SELECT control_id, status FROM hl7_message WHERE control_id LIKE $1 ORDER BY control_id`,
      [`%-${tag}`],
    );
    expect(stored.map((row) => [row.control_id, row.status])).toEqual([
      [`I1-${tag}`, 'processed'],
      [`I2-${tag}`, 'ignored'],
      [`I3-${tag}`, 'ignored'],
      [`I4-${tag}`, 'error'],
    ]);
    // Audited as accepted, and listed for whoever looks after the feed.
    const [audit] = await data.query<{ outcome: string; detail: string }[]>(
      `SELECT a.outcome, a.detail FROM audit_event a JOIN hl7_message m ON a.request_id = m.id::text
        WHERE m.control_id = $1`,
      [`I2-${tag}`],
    );
    expect(audit).toEqual({ outcome: 'success', detail: 'AA ignored' });
    const integration = authorizedHttp(await tokenFor(testApp, 'integration'));
    const listed = await integration('GET', `${testApp.url}/hl7/messages?status=ignored`);
    const ignored = (
      listed.body as { id: string; controlId: string; messageType: string }[]
    ).filter((row) => row.controlId.endsWith(tag));
    expect(ignored.map((row) => row.messageType).sort()).toEqual(['ADT^A29', 'DFT^P03']);
    // Nothing was mapped from the charge; a reprocess (once the deployment wants charges) does.
    const billing = authorizedHttp(await tokenFor(testApp, 'billing'));
    const chargeItems = () =>
      billing(
        'GET',
        `${testApp.url}/fhir/ChargeItem?identifier=${encodeURIComponent(`urn:carevault:v2:assigning-authority:HOSP|T-${tag}`)}`,
      );
    expect((await chargeItems()).body.entry ?? []).toHaveLength(0);
    const dft = ignored.find((row) => row.messageType === 'DFT^P03')!;
    const reprocessed = await integration(
      'POST',
      `${testApp.url}/hl7/messages/${dft.id}/reprocess`,
    );
    expect(reprocessed.body).toMatchObject({ status: 'processed', ackCode: 'AA' });
    expect((await chargeItems()).body.entry).toHaveLength(1);
  });
});
