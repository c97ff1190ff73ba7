import { randomUUID } from 'node:crypto';
import { MllpListener } from '../../src/hl7/mllp/mllp-listener.js';
import { tokenFor } from '../support/auth.js';
import { withEnv } from '../support/env.js';
import { authorizedHttp } from '../support/http.js';
import { msaOf, MllpTestClient } from '../support/mllp.js';
import { createTestApp, type TestApp } from '../support/test-app.js';

/**
 * Most HL7 v2 feeds send local times without a UTC offset. With HL7_TIME_ZONE naming the
 * senders' zone, such a time keeps its time of day, at the offset of its date (daylight saving
 * included), and an appointment so timed can be booked.
 */
describe('HL7 v2 times without an offset, with HL7_TIME_ZONE', () => {
  let restoreEnv: () => void;
  let testApp: TestApp;
  let sender: MllpTestClient;

  beforeAll(async () => {
    restoreEnv = withEnv({
      HL7_TIME_ZONE: 'America/Chicago',
      HL7_FACILITY_TIME_ZONES: 'EASTCLINIC=America/New_York, 2.16.77=Asia/Kolkata',
    });
    testApp = await createTestApp();
    sender = await MllpTestClient.connect(testApp.app.get(MllpListener).address()!.port);
  });

  afterAll(async () => {
    sender.close();
    await testApp.close();
    restoreEnv();
  });

  it("places results and appointments at the offset their date has in the senders' zone", async () => {
    const tag = randomUUID().slice(0, 8);
    const head = (type: string, control: string) =>
      [
        `MSH|^~\\&|LAB|HOSP|CV|CV|20250101||${type}|${control}-${tag}|P|2.5`,
        `PID|1||TZ-${tag}^^^HOSP&2.16.22&ISO^MR||Zone^Pat`,
      ].join('\r');
    await sender.send([
      Buffer.from(
        `${head('ORU^R01', 'Z1')}\rOBR|1||W-${tag}^LAB^2.16.22^ISO|2345-7^Glucose^LN|||202501100930` +
          `\rOBX|1|NM|2345-7^Glucose^LN||5.4|mmol/L^^UCUM|||||F|||202501100930` +
          `\rOBR|2||S-${tag}^LAB^2.16.22^ISO|2345-7^Glucose^LN|||202507100930` +
          `\rOBX|1|NM|2345-7^Glucose^LN||6.1|mmol/L^^UCUM|||||F|||202507100930`,
      ),
      Buffer.from(
        `${head('SIU^S12', 'Z2')}\rSCH||A-${tag}^SCHED^2.16.22^ISO|||||ROUTINE||30|min|` +
          `||||||||||||||Booked\rTQ1|||||||202503101000`,
      ),
    ]);
    const acks = await sender.waitForAcks(2);
    expect(acks.map((ack) => msaOf(ack).code)).toEqual(['AA', 'AA']);
    const http = authorizedHttp(await tokenFor(testApp, 'doctor'));
    const patients = await http(
      'GET',
      `${testApp.url}/fhir/Patient?identifier=${encodeURIComponent(`urn:oid:2.16.22|TZ-${tag}`)}`,
    );
    const patientId = String(patients.body.entry[0].resource.id);
    const results = await http(
      'GET',
      `${testApp.url}/fhir/Observation?subject=Patient/${patientId}&_sort=date`,
    );
    expect(
      results.body.entry.map(
        (e: { resource: { effectiveDateTime: string } }) => e.resource.effectiveDateTime,
      ),
    ).toEqual(['2025-01-10T09:30:00-06:00', '2025-07-10T09:30:00-05:00']);
    const appointments = await http(
      'GET',
      `${testApp.url}/fhir/Appointment?identifier=${encodeURIComponent(`urn:oid:2.16.22|A-${tag}`)}`,
    );
    expect(appointments.body.entry[0].resource).toMatchObject({
      status: 'booked',
      start: '2025-03-10T10:00:00-05:00',
      end: '2025-03-10T10:30:00-05:00',
    });
  });

  it('places the times of a facility in another zone at its own offset (HL7_FACILITY_TIME_ZONES)', async () => {
    const tag = randomUUID().slice(0, 8);
    // By MSH-4's namespace (in any case), by its universal id, and a facility not listed.
    const oru = (control: string, facility: string) =>
      Buffer.from(
        [
          `MSH|^~\\&|LAB|${facility}|CV|CV|20250101||ORU^R01|${control}-${tag}|P|2.5`,
          `PID|1||FZ-${tag}^^^HOSP&2.16.23&ISO^MR||Zone^Pat`,
          `OBR|1||${control}-${tag}^LAB^2.16.23^ISO|2345-7^Glucose^LN|||202501100930`,
          'OBX|1|NM|2345-7^Glucose^LN||5.4|mmol/L^^UCUM|||||F|||202501100930',
        ].join('\r'),
      );
    await sender.send([
      oru('E', 'EastClinic'),
      oru('K', 'CLINIC^2.16.77^ISO'),
      oru('C', 'WESTCLINIC'),
    ]);
    const acks = await sender.waitForAcks(5);
    expect(acks.slice(2).map((ack) => msaOf(ack).code)).toEqual(['AA', 'AA', 'AA']);
    const http = authorizedHttp(await tokenFor(testApp, 'doctor'));
    const reports = await http(
      'GET',
      `${testApp.url}/fhir/DiagnosticReport?code=${encodeURIComponent('http://loinc.org|2345-7')}&_count=100`,
    );
    const effective = new Map(
      (reports.body.entry as { resource: Record<string, any> }[])
        .filter((e) => String(e.resource['identifier'][0].value).endsWith(tag))
        .map((e) => [e.resource['identifier'][0].value, e.resource['effectiveDateTime']]),
    );
    expect(effective).toEqual(
      new Map([
        [`E-${tag}`, '2025-01-10T09:30:00-05:00'],
        [`K-${tag}`, '2025-01-10T09:30:00+05:30'],
        [`C-${tag}`, '2025-01-10T09:30:00-06:00'],
      ]),
    );
  });
});
