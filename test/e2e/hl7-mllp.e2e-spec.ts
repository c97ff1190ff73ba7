import { randomBytes, randomUUID } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { jest } from '@jest/globals';
import { DataSource, type EntityManager } from 'typeorm';
import { HL7_MEDIA_TYPE } from '../../src/common/http/media-types.js';
import { PhiSafeTypeOrmLogger } from '../../src/database/typeorm-logger.js';
import { UnitOfWork } from '../../src/database/unit-of-work.js';
import { CriteriaMatches } from '../../src/fhir/criteria-matches.service.js';
import { FhirService } from '../../src/fhir/fhir.service.js';
import { HL7_USER } from '../../src/hl7/hl7-user.js';
import { senderSystem } from '../../src/hl7/inbound/message-patients.js';
import { identifierCriteria, patientFromSegments } from '../../src/hl7/mapping/patient.js';
import { decodeMessage } from '../../src/hl7/message/hl7-header.js';
import { V2Message } from '../../src/hl7/message/v2-message.js';
import { MllpListener } from '../../src/hl7/mllp/mllp-listener.js';
import { tokenFor } from '../support/auth.js';
import { authorizedHttp, type HttpFn } from '../support/http.js';
import { heldDelete, neverTheDeadlockVictim, untilWaitingForLock } from '../support/locks.js';
import { msaOf, MllpTestClient } from '../support/mllp.js';
import { BUILT, childEnv, runNode } from '../support/process.js';
import { createTestApp, type TestApp } from '../support/test-app.js';

const SAMPLES = join(process.cwd(), '..', 'shared', 'hl7-samples', 'fhir-converter');
const samples = readdirSync(SAMPLES)
  .filter((file) => file.endsWith('.hl7'))
  .sort()
  .map((file) => ({ file, bytes: readFileSync(join(SAMPLES, file)) }));

/** The record types an ACK's warning says an older message left as they were, if it says so. */
function kept(ack: string): string | undefined {
  return /\|Older than a message already applied to its ([^(]*) \(/.exec(ack)?.[1];
}

describe('HL7 v2 over MLLP', () => {
  let testApp: TestApp;
  let port: number;
  let data: DataSource;
  const clients: MllpTestClient[] = [];
  const client = async (): Promise<MllpTestClient> => {
    const opened = await MllpTestClient.connect(port);
    clients.push(opened);
    return opened;
  };

  beforeAll(async () => {
    testApp = await createTestApp();
    port = testApp.app.get(MllpListener).address()!.port;
    data = testApp.app.get(DataSource);
  });

  afterAll(async () => {
    for (const opened of clients) opened.close();
    await testApp.close();
  });

  // One doctor for the reads through the API that most tests end with: a user made and signed
  // in per test cost two Argon2id hashes each, and no test here depends on which doctor reads.
  // Signed in again after ten minutes, well within the access token's fifteen.
  let signedIn: { http: HttpFn; at: number } | undefined;
  const doctorHttp = async (): Promise<HttpFn> => {
    if (!signedIn || Date.now() - signedIn.at > 10 * 60_000) {
      signedIn = { http: authorizedHttp(await tokenFor(testApp, 'doctor')), at: Date.now() };
    }
    return signedIn.http;
  };

  const storedCount = async (): Promise<number> =>
    (await data.query<{ n: number }[]>('SELECT count(*)::int AS n FROM hl7_message'))[0]!.n;

  it('answers every sample, pipelined on one connection in 7-byte writes, once and in order', async () => {
    const before = await storedCount();
    const sender = await client();
    await sender.send(
      samples.map((sample) => sample.bytes),
      7,
    );
    const acks = await sender.waitForAcks(samples.length);
    expect(acks.map((ack) => msaOf(ack).controlId)).toEqual(
      samples.map((sample) => decodeMessage(sample.bytes).header.controlId),
    );
    // AA for every supported type, AR naming table 0357's 200 or 201 for the others.
    const supported =
      /^(ADT\^A(0[1-9]|1[0-6]|18|2[125-8]|3[1-468]|40|45|47|5[23]|60)|MDM\^T(0[1-9]|1[01])|SIU\^S(1[2-9]|2[0-2]|26)|PPR\^PC[1-3]|REF\^I1[24]|BAR\^P(01|12)|DFT\^P(03|11)|ORU\^R01|OUL\^R2[2-4]|ORM\^O01|OML\^O21|OMG\^O19|VXU\^V04|RDE\^O(11|25)|RDS\^O13)$/;
    for (const [i, ack] of acks.entries()) {
      const { messageCode, triggerEvent } = decodeMessage(samples[i]!.bytes).header;
      if (/^PC1-Problem-(Update|Delete)/.test(samples[i]!.file)) {
        // PID-3 `10291^^^^WEST^MR` names no assigning authority (WEST is in CX-5, the type),
        // and MSH-3 and MSH-4 are empty: a patient no later message could find again.
        expect(msaOf(ack).code).toBe('AE');
        expect(ack).toContain('PID-3 holds no identifier with an assigning authority');
      } else if (samples[i]!.file === 'ADT01-28.hl7') {
        // Its MRN (PATID1234 of ADT1) is the patient's of ADT-A06, its SSN the one of
        // ADT-A01's: two patients. Refused rather than filed under either.
        expect(msaOf(ack).code).toBe('AE');
        expect(ack).toContain('PID-3 name more than one patient');
      } else if (samples[i]!.file === 'MDHHS-OML-O21-2.hl7') {
        // Its placer order number (ORD723222 of the authority 2.16.840.1.113883.3.72.5.24) is
        // the order of MDHHS-OML-O21-1's patient: another patient's order is not written over.
        expect(msaOf(ack).code).toBe('AE');
        expect(ack).toContain("another patient's order");
      } else if (
        ['OML-O21-03.hl7', 'OMG-O19-02.hl7', 'OMG-O19-01.hl7'].includes(samples[i]!.file)
      ) {
        // Their first order is a status change (ORC-1 SC) of no order number, and the last of
        // two cancels (CA) an order NI-2 no sample placed: not filed as new ones, the sender
        // told the order is not known here.
        expect(msaOf(ack).code).toBe('AE');
        expect(ack).toContain('204^');
      } else if (supported.test(`${messageCode}^${triggerEvent}`)) {
        expect([samples[i]!.file, msaOf(ack).code]).toEqual([samples[i]!.file, 'AA']);
      } else {
        expect([samples[i]!.file, msaOf(ack).code]).toEqual([samples[i]!.file, 'AR']);
        expect(ack).toMatch(/\rERR\|.*20[01][\^&]Unsupported/);
      }
    }
    expect(await storedCount()).toBe(before + samples.length);
    // Stored as PHI: the raw text is an envelope, never the message.
    const rows = await data.query<{ raw: string }[]>('SELECT raw FROM hl7_message');
    for (const row of rows) expect(row.raw).toMatch(/^cv1\./);
    // An allergen sent without a coding system (`XYZallergen`, in 15 samples) is one allergy
    // per patient, found again by its code without a system rather than added each time.
    const http = await doctorHttp();
    const uncoded = await http(
      'GET',
      `${testApp.url}/fhir/AllergyIntolerance?code=${encodeURIComponent('|XYZallergen')}`,
    );
    const patients = (uncoded.body.entry as { resource: { patient: { reference: string } } }[]).map(
      (entry) => entry.resource.patient.reference,
    );
    expect(patients.length).toBeGreaterThan(0);
    expect(new Set(patients).size).toBe(patients.length);
    // Every message is audited as coming from HL7.
    const [audited] = await data.query<{ n: number }[]>(
      `SELECT count(*)::int AS n FROM audit_event WHERE source = 'hl7'`,
    );
    expect(audited!.n).toBeGreaterThanOrEqual(samples.length);
  });

  it('maps ADT messages to FHIR: AA, and the resources can be found through the API', async () => {
    const adt = samples.filter((sample) =>
      /^ADT-A(01|03|04|05|08|28|31)-0[12]\.hl7$/.test(sample.file),
    );
    const sender = await client();
    await sender.send(adt.map((sample) => sample.bytes));
    const acks = await sender.waitForAcks(adt.length);
    // Resends of the first test's messages: their stored answers.
    expect(acks.map((ack) => msaOf(ack).code)).toEqual(adt.map(() => 'AA'));

    const http = await doctorHttp();
    const system = 'urn:carevault:v2:assigning-authority:test1';
    const found = await http(
      'GET',
      `${testApp.url}/fhir/Patient?identifier=${encodeURIComponent(`${system}|PATID1234`)}`,
    );
    const entries = found.body.entry as { resource: Record<string, unknown> }[];
    expect(entries).toHaveLength(1);
    const patient = entries[0]!.resource;
    // Every PID-3 identifier, the SSN with its authority as the system.
    expect(patient['identifier']).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ system, value: 'PATID1234' }),
        expect.objectContaining({
          system: 'urn:carevault:v2:assigning-authority:USSSA',
          value: '123456789',
        }),
      ]),
    );
    expect(patient['birthDate']).toBe('1988-08-18');
    const encounters = await http(
      'GET',
      `${testApp.url}/fhir/Encounter?subject=Patient/${String(patient['id'])}`,
    );
    expect((encounters.body.entry as unknown[]).length).toBeGreaterThanOrEqual(1);
    // ADT-A01-01's attending doctor (PV1-7) and hospital service (PV1-10); its admit source
    // (PV1-14) is free text, not a code of table 0023, so it is not said to be one.
    const visit = (encounters.body.entry as { resource: Record<string, any> }[]).find(
      (entry) => entry.resource['serviceType'],
    )!.resource;
    expect(visit['participant']).toContainEqual(
      expect.objectContaining({
        type: [expect.objectContaining({ coding: [expect.objectContaining({ code: 'ATND' })] })],
        individual: expect.objectContaining({
          identifier: expect.objectContaining({ value: '1122334' }),
        }),
      }),
    );
    expect(visit['serviceType'].coding[0]).toEqual({
      system: 'http://terminology.hl7.org/CodeSystem/v2-0069',
      code: 'SUR',
    });
    expect(visit['hospitalization'].admitSource.coding[0].system).toBeUndefined();
    // ADT-A01-01's PV2-3 admit reason.
    expect(
      (encounters.body.entry as { resource: Record<string, unknown> }[]).map(
        (entry) => entry.resource['reasonCode'],
      ),
    ).toContainEqual([
      expect.objectContaining({ coding: [expect.objectContaining({ code: '140004' })] }),
    ]);
    // ADT-A01-01's AL1 and DG1, once each although several messages repeat them; the
    // other allergy is ADT-A60-01's IAM (peanut, its IAM-7 56789).
    const allergies = await http(
      'GET',
      `${testApp.url}/fhir/AllergyIntolerance?patient=Patient/${String(patient['id'])}`,
    );
    const allergy = (code: string) =>
      (allergies.body.entry as { resource: Record<string, any> }[]).filter(
        (entry) => entry.resource['code'].coding[0].code === code,
      );
    expect(allergies.body.entry).toHaveLength(2);
    expect(allergy('12345')).toEqual([
      expect.objectContaining({
        resource: expect.objectContaining({
          identifier: [{ system: 'urn:oid:1.3.6.1.4.1.44750.1.4', value: '56789' }],
        }),
      }),
    ]);
    expect(allergy('P')[0]!.resource).toMatchObject({
      category: ['environment'],
      criticality: 'low',
      code: { coding: [{ code: 'P', display: 'PENICILLIN' }] },
      onsetDateTime: '2021-08-24',
    });
    // PR1's procedure, the same one (PR1-19 PR1006) in the many messages that repeat it (the
    // BAR samples add a chest X-ray of their own).
    const procedures = await http(
      'GET',
      `${testApp.url}/fhir/Procedure?subject=Patient/${String(patient['id'])}&code=${encodeURIComponent('http://snomed.info/sct|76164006')}`,
    );
    expect(procedures.body.entry).toHaveLength(1);
    expect(procedures.body.entry[0].resource).toMatchObject({ identifier: [{ value: 'PR1006' }] });
    // (The BAR samples add a chest pain of their own.)
    const conditions = await http(
      'GET',
      `${testApp.url}/fhir/Condition?subject=Patient/${String(patient['id'])}&code=${encodeURIComponent('http://snomed.info/sct|422504002')}`,
    );
    expect(conditions.body.entry).toHaveLength(1);
    expect(conditions.body.entry[0].resource).toMatchObject({
      verificationStatus: { coding: [{ code: 'provisional' }] },
      recordedDate: '2004-01-25T11:40:25+04:20',
    });
    // PD1's primary care provider, as ADT-A01-01 sent it: in the version it wrote, which may not
    // be the current one. The samples' order by time depends on the day the test runs: their
    // EVN-2 is 2029-08-01, which until then is too far ahead to order anything, and after it
    // is newer than the 2021 samples that name another provider.
    const versions = await http(
      'GET',
      `${testApp.url}/fhir/Patient/${String(patient['id'])}/_history?_count=1000`,
    );
    expect(
      (versions.body.entry as { resource: Record<string, any> }[]).map(
        (entry) => entry.resource['generalPractitioner'],
      ),
    ).toContainEqual(
      expect.arrayContaining([expect.objectContaining({ display: 'Dr rold H Hippo V' })]),
    );
    // NK1's next of kin, matched again on each update rather than added: ADT-A01-01's, by its
    // NK1-33 identifiers (by name: see the visit test below).
    const kin = await http(
      'GET',
      `${testApp.url}/fhir/RelatedPerson?patient=Patient/${String(patient['id'])}`,
    );
    const kinResources = (kin.body.entry as { resource: Record<string, unknown> }[]).map(
      (entry) => entry.resource,
    );
    expect(kinResources).toEqual([
      expect.objectContaining({
        name: [expect.objectContaining({ family: 'Evan', given: ['ADAM', 'A'] })],
        relationship: [
          expect.objectContaining({ coding: expect.arrayContaining([{ code: 'CHD' }]) }),
          { coding: [{ code: 'O' }] },
        ],
        period: { start: '2021-08-18', end: '2021-12-18' },
      }),
    ]);
    // IN1's policy, once, however many messages repeat it (the DFT samples add one of their own).
    const coverage = await http(
      'GET',
      `${testApp.url}/fhir/Coverage?beneficiary=Patient/${String(patient['id'])}`,
    );
    const policies = (coverage.body.entry as { resource: Record<string, any> }[]).filter(
      (entry) => entry.resource['identifier'][0].value === 'PN-145',
    );
    expect(policies).toHaveLength(1);
    expect(policies[0]!.resource).toMatchObject({
      status: 'active',
      identifier: [{ value: 'PN-145' }],
      payor: [{ display: 'Blue Cross Blue Shield of Texas' }],
      period: { start: '1989-10-01', end: '2050-10-01' },
    });
  });

  it('maps ORU R01 to a DiagnosticReport with Observations of the right value types', async () => {
    const oru = samples.filter((sample) =>
      ['LAB-ORU-1.hl7', 'LAB-ORU-2.hl7', 'ORU-R01-01.hl7'].includes(sample.file),
    );
    const sender = await client();
    await sender.send(oru.map((sample) => sample.bytes));
    expect((await sender.waitForAcks(3)).map((ack) => msaOf(ack).code)).toEqual(['AA', 'AA', 'AA']);
    const http = await doctorHttp();
    const search = async (query: string) =>
      ((await http('GET', `${testApp.url}/fhir/${query}`)).body.entry ?? []) as {
        resource: Record<string, unknown>;
      }[];
    // LAB-ORU-1 reports erythrocytes as preliminary 4.06; LAB-ORU-2, the same order later, as
    // final 4.08: one Observation, updated, with units and status from OBX-6 and OBX-11.
    const erythrocytes = await search(
      `Observation?code=${encodeURIComponent('http://loinc.org|11273-0')}`,
    );
    expect(erythrocytes).toHaveLength(1);
    expect(erythrocytes[0]!.resource).toMatchObject({
      meta: { versionId: '2' },
      status: 'final',
      valueQuantity: { value: 4.08, unit: 'tera.l-1' },
      effectiveDateTime: '2014-10-06T08:30:00+07:00',
      // OBX-8 N, in the code system R4 binds interpretation to.
      interpretation: [
        {
          coding: [
            {
              system: 'http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation',
              code: 'N',
            },
          ],
        },
      ],
    });
    // Their specimen (the SPM after the OBR), one for both reports: blood, collected at 05:35,
    // received at 06:21 as LAB-ORU-2, the later message, has it (LAB-ORU-1 said 08:21).
    const specimen = await http(
      'GET',
      `${testApp.url}/fhir/${String((erythrocytes[0]!.resource['specimen'] as { reference: string }).reference)}`,
    );
    expect(specimen.body).toMatchObject({
      type: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v2-0487', code: 'BLD' }] },
      collection: { collectedDateTime: '2014-10-06T05:35:00+07:00' },
      receivedTime: '2014-10-06T06:21:00+07:00',
    });
    // ORU-R01-01: a CWE result as a CodeableConcept (SNOMED CT), a local code system kept.
    const system = 'urn:carevault:v2:coding-system:XYZ';
    const cultures = await search(`Observation?code=${encodeURIComponent(`${system}|625-4`)}`);
    expect(cultures.map((entry) => entry.resource['valueCodeableConcept'])).toContainEqual(
      expect.objectContaining({
        coding: [{ system: 'http://snomed.info/sct', code: '27268008', display: 'Salmonella' }],
      }),
    );
    // Its abnormal flag A^A^HL70078 in the v3 system R4 binds (until 2026-12-06, table 0078's).
    expect(cultures.map((entry) => entry.resource['interpretation'])).toContainEqual([
      {
        coding: [
          {
            system: 'http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation',
            code: 'A',
            display: 'A',
          },
        ],
        text: 'A',
      },
    ]);
    // The NTE after its OBX (and the PRT between) as the result's notes.
    expect(cultures.map((entry) => entry.resource['note'])).toContainEqual([
      { text: 'Submission of serum' },
      { text: 'No Antibodies Detected' },
    ]);
    // Its OBR-24 (BLB, blood bank): laboratory results, found as a SMART lab app asks. The order
    // samples (OML-O21-01, ORM-O01-02) send that OBX too, as their orders' answers, of no OBR-24.
    const laboratory = await search(
      `Observation?code=${encodeURIComponent(`${system}|625-4`)}&category=laboratory`,
    );
    expect(laboratory).toHaveLength(1);
    const culture = laboratory[0]!.resource;
    const subject = (culture['subject'] as { reference: string }).reference;
    const reports = await search(`DiagnosticReport?subject=${subject}`);
    expect(reports.map((entry) => entry.resource['category'])).toContainEqual([
      { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v2-0074', code: 'BLB' }] },
    ]);
    expect(reports.length).toBeGreaterThanOrEqual(1);
    expect(reports.flatMap((entry) => entry.resource['result'] as unknown[])).toContainEqual({
      reference: `Observation/${String(culture['id'])}`,
    });
  });

  it('takes a patient with an impossible birth date, and warns (ERR W) that PID-7 was left out', async () => {
    const adt = Buffer.from(
      'MSH|^~\\&|ADT|HOSP|CV|CV|20240101||ADT^A28|BD-1|P|2.5\rPID|1||BD-1^^^HOSP&2.16.12&ISO^MR||Baddate^Pat||19801345|F',
    );
    const sender = await client();
    // Sent twice: the resend gets the stored answer, warning and all.
    await sender.send([adt, adt]);
    const acks = await sender.waitForAcks(2);
    for (const ack of acks) {
      expect(msaOf(ack).code).toBe('AA');
      expect(ack.split('\r')).toContainEqual(
        'ERR||PID^1^7|102^Data type error^HL70357|W||||PID-7 (birth date) is not a date (YYYY[MM[DD]]) and was left out; the rest was taken',
      );
      expect(ack).not.toContain('19801345');
    }
    const http = authorizedHttp(await tokenFor(testApp, 'doctor'));
    const found = await http(
      'GET',
      `${testApp.url}/fhir/Patient?identifier=${encodeURIComponent('urn:oid:2.16.12|BD-1')}`,
    );
    expect(found.body.entry).toHaveLength(1);
    expect(found.body.entry[0].resource).toMatchObject({
      name: [{ family: 'Baddate' }],
      gender: 'female',
    });
    expect(found.body.entry[0].resource.birthDate).toBeUndefined();
  });

  it("keeps a newborn's time of birth (PID-7) as patient-birthTime, until the date is corrected", async () => {
    const adt = (control: string, birth: string) =>
      `MSH|^~\\&|ADT|HOSP|CV|CV|20261206||ADT^A28|${control}|P|2.5\rPID|1||BT-1^^^HOSP&2.16.12&ISO^MR||Newborn^Baby||${birth}|F`;
    const sender = await client();
    expect(msaOf((await sender.exchange([adt('BT-1', '202612052347-0500')]))[0]!).code).toBe('AA');
    const http = authorizedHttp(await tokenFor(testApp, 'doctor'));
    const patient = async () =>
      (
        await http(
          'GET',
          `${testApp.url}/fhir/Patient?identifier=${encodeURIComponent('urn:oid:2.16.12|BT-1')}`,
        )
      ).body.entry[0].resource;
    expect(await patient()).toMatchObject({
      birthDate: '2026-12-05',
      _birthDate: {
        extension: [
          {
            url: 'http://hl7.org/fhir/StructureDefinition/patient-birthTime',
            valueDateTime: '2026-12-05T23:47:00-05:00',
          },
        ],
      },
    });
    expect(msaOf((await sender.exchange([adt('BT-2', '20261204')]))[0]!).code).toBe('AA');
    const corrected = await patient();
    expect(corrected.birthDate).toBe('2026-12-04');
    expect(corrected._birthDate).toBeUndefined();
  });

  it('takes a message over HTTPS too (POST /hl7/v2), for the integration role only', async () => {
    const body = Buffer.from(
      'MSH|^~\\&|WEB|HOSP|CV|CV|20240101||ADT^A28|WEB-1|P|2.5\rPID|1||W-1^^^HOSP&2.16.7&ISO^MR||Web^Posted||19900101|M',
    );
    const post = (token: string, contentType = 'x-application/hl7-v2+er7') =>
      fetch(`${testApp.url}/hl7/v2`, {
        method: 'POST',
        headers: { authorization: `Bearer ${token}`, 'content-type': contentType },
        body,
      });
    // Nor an administrator, who looks after the stored messages but writes no records.
    for (const role of ['doctor', 'admin'] as const) {
      expect((await post(await tokenFor(testApp, role))).status).toBe(403);
    }
    const integration = await tokenFor(testApp, 'integration');
    const accepted = await post(integration);
    expect(accepted.status).toBe(200);
    expect(accepted.headers.get('content-type')).toContain('x-application/hl7-v2+er7');
    expect(msaOf(await accepted.text())).toEqual({ code: 'AA', controlId: 'WEB-1' });
    // text/plain is taken as well; the same message again is answered from storage.
    const again = await post(integration, 'text/plain');
    expect(msaOf(await again.text())).toEqual({ code: 'AA', controlId: 'WEB-1' });
    const [row] = await data.query<{ n: number; channel: string }[]>(
      `SELECT count(*)::int AS n, min(channel) AS channel FROM hl7_message WHERE control_id = 'WEB-1'`,
    );
    expect(row).toEqual({ n: 1, channel: 'http' });
    // Another type is a 415 naming the types this route takes, not those of the FHIR API.
    const octets = await post(integration, 'application/octet-stream');
    expect(octets.status).toBe(415);
    expect(await octets.json()).toMatchObject({
      issue: [{ code: 'not-supported', diagnostics: expect.stringContaining(HL7_MEDIA_TYPE) }],
    });
  });

  it('answers AR for a message holding NUL, in its MSH or its content, and keeps it rejected', async () => {
    // In MSH-10 it failed the insert of the message row (a 500, or on MLLP no ACK, so the sender
    // resent it for ever); in a PID it failed the mapped write (AE 207 "internal error").
    const tag = randomUUID().slice(0, 8);
    const integration = await tokenFor(testApp, 'integration');
    const post = (text: string) =>
      fetch(`${testApp.url}/hl7/v2`, {
        method: 'POST',
        headers: { authorization: `Bearer ${integration}`, 'content-type': HL7_MEDIA_TYPE },
        body: Buffer.from(text, 'latin1'),
      });
    const head = (control: string) =>
      `MSH|^~\\&|ADT|HOSP|CV|CV|20240101||ADT^A01|${control}|P|2.5\rEVN|A01|20240101`;
    const inHeader = await post(`${head(`NUL\0${tag}`)}\rPID|1||NH-${tag}^^^HOSP^MR||Nul^Head`);
    expect(inHeader.status).toBe(200);
    const headerAck = await inHeader.text();
    expect(msaOf(headerAck)).toEqual({ code: 'AR', controlId: `NUL\\X00\\${tag}` });
    expect(headerAck).toContain('NUL character');
    const inContent = await post(`${head(`NUL-${tag}`)}\rPID|1||NC-${tag}\0^^^HOSP^MR||Nul^Body`);
    expect(msaOf(await inContent.text())).toEqual({ code: 'AR', controlId: `NUL-${tag}` });
    const rows = await data.query<{ control_id: string; status: string }[]>(
      `SELECT control_id, status FROM hl7_message WHERE control_id LIKE $1 ORDER BY control_id`,
      [`NUL%${tag}`],
    );
    expect(rows).toEqual([
      { control_id: `NUL-${tag}`, status: 'rejected' },
      { control_id: `NUL\\X00\\${tag}`, status: 'rejected' },
    ]);
  });

  it('answers AE (ERR 207 naming the limit) for a message of more than 1,000 results, and keeps none', async () => {
    // 20,000 OBX in one ORU took 63 s to ACK and held the event loop 40 s.
    const tag = randomUUID().slice(0, 8);
    const results = Array.from(
      { length: 1001 },
      (_, i) => `OBX|${i + 1}|NM|C${i}^Test ${i}^L||${i}.5|mmol/L^^UCUM|||||F`,
    );
    const message = Buffer.from(
      [
        `MSH|^~\\&|LAB|NORTH|CV|HOSP|20240101||ORU^R01|BIG-${tag}|P|2.5.1`,
        `PID|1||BIG-${tag}^^^NORTH&2.16.840.1.8&ISO^MR||Plenty^Pat`,
        `OBR|1||BIG-${tag}^NORTH^2.16.840.1.8^ISO|2345-7^Glucose^LN|||202401010800+0000||||||||||||||||F`,
        ...results,
      ].join('\r'),
    );
    const sender = await client();
    await sender.send([message]);
    const [ack] = await sender.waitForAcks(1);
    expect(msaOf(ack!).code).toBe('AE');
    expect(ack).toMatch(/\rERR\|.*207\^Application internal error/);
    expect(ack).toContain(
      'The message has 1001 OBX segments; at most 1000 are taken in one message',
    );
    expect(ack).not.toMatch(/Plenty|mmol|Test 1/);
    const [stored] = await data.query<{ status: string }[]>(
      'SELECT status FROM hl7_message WHERE control_id = $1',
      [`BIG-${tag}`],
    );
    expect(stored!.status).toBe('error');
    const http = await doctorHttp();
    const reports = await http(
      'GET',
      `${testApp.url}/fhir/DiagnosticReport?identifier=${encodeURIComponent(`urn:oid:2.16.840.1.8|BIG-${tag}`)}`,
    );
    expect(reports.body.entry ?? []).toEqual([]);
  });

  it('replaces a result with its correction rather than adding another', async () => {
    const result = (control: string, status: string, value: string) =>
      Buffer.from(
        [
          `MSH|^~\\&|LAB|NORTH|CV|HOSP|20240101||ORU^R01|${control}|P|2.5.1`,
          'PID|1||C-1^^^NORTH&2.16.840.1.8&ISO^MR||Corrected^Pat',
          'OBR|1||ORD-77^NORTH^2.16.840.1.8^ISO|2345-7^Glucose^LN|||202401010800+0000||||||||||||||||F',
          'NTE|1||Specimen slightly haemolysed',
          `OBX|1|NM|2345-7^Glucose^LN||${value}|mmol/L^^UCUM|||||${status}`,
        ].join('\r'),
      );
    const sender = await client();
    // The correction, then the same correction again (a replayed queue, a new control id).
    await sender.send([
      result('COR-1', 'F', '5.4'),
      result('COR-2', 'C', '6.1'),
      result('COR-3', 'C', '6.1'),
    ]);
    expect((await sender.waitForAcks(3)).map((ack) => msaOf(ack).code)).toEqual(['AA', 'AA', 'AA']);
    const http = await doctorHttp();
    const found = await http(
      'GET',
      `${testApp.url}/fhir/Observation?identifier=${encodeURIComponent('urn:oid:2.16.840.1.8|ORD-77/2345-7')}`,
    );
    expect(found.body.entry).toHaveLength(1);
    expect(found.body.entry[0].resource).toMatchObject({
      status: 'corrected',
      valueQuantity: { value: 6.1 },
      meta: { versionId: '2' }, // the correction; its replay made no third
    });
    const reports = await http(
      'GET',
      `${testApp.url}/fhir/DiagnosticReport?identifier=${encodeURIComponent('urn:oid:2.16.840.1.8|ORD-77')}`,
    );
    expect(reports.body.entry).toHaveLength(1);
    // The report's own OBR said the same each time: one version (three before, one per message).
    expect(reports.body.entry[0].resource.meta.versionId).toBe('1');
    // Its comment (the NTE after the OBR), as R5's DiagnosticReport.note, which R4 lacks.
    expect(reports.body.entry[0].resource.extension).toEqual([
      {
        url: 'http://hl7.org/fhir/5.0/StructureDefinition/extension-DiagnosticReport.note',
        valueAnnotation: { text: 'Specimen slightly haemolysed' },
      },
    ]);
  });

  it('keeps a corrected result when an older preliminary one is replayed after it', async () => {
    const tag = randomUUID().slice(0, 8);
    const result = (control: string, hour: string, status: string, value: string) =>
      Buffer.from(
        [
          `MSH|^~\\&|LAB|NORTH|CV|HOSP|20240101${hour}00+0000||ORU^R01|${control}-${tag}|P|2.5.1`,
          `PID|1||R-${tag}^^^NORTH&2.16.840.1.8&ISO^MR||Replayed^Pat`,
          `OBR|1||ORD-${tag}^NORTH^2.16.840.1.8^ISO|2345-7^Glucose^LN|||202401010800+0000${'|'.repeat(18)}${status}`,
          `OBX|1|NM|2345-7^Glucose^LN||${value}|mmol/L^^UCUM|||||${status}`,
        ].join('\r'),
      );
    const sender = await client();
    // The lab's queue replayed out of order: the preliminary result last.
    await sender.send([
      result('P', '09', 'P', '5.0'),
      result('F', '10', 'F', '5.4'),
      result('C', '11', 'C', '6.1'),
      result('P2', '09', 'P', '5.0'),
    ]);
    const acks = await sender.waitForAcks(4);
    expect(acks.map((ack) => msaOf(ack).code)).toEqual(Array(4).fill('AA'));
    expect(acks[3]).toContain(
      // Not its Patient: a lab's PID sets no details of a known patient, whatever its time.
      'ERR|||0^Message accepted^HL70357|W||||Older than a message already applied to its DiagnosticReport (by EVN-2, OBR-22 or MSH-7)',
    );
    expect(acks.slice(0, 3).join('')).not.toContain('ERR');
    const http = await doctorHttp();
    const [observation] = (
      await http(
        'GET',
        `${testApp.url}/fhir/Observation?identifier=${encodeURIComponent(`urn:oid:2.16.840.1.8|ORD-${tag}/2345-7`)}`,
      )
    ).body.entry.map((entry: any) => entry.resource);
    expect(observation).toMatchObject({ status: 'corrected', valueQuantity: { value: 6.1 } });
    const [report] = (
      await http(
        'GET',
        `${testApp.url}/fhir/DiagnosticReport?identifier=${encodeURIComponent(`urn:oid:2.16.840.1.8|ORD-${tag}`)}`,
      )
    ).body.entry.map((entry: any) => entry.resource);
    expect(report.status).toBe('corrected');
  });

  it("refuses a report whose filler number (OBR-3) is another patient's, unless merged into this one", async () => {
    const tag = randomUUID().slice(0, 8);
    const pid = (mrn: string) => `PID|1||${mrn}-${tag}^^^NORTH&2.16.840.1.9&ISO^MR||Pat^${mrn}`;
    const result = (control: string, mrn: string, value: string) =>
      Buffer.from(
        [
          `MSH|^~\\&|LAB|NORTH|CV|HOSP|20240101||ORU^R01|${control}-${tag}|P|2.5.1`,
          pid(mrn),
          `OBR|1||ACC-${tag}^NORTH^2.16.840.1.9^ISO|2345-7^Glucose^LN|||202401010800+0000`,
          `OBX|1|NM|2345-7^Glucose^LN||${value}|mmol/L^^UCUM|||||F`,
        ].join('\r'),
      );
    const steps: [Buffer, string][] = [
      [result('G1', 'ANN', '5.4'), 'AA'],
      // Bob's result under Ann's accession number does not take her report from her.
      [result('G2', 'BOB', '9.9'), 'AE'],
      // Ann merged into Bob (A40): her report is his now, and the lab's correction is taken.
      [
        Buffer.from(
          [
            `MSH|^~\\&|ADT|NORTH|CV|HOSP|20240101||ADT^A40|G3-${tag}|P|2.5.1`,
            pid('BOB'),
            `MRG|ANN-${tag}^^^NORTH&2.16.840.1.9&ISO^MR`,
          ].join('\r'),
        ),
        'AA',
      ],
      [result('G4', 'BOB', '6.1'), 'AA'],
    ];
    const sender = await client();
    await sender.send(steps.map(([message]) => message));
    const acks = await sender.waitForAcks(steps.length);
    expect(acks.map((ack) => msaOf(ack).code)).toEqual(steps.map(([, code]) => code));
    expect(acks[1]).toContain("OBR-3 names another patient's report");
    const http = await doctorHttp();
    const found = async (type: string, value: string) =>
      (
        await http(
          'GET',
          `${testApp.url}/fhir/${type}?identifier=${encodeURIComponent(`urn:oid:2.16.840.1.9|${value}`)}`,
        )
      ).body.entry.map((entry: any) => entry.resource);
    const [bob] = await found('Patient', `BOB-${tag}`);
    const [observation] = await found('Observation', `ACC-${tag}/2345-7`);
    expect(observation).toMatchObject({
      subject: { reference: `Patient/${String(bob.id)}` },
      valueQuantity: { value: 6.1 },
    });
    // Ann's 5.4, moved to Bob by the merge, then corrected: Bob's 9.9 never written over it.
    const history = await http('GET', `${testApp.url}/fhir/Observation/${observation.id}/_history`);
    expect(
      history.body.entry.map((entry: any) => [
        entry.resource.valueQuantity.value,
        entry.resource.subject.reference === `Patient/${String(bob.id)}`,
      ]),
    ).toEqual([
      [6.1, true],
      [5.4, true],
      [5.4, false],
    ]);
  });

  it('files a final report anew, with its results once, when its preliminary one was deleted', async () => {
    const result = (control: string, status: string, value: string) =>
      Buffer.from(
        [
          `MSH|^~\\&|LAB|NORTH|CV|HOSP|20240101||ORU^R01|${control}|P|2.5.1`,
          'PID|1||C-2^^^NORTH&2.16.840.1.8&ISO^MR||Deleted^Pat',
          `OBR|1||ORD-81^NORTH^2.16.840.1.8^ISO|2345-7^Glucose^LN|||202401010800+0000||||||||||||||||||${status}`,
          `OBX|1|NM|2345-7^Glucose^LN||${value}|mmol/L^^UCUM|||||${status}`,
          `OBX|2|NM|2345-7^Glucose^LN|2|${value}|mmol/L^^UCUM|||||${status}`,
        ].join('\r'),
      );
    const http = authorizedHttp(await tokenFor(testApp, 'doctor'));
    const byIdentifier = async (type: string, value: string) =>
      ((
        await http(
          'GET',
          `${testApp.url}/fhir/${type}?identifier=${encodeURIComponent(`urn:oid:2.16.840.1.8|${value}`)}`,
        )
      ).body.entry ?? []) as { resource: Record<string, any> }[];
    const sender = await client();
    await sender.send([result('DEL-1', 'P', '5.4')]);
    expect(msaOf((await sender.waitForAcks(1))[0]!).code).toBe('AA');
    // The report deleted through the API (a client's clean-up) before its final version comes;
    // its results stay, as nothing refers to them any more.
    const [deleted] = await byIdentifier('DiagnosticReport', 'ORD-81');
    const path = `${testApp.url}/fhir/DiagnosticReport/${String(deleted!.resource.id)}`;
    expect((await http('DELETE', path)).status).toBe(204);
    await sender.send([result('DEL-2', 'F', '6.1'), result('DEL-3', 'C', '6.2')]);
    expect((await sender.waitForAcks(3)).slice(1).map((ack) => msaOf(ack).code)).toEqual([
      'AA',
      'AA',
    ]);
    // The deletion stands (as a patient's does): the report is filed anew, and takes over its
    // results, known by their identifiers, rather than adding a second of each.
    expect((await http('GET', path)).status).toBe(410);
    const results = [
      ...(await byIdentifier('Observation', 'ORD-81/2345-7')),
      ...(await byIdentifier('Observation', 'ORD-81/2345-7/2')),
    ];
    expect(results.map(({ resource }) => [resource.status, resource.valueQuantity.value])).toEqual([
      ['corrected', 6.2],
      ['corrected', 6.2],
    ]);
    const reports = await byIdentifier('DiagnosticReport', 'ORD-81');
    expect(reports.map(({ resource }) => [resource.status, resource.result])).toEqual([
      [
        'corrected',
        results.map(({ resource }) => ({ reference: `Observation/${String(resource.id)}` })),
      ],
    ]);
  });

  it("files each patient's results of a multi-patient ORU under that patient, and refuses other messages naming two", async () => {
    const pid = (mrn: string) => `PID|1||${mrn}^^^HOSP&2.16.14&ISO^MR||Many^Pat`;
    const report = (number: string, value: string) =>
      [
        `OBR|1||${number}^LAB|2345-7^Glucose^LN|||202401010800+0000`,
        `OBX|1|NM|2345-7^Glucose^LN||${value}|mmol/L|||||F`,
      ].join('\r');
    const msh = (type: string, control: string) =>
      `MSH|^~\\&|LAB|HOSP|CV|CV|20240101||${type}|${control}|P|2.5.1`;
    const sender = await client();
    await sender.send([
      Buffer.from(
        [
          msh('ORU^R01', 'MP-1'),
          pid('MP-A'),
          report('MP-R1', '5.5'),
          pid('MP-B'),
          report('MP-R2', '7.7'),
        ].join('\r'),
      ),
      Buffer.from(
        [
          msh('ORM^O01', 'MP-2'),
          pid('MP-A'),
          'ORC|NW|MP-O1^HOSP',
          'OBR|1|MP-O1^HOSP||2345-7^Glucose^LN',
          pid('MP-B'),
          'ORC|NW|MP-O2^HOSP',
          'OBR|1|MP-O2^HOSP||2345-7^Glucose^LN',
        ].join('\r'),
      ),
    ]);
    const acks = await sender.waitForAcks(2);
    expect(acks.map((ack) => msaOf(ack).code)).toEqual(['AA', 'AE']);
    expect(acks[1]).toContain('one patient');
    const http = await doctorHttp();
    const valuesOf = async (mrn: string) => {
      const id = await patientIdOf(http, '2.16.14', mrn);
      const results = await http('GET', `${testApp.url}/fhir/Observation?subject=Patient/${id}`);
      return (results.body.entry as { resource: { valueQuantity: { value: number } } }[]).map(
        (entry) => entry.resource.valueQuantity.value,
      );
    };
    expect(await valuesOf('MP-A')).toEqual([5.5]);
    expect(await valuesOf('MP-B')).toEqual([7.7]);
    const orders = await http('GET', `${testApp.url}/fhir/ServiceRequest?identifier=MP-O2`);
    expect(orders.body.entry).toBeUndefined();
  });

  it('corrects a numbered report whose lines share a code without sub-ids (a pathology text)', async () => {
    const report = (control: string, status: string, lines: string[]) =>
      Buffer.from(
        [
          `MSH|^~\\&|LAB|NORTH|CV|HOSP|20240101||ORU^R01|${control}|P|2.5.1`,
          'PID|1||PATH-1^^^NORTH&2.16.840.1.8&ISO^MR||Path^Pat',
          `OBR|1||PATH-77^NORTH^2.16.840.1.8^ISO|22637-3^Pathology report^LN|||202401010800+0000||||||||||||||||${status}`,
          ...lines.map(
            (line, i) => `OBX|${i + 1}|TX|22637-3^Pathology report^LN||${line}||||||${status}`,
          ),
        ].join('\r'),
      );
    const sender = await client();
    await sender.send([
      report('PATH-1', 'P', ['Specimen: colon', 'Diagnosis: pending', 'Signed: -']),
      // The final report changes its second line; then the same again (a replayed queue).
      report('PATH-2', 'F', ['Specimen: colon', 'Diagnosis: adenoma', 'Signed: Dr Lee']),
      report('PATH-3', 'F', ['Specimen: colon', 'Diagnosis: adenoma', 'Signed: Dr Lee']),
    ]);
    expect((await sender.waitForAcks(3)).map((ack) => msaOf(ack).code)).toEqual(['AA', 'AA', 'AA']);
    const http = await doctorHttp();
    const reports = await http(
      'GET',
      `${testApp.url}/fhir/DiagnosticReport?identifier=${encodeURIComponent('urn:oid:2.16.840.1.8|PATH-77')}`,
    );
    expect(reports.body.entry).toHaveLength(1);
    const lines: [string, string, string][] = [];
    for (const { reference } of reports.body.entry[0].resource.result as { reference: string }[]) {
      const line = (await http('GET', `${testApp.url}/fhir/${reference}`)).body;
      lines.push([line.valueString, line.status, line.meta.versionId]);
    }
    // Each line written over its own, in order: no line added, the unchanged one kept.
    expect(lines).toEqual([
      ['Specimen: colon', 'final', '2'],
      ['Diagnosis: adenoma', 'final', '2'],
      ['Signed: Dr Lee', 'final', '2'],
    ]);
  });

  it('knows a report without a number again by its code and time, and its results by code and order', async () => {
    const monitor = (control: string, ...segments: string[]) =>
      Buffer.from(
        [
          `MSH|^~\\&|MONITOR|ICU|CV|HOSP|20240101||ORU^R01|${control}|P|2.5.1`,
          'PID|1||NUM-0^^^ICU&2.16.840.1.9&ISO^MR||Unnumbered^Pat',
          ...segments,
        ].join('\r'),
      );
    const vitals = (control: string, secondRate: string) =>
      monitor(
        control,
        'OBR|1|||85353-1^Vital signs panel^LN|||202401010830+0000',
        'OBX|1|NM|8867-4^Heart rate^LN|1|72|/min^^UCUM|||||F',
        `OBX|2|NM|8867-4^Heart rate^LN|2|${secondRate}|/min^^UCUM|||||F`,
        'OBX|3|NM|8310-5^Body temperature^LN||37.1|Cel^^UCUM|||||F',
        // A day without a time of day tells no two reports apart: filed each time.
        'OBR|2|||8302-2^Body height^LN|||20240101',
        'OBX|1|NM|8302-2^Body height^LN||178|cm^^UCUM|||||F',
      );
    const sender = await client();
    // The monitor's queue sent again under new control ids, one rate corrected.
    await sender.send([vitals('NUM-1', '75'), vitals('NUM-2', '76'), vitals('NUM-3', '76')]);
    expect((await sender.waitForAcks(3)).map((ack) => msaOf(ack).code)).toEqual(['AA', 'AA', 'AA']);
    const http = await doctorHttp();
    const patient = (
      await http(
        'GET',
        `${testApp.url}/fhir/Patient?identifier=${encodeURIComponent('urn:oid:2.16.840.1.9|NUM-0')}`,
      )
    ).body.entry[0].resource.id as string;
    const reports = await http(
      'GET',
      `${testApp.url}/fhir/DiagnosticReport?subject=Patient/${patient}&code=85353-1`,
    );
    expect(reports.body.entry).toHaveLength(1);
    const panel = reports.body.entry[0].resource;
    expect(panel.meta.versionId).toBe('1'); // the same three results each time
    const results = await Promise.all(
      panel.result.map(
        async ({ reference }: { reference: string }) =>
          (await http('GET', `${testApp.url}/fhir/${reference}`)).body,
      ),
    );
    expect(
      results.map((r: any) => [r.code.coding[0].code, r.valueQuantity.value, r.meta.versionId]),
    ).toEqual([
      ['8867-4', 72, '1'],
      ['8867-4', 76, '2'],
      ['8310-5', 37.1, '1'],
    ]);
    // Vital signs, as R4's vital signs profile wants them: found by a vital-signs app's query.
    const rates = await http(
      'GET',
      `${testApp.url}/fhir/Observation?subject=Patient/${patient}&code=8867-4&category=vital-signs`,
    );
    expect(rates.body.entry).toHaveLength(2);
    const heights = await http(
      'GET',
      `${testApp.url}/fhir/DiagnosticReport?subject=Patient/${patient}&code=8302-2`,
    );
    expect(heights.body.entry).toHaveLength(3);

    // Two in one message that nothing tells apart are refused rather than one written over the
    // other.
    await sender.send([
      monitor(
        'NUM-4',
        'OBR|1|||600-7^Blood culture^LN|||202401020600+0000',
        'OBX|1|ST|600-7^Blood culture^LN||Pending||||||P',
        'OBR|2|||600-7^Blood culture^LN|||202401020600+0000',
        'OBX|1|ST|600-7^Blood culture^LN||Pending||||||P',
      ),
    ]);
    const [refused] = (await sender.waitForAcks(4)).slice(3);
    expect(msaOf(refused!).code).toBe('AE');
    expect(refused).toContain('205');

    // Filed twice before (as every unnumbered report was): which one it is, nothing says, so it
    // is filed again rather than refused.
    const twice = {
      resourceType: 'DiagnosticReport',
      status: 'final',
      code: { coding: [{ system: 'http://loinc.org', code: '85353-1' }] },
      subject: { reference: `Patient/${patient}` },
      effectiveDateTime: '2024-01-03T08:30:00+00:00',
    };
    for (let i = 0; i < 2; i++) {
      expect(
        (await http('POST', `${testApp.url}/fhir/DiagnosticReport`, { body: twice })).status,
      ).toBe(201);
    }
    await sender.send([
      monitor(
        'NUM-5',
        'OBR|1|||85353-1^Vital signs panel^LN|||202401030830+0000',
        'OBX|1|NM|8867-4^Heart rate^LN|1|70|/min^^UCUM|||||F',
      ),
    ]);
    const [filed] = (await sender.waitForAcks(5)).slice(4);
    expect(msaOf(filed!).code).toBe('AA');
    const panels = await http(
      'GET',
      `${testApp.url}/fhir/DiagnosticReport?subject=Patient/${patient}&code=85353-1&date=2024-01-03`,
    );
    expect(panels.body.entry).toHaveLength(3);
  });

  it("keeps a restricted patient's feed: updates and results are taken, the label stays", async () => {
    const adt = (event: string, control: string, street: string) =>
      Buffer.from(
        [
          `MSH|^~\\&|ADT|NORTH|CV|HOSP|20240101||ADT^${event}|${control}|P|2.5.1`,
          `EVN|${event}|20240101`,
          `PID|1||VIP-1^^^NORTH&2.16.840.1.8&ISO^MR||Private^Pat||19800101|F|||${street}^^Town^^12345`,
          'PV1|1|O',
        ].join('\r'),
      );
    const sender = await client();
    await sender.send([adt('A28', 'VIP-1', '1 Main St')]);
    expect(msaOf((await sender.waitForAcks(1))[0]!).code).toBe('AA');
    const http = await doctorHttp();
    const byMrn = `${testApp.url}/fhir/Patient?identifier=${encodeURIComponent('urn:oid:2.16.840.1.8|VIP-1')}`;
    const patient = (await http('GET', byMrn)).body.entry[0].resource;
    const restricted = {
      system: 'http://terminology.hl7.org/CodeSystem/v3-Confidentiality',
      code: 'R',
    };
    const reviewed = { system: 'http://example.org/tags', code: 'reviewed' };
    const labelled = await http('PUT', `${testApp.url}/fhir/Patient/${patient.id}`, {
      body: { ...patient, meta: { security: [restricted], tag: [reviewed] } },
    });
    expect(labelled.body.meta.versionId).toBe('2');

    // An address change (then sent again), and a result: no one broke the glass, and none is AE.
    await sender.send([
      adt('A08', 'VIP-2', '2 New St'),
      adt('A08', 'VIP-3', '2 New St'),
      Buffer.from(
        [
          'MSH|^~\\&|LAB|NORTH|CV|HOSP|20240101||ORU^R01|VIP-4|P|2.5.1',
          'PID|1||VIP-1^^^NORTH&2.16.840.1.8&ISO^MR||Private^Pat',
          'OBR|1||VIP-ORD^NORTH^2.16.840.1.8^ISO|2345-7^Glucose^LN|||202401010800+0000',
          'OBX|1|NM|2345-7^Glucose^LN||5.4|mmol/L^^UCUM|||||F',
        ].join('\r'),
      ),
    ]);
    expect((await sender.waitForAcks(4)).slice(1).map((ack) => msaOf(ack).code)).toEqual([
      'AA',
      'AA',
      'AA',
    ]);
    const read = await http('GET', `${testApp.url}/fhir/Patient/${patient.id}`);
    expect(read.status).toBe(403);
    expect(read.body.issue[0].diagnostics).toMatch(/break-glass/);
    const stored = (await testApp.app.get(FhirService).read(HL7_USER, 'Patient', patient.id))
      .resource as any;
    // The feed's update keeps the meta it knows nothing of (a tag too), and its resend is none.
    expect(stored.meta).toMatchObject({ versionId: '3', security: [restricted], tag: [reviewed] });
    expect(stored.address[0].line).toEqual(['2 New St']);
    const results = await http(
      'GET',
      `${testApp.url}/fhir/Observation?subject=Patient/${patient.id}`,
    );
    expect(results.body.entry.map((e: any) => e.resource.valueQuantity.value)).toEqual([5.4]);
  });

  it('restricts a patient whose PD1-12 says Y, and lifts no restriction for N, "" or nothing', async () => {
    const restricted = {
      system: 'http://terminology.hl7.org/CodeSystem/v3-Confidentiality',
      code: 'R',
    };
    const adt = (event: string, control: string, mrn: string, street: string, pd1?: string) =>
      Buffer.from(
        [
          `MSH|^~\\&|ADT|NORTH|CV|HOSP|20240101||ADT^${event}|${control}|P|2.5.1`,
          `EVN|${event}|20240101`,
          `PID|1||${mrn}^^^NORTH&2.16.840.1.8&ISO^MR||Guarded^Pat||19800101|F|||${street}^^Town`,
          ...(pd1 === undefined ? [] : [`PD1${'|'.repeat(12)}${pd1}`]),
          'PV1|1|O',
        ].join('\r'),
      );
    const sender = await client();
    let sent = 0;
    const send = async (...messages: Buffer[]): Promise<void> => {
      await sender.send(messages);
      sent += messages.length;
      const acks = await sender.waitForAcks(sent);
      expect(acks.slice(sent - messages.length).map((ack) => msaOf(ack).code)).toEqual(
        messages.map(() => 'AA'),
      );
    };
    const http = await doctorHttp();
    const idOf = async (mrn: string): Promise<string> => {
      const criteria = `identifier=${encodeURIComponent(`urn:oid:2.16.840.1.8|${mrn}`)}`;
      const id = await testApp.app.get(CriteriaMatches).findUnique(HL7_USER, 'Patient', criteria);
      expect(id).toBeDefined();
      return id!;
    };
    const stored = async (id: string) =>
      (await testApp.app.get(FhirService).read(HL7_USER, 'Patient', id)).resource as any;

    // A new patient sent protected is restricted from the start: no one reads it unbroken.
    await send(adt('A04', 'PROT-1', 'PROT-NEW', '1 Main St', 'Y'));
    const created = await idOf('PROT-NEW');
    expect((await stored(created)).meta.security).toEqual([restricted]);
    expect((await http('GET', `${testApp.url}/fhir/Patient/${created}`)).status).toBe(403);

    // A known patient is restricted by a Y, keeping the meta the feed knows nothing of; the
    // same Y again makes no new version.
    await send(adt('A28', 'PROT-2', 'PROT-OLD', '1 Main St'));
    const known = await idOf('PROT-OLD');
    const reviewed = { system: 'http://example.org/tags', code: 'reviewed' };
    const open = (await http('GET', `${testApp.url}/fhir/Patient/${known}`)).body;
    const tagged = await http('PUT', `${testApp.url}/fhir/Patient/${known}`, {
      body: { ...open, meta: { tag: [reviewed] } },
    });
    expect(tagged.status).toBe(200);
    await send(
      adt('A08', 'PROT-3', 'PROT-OLD', '2 New St', 'Y'),
      adt('A08', 'PROT-4', 'PROT-OLD', '2 New St', 'Y'),
    );
    expect((await stored(known)).meta).toMatchObject({
      versionId: '3',
      security: [restricted],
      tag: [reviewed],
    });
    expect((await http('GET', `${testApp.url}/fhir/Patient/${known}`)).status).toBe(403);

    // A patient a clinician restricted through the API stays so, whatever a feed says after:
    // N, "" (an explicit null), an empty PD1-12 or no PD1. The rest of each message is taken.
    await send(adt('A28', 'PROT-5', 'PROT-API', '1 Main St'));
    const byApi = await idOf('PROT-API');
    const unlabelled = (await http('GET', `${testApp.url}/fhir/Patient/${byApi}`)).body;
    const labelled = await http('PUT', `${testApp.url}/fhir/Patient/${byApi}`, {
      body: { ...unlabelled, meta: { security: [restricted] } },
    });
    expect(labelled.status).toBe(200);
    const streets = ['2 N St', '3 Empty St', '4 Null St', '5 No PD1 St'];
    await send(
      adt('A08', 'PROT-6', 'PROT-API', streets[0]!, 'N'),
      adt('A08', 'PROT-7', 'PROT-API', streets[1]!, ''),
      adt('A08', 'PROT-8', 'PROT-API', streets[2]!, '""'),
      adt('A08', 'PROT-9', 'PROT-API', streets[3]!),
      // Nor does N lift a restriction a feed asked for.
      adt('A08', 'PROT-10', 'PROT-OLD', '3 Newer St', 'N'),
    );
    const after = await stored(byApi);
    expect(after.meta).toMatchObject({ versionId: '6', security: [restricted] });
    expect(after.address[0].line).toEqual([streets[3]]);
    expect((await stored(known)).meta.security).toEqual([restricted]);
    expect((await stored(known)).address[0].line).toEqual(['3 Newer St']);
    for (const id of [byApi, known]) {
      expect((await http('GET', `${testApp.url}/fhir/Patient/${id}`)).status).toBe(403);
    }
    // The feed's account may add the restriction and nothing else: another label is refused.
    const veryRestricted = { ...restricted, code: 'V' };
    await expect(
      testApp.app.get(FhirService).create(HL7_USER, 'Patient', {
        resourceType: 'Patient',
        meta: { security: [restricted, veryRestricted] },
      }),
    ).rejects.toMatchObject({ status: 403 });
  });

  it('merges patients on ADT^A40: the prior one is replaced by the survivor, which takes its MRN', async () => {
    const system = 'urn:oid:2.16.4';
    const message = (type: string, control: string, mrn: string, name: string, extra = '') =>
      Buffer.from(
        `MSH|^~\\&|ADT|HOSP|CV|CV|20240101||${type}|${control}|P|2.5\rPID|1||${mrn}^^^HOSP&2.16.4&ISO^MR||${name}${extra}`,
      );
    const adt = (event: string, control: string, mrn: string, extra = '') =>
      message(`ADT^${event}`, control, mrn, 'Merge^Pat', extra);
    const sender = await client();
    await sender.send([
      // The duplicate record, misspelt, as duplicates often are.
      message('ADT^A28', 'MRG-A', 'OLD-1', 'Merj^Pat'),
      adt('A28', 'MRG-B', 'NEW-1'),
      adt('A40', 'MRG-C', 'NEW-1', '\rMRG|OLD-1^^^HOSP&2.16.4&ISO^MR'),
      // A34, the merge of versions before 2.3.1, still sent by older feeds.
      adt('A28', 'MRG-D', 'OLD-2'),
      adt('A34', 'MRG-E', 'NEW-1', '\rMRG|OLD-2^^^HOSP&2.16.4&ISO^MR'),
    ]);
    expect((await sender.waitForAcks(5)).map((ack) => msaOf(ack).code)).toEqual(
      Array(5).fill('AA'),
    );
    const http = await doctorHttp();
    const byMrn = async (mrn: string) =>
      (
        await http(
          'GET',
          `${testApp.url}/fhir/Patient?identifier=${encodeURIComponent(`${system}|${mrn}`)}`,
        )
      ).body.entry as { resource: Record<string, unknown> }[];
    const [survivor] = await byMrn('NEW-1');
    const found = await byMrn('OLD-1');
    expect(found).toHaveLength(1);
    expect(found[0]!.resource['id']).toBe(survivor!.resource['id']);
    // Each MRN once (the prior patient's and MRG-1's name the same one), the merged ones old.
    const identifiers = survivor!.resource['identifier'] as { value: string; use?: string }[];
    expect(identifiers.map(({ value, use }) => [value, use])).toEqual([
      ['NEW-1', undefined],
      ['OLD-1', 'old'],
      ['OLD-2', 'old'],
    ]);
    expect((await byMrn('OLD-2')).map((entry) => entry.resource['id'])).toEqual([
      survivor!.resource['id'],
    ]);
    const link = survivor!.resource['link'] as { other: { reference: string }; type: string }[];
    expect(link).toEqual([
      { other: { reference: expect.stringMatching(/^Patient\//) }, type: 'replaces' },
      { other: { reference: expect.stringMatching(/^Patient\//) }, type: 'replaces' },
    ]);
    const prior = await http('GET', `${testApp.url}/fhir/${link[0]!.other.reference}`);
    expect(prior.body).toMatchObject({
      active: false,
      link: [
        {
          other: { reference: `Patient/${String(survivor!.resource['id'])}` },
          type: 'replaced-by',
        },
      ],
    });
    expect(prior.body.identifier).toBeUndefined();

    // A lab not told of the merge still names the prior record, as it knew it: its result is
    // the survivor's, and the survivor keeps its name.
    await sender.send([
      Buffer.concat([
        message('ORU^R01', 'MRG-F', 'OLD-1', 'Merj^Pat'),
        Buffer.from('\rOBR|1||MRG-F^LAB|2345-7^Glucose^LN\rOBX|1|NM|2345-7^Glucose^LN||5.5|mmol/L'),
      ]),
    ]);
    expect(msaOf((await sender.waitForAcks(6))[5]!).code).toBe('AA');
    const [after] = await byMrn('NEW-1');
    expect(after!.resource).toMatchObject({
      name: [{ family: 'Merge' }],
      meta: { versionId: (survivor!.resource['meta'] as { versionId: string }).versionId },
    });
    const results = await http(
      'GET',
      `${testApp.url}/fhir/Observation?subject=Patient/${String(survivor!.resource['id'])}`,
    );
    expect(results.body.entry).toHaveLength(1);
  });

  it("restricts the survivor of a merge (A40) when the prior patient was, or the merge's PD1-12 says Y", async () => {
    const restricted = {
      system: 'http://terminology.hl7.org/CodeSystem/v3-Confidentiality',
      code: 'R',
    };
    const pid = (mrn: string) => `PID|1||${mrn}^^^HOSP&2.16.5&ISO^MR||Guarded^Merge||19800101|F`;
    const adt = (event: string, control: string, ...segments: string[]) =>
      Buffer.from(
        [
          `MSH|^~\\&|ADT|HOSP|CV|CV|20240101||ADT^${event}|${control}|P|2.5.1`,
          `EVN|${event}|20240101`,
          ...segments,
        ].join('\r'),
      );
    const mrg = (mrn: string) => `MRG|${mrn}^^^HOSP&2.16.5&ISO^MR`;
    const protectedPd1 = `PD1${'|'.repeat(12)}Y`;
    const sender = await client();
    await sender.send([
      // A protected patient's duplicate record, and the unprotected record it is merged into.
      adt('A28', 'RMRG-1', pid('RMRG-PRIOR'), protectedPd1),
      adt('A28', 'RMRG-2', pid('RMRG-SURV')),
      // Neither restricted before; the merge itself says Y, its PD1 where ADT_A39 has it.
      adt('A28', 'RMRG-3', pid('RMRG-PRIOR2')),
      adt('A28', 'RMRG-4', pid('RMRG-SURV2')),
    ]);
    expect((await sender.waitForAcks(4)).map((ack) => msaOf(ack).code)).toEqual(
      Array(4).fill('AA'),
    );
    const fhir = testApp.app.get(FhirService);
    const matches = testApp.app.get(CriteriaMatches);
    const idOf = async (mrn: string): Promise<string> => {
      const criteria = `identifier=${encodeURIComponent(`urn:oid:2.16.5|${mrn}`)}`;
      const id = await matches.findUnique(HL7_USER, 'Patient', criteria);
      expect(id).toBeDefined();
      return id!;
    };
    const stored = async (id: string) => (await fhir.read(HL7_USER, 'Patient', id)).resource as any;
    const [prior, survivor, survivor2] = [
      await idOf('RMRG-PRIOR'),
      await idOf('RMRG-SURV'),
      await idOf('RMRG-SURV2'),
    ];
    expect((await stored(prior)).meta.security).toEqual([restricted]);
    // A doctor without break-glass: the open survivors read, the restricted prior does not.
    const http = await doctorHttp();
    const readAs = async (id: string) => http('GET', `${testApp.url}/fhir/Patient/${id}`);
    expect((await readAs(prior)).status).toBe(403);
    expect((await readAs(survivor)).status).toBe(200);
    expect((await readAs(survivor2)).status).toBe(200);

    await sender.send([
      adt('A40', 'RMRG-5', pid('RMRG-SURV'), mrg('RMRG-PRIOR')),
      adt('A40', 'RMRG-6', pid('RMRG-SURV2'), protectedPd1, mrg('RMRG-PRIOR2')),
      // The same merge again, then one with PD1-12 N: neither lifts the restriction.
      adt('A40', 'RMRG-7', pid('RMRG-SURV'), mrg('RMRG-PRIOR')),
      adt('A40', 'RMRG-8', pid('RMRG-SURV'), `PD1${'|'.repeat(12)}N`, mrg('RMRG-PRIOR')),
    ]);
    expect((await sender.waitForAcks(8)).slice(4).map((ack) => msaOf(ack).code)).toEqual(
      Array(4).fill('AA'),
    );
    for (const id of [survivor, survivor2]) {
      const merged = await stored(id);
      expect([id, merged.meta.security]).toEqual([id, [restricted]]);
      const read = await readAs(id);
      expect(read.status).toBe(403);
      expect(read.body.issue[0].diagnostics).toMatch(/break-glass/);
    }
    // The prior record stays restricted, and no list shows the survivor by either MRN.
    expect((await stored(prior)).meta.security).toEqual([restricted]);
    for (const mrn of ['RMRG-SURV', 'RMRG-PRIOR']) {
      const found = await http(
        'GET',
        `${testApp.url}/fhir/Patient?identifier=${encodeURIComponent(`urn:oid:2.16.5|${mrn}`)}`,
      );
      expect([mrn, found.body.entry ?? []]).toEqual([mrn, []]);
    }
    // Audited as every HL7-made change: the merge's row names both patients.
    const [audit] = await data.query<{ entities: string[]; patient_ids: string[] }[]>(
      `SELECT a.entities, a.patient_ids FROM audit_event a
         JOIN hl7_message m ON a.request_id = m.id::text
        WHERE a.source = 'hl7' AND a.outcome = 'success' AND m.control_id = $1`,
      ['RMRG-5'],
    );
    expect(audit!.entities).toEqual(
      expect.arrayContaining([`Patient/${survivor}`, `Patient/${prior}`]),
    );
    expect(audit!.patient_ids).toEqual(expect.arrayContaining([survivor, prior]));
  });

  it('answers AE 205 when the identifiers of a PID name two patients here', async () => {
    const adt = (control: string, pid3: string) =>
      Buffer.from(
        `MSH|^~\\&|ADT|HOSP|CV|CV|20240101||ADT^A08|${control}|P|2.5\rPID|1||${pid3}||Two^Pat`,
      );
    const mrn = (value: string) => `${value}^^^HOSP&2.16.16&ISO^MR`;
    const sender = await client();
    await sender.send([
      adt('TWO-1', mrn('TWO-A')),
      adt('TWO-2', mrn('TWO-B')),
      adt('TWO-3', `${mrn('TWO-A')}~${mrn('TWO-B')}`),
    ]);
    const acks = await sender.waitForAcks(3);
    expect(acks.map((ack) => msaOf(ack).code)).toEqual(['AA', 'AA', 'AE']);
    expect(acks[2]).toMatch(/ERR\|[^\r]*\|205\b/);
    expect(acks[2]).toContain('PID-3 name more than one patient');
  });

  it('corrects a wrong identifier on ADT^A47, and refuses one that would join two patients', async () => {
    const system = 'urn:oid:2.16.12';
    const tag = randomUUID().slice(0, 8);
    const mrn = (value: string) => `${value}-${tag}^^^HOSP&2.16.12&ISO^MR`;
    const ssn = `SSN-${tag}^^^SSA&2.16.13&ISO^SS`;
    const adt = (event: string, control: string, pid3: string, mrg?: string) =>
      Buffer.from(
        `MSH|^~\\&|ADT|HOSP|CV|CV|20240101||ADT^${event}|${control}-${tag}|P|2.5\r` +
          `PID|1||${pid3}||Fix^Pat` +
          (mrg ? `\rMRG|${mrg}` : ''),
      );
    const sender = await client();
    await sender.send([
      adt('A28', 'ID-1', `${mrn('WRONG')}~${ssn}`),
      adt('A28', 'ID-2', mrn('OTHER')),
      adt('A47', 'ID-3', mrn('RIGHT'), mrn('WRONG')),
      // Sent again under another control id: the wrong MRN is gone, the right one is there.
      adt('A47', 'ID-4', mrn('RIGHT'), mrn('WRONG')),
    ]);
    expect((await sender.waitForAcks(4)).map((ack) => msaOf(ack).code)).toEqual([
      'AA',
      'AA',
      'AA',
      'AA',
    ]);
    const http = await doctorHttp();
    const byMrn = async (value: string) =>
      ((
        await http(
          'GET',
          `${testApp.url}/fhir/Patient?identifier=${encodeURIComponent(`${system}|${value}-${tag}`)}`,
        )
      ).body.entry ?? []) as { resource: { id: string; identifier: { value: string }[] } }[];
    expect(await byMrn('WRONG')).toHaveLength(0);
    const [corrected] = await byMrn('RIGHT');
    // The SSN stays; the wrong MRN is replaced (not kept as old: it must find no one).
    expect(corrected!.resource.identifier.map((identifier) => identifier.value)).toEqual([
      `SSN-${tag}`,
      `RIGHT-${tag}`,
    ]);
    // The right MRN as OTHER's patient's: that joins two patients, which is A40's to do.
    await sender.send([adt('A47', 'ID-5', mrn('OTHER'), mrn('RIGHT'))]);
    const refused = (await sender.waitForAcks(5)).at(-1)!;
    expect(msaOf(refused).code).toBe('AE');
    expect(refused).toContain('205^Duplicate key identifier^HL70357');
    expect((await byMrn('RIGHT'))[0]!.resource.id).toBe(corrected!.resource.id);
    expect(await byMrn('OTHER')).toHaveLength(1);
    // The wrong MRN was mistyped, maybe another patient's: registered later, it names that
    // patient alone. Kept on the corrected patient as `old`, as a merge keeps the prior MRN,
    // the registration was answered AA and filed to the corrected patient.
    await sender.send([adt('A28', 'ID-6', mrn('WRONG'))]);
    expect(msaOf((await sender.waitForAcks(6)).at(-1)!).code).toBe('AA');
    const [registered] = await byMrn('WRONG');
    expect(registered!.resource.id).not.toBe(corrected!.resource.id);
  });

  it('keeps MDM documents as DocumentReferences: content, edits, addenda, replacements, cancellations', async () => {
    const tag = randomUUID().slice(0, 8);
    const mdm = (
      event: string,
      control: string,
      doc: string,
      status: string,
      body = '',
      parent = '',
    ) =>
      Buffer.from(
        `MSH|^~\\&|DOCS|HOSP|CV|CV|20240101||MDM^${event}|${control}-${tag}|P|2.5\r` +
          `PID|1||DOC-${tag}^^^HOSP&2.16.14&ISO^MR||Doc^Pat\r` +
          `TXA|1|DS|TX|202401051000+0000||202401051015+0000|||1234^House^Gregory^^^Dr|||` +
          `${doc}-${tag}^HOSP^2.16.14^ISO|${parent ? `${parent}-${tag}^HOSP^2.16.14^ISO` : ''}||||${status}|R|AV||||||Discharge summary` +
          body,
      );
    const text = (...lines: string[]) =>
      lines
        .map((line, i) => `\rOBX|${i + 1}|TX|18842-5^Discharge summary^LN||${line}||||||F`)
        .join('');
    const sender = await client();
    const steps: [Buffer, string][] = [
      [mdm('T02', 'D1', 'DOC1', 'DI', text('Admitted with chest pain.', 'Discharged home.')), 'AA'],
      // A status change without content: authenticated now, its text kept.
      [mdm('T03', 'D2', 'DOC1', 'AU'), 'AA'],
      [mdm('T06', 'D3', 'ADD1', 'AU', text('Addendum: troponin normal.'), 'DOC1'), 'AA'],
      [mdm('T10', 'D4', 'DOC2', 'AU', text('Corrected summary.'), 'DOC1'), 'AA'],
      // An edit with content: the same document (TXA-12), its new text.
      [mdm('T08', 'D5', 'DOC2', 'AU', text('Corrected summary, edited.'), 'DOC1'), 'AA'],
      [mdm('T11', 'D6', 'ADD1', 'AU'), 'AA'],
      [mdm('T11', 'D7', 'NEVER', 'AU'), 'AE'],
      [
        Buffer.from(
          `MSH|^~\\&|DOCS|HOSP|CV|CV|20240101||MDM^T12|D8-${tag}|P|2.5\rPID|1||DOC-${tag}^^^HOSP&2.16.14&ISO^MR`,
        ),
        'AR',
      ],
    ];
    await sender.send(steps.map(([message]) => message));
    const acks = await sender.waitForAcks(steps.length);
    expect(acks.map((ack) => msaOf(ack).code)).toEqual(steps.map(([, code]) => code));
    expect(acks[6]).toContain('204^Unknown key identifier^HL70357');
    const http = await doctorHttp();
    const byNumber = async (doc: string) => {
      const found = await http(
        'GET',
        `${testApp.url}/fhir/DocumentReference?identifier=${encodeURIComponent(`urn:oid:2.16.14|${doc}-${tag}`)}`,
      );
      expect(found.body.entry).toHaveLength(1);
      return found.body.entry[0].resource as Record<string, any>;
    };
    const original = await byNumber('DOC1');
    expect(original).toMatchObject({
      status: 'superseded',
      docStatus: 'final',
      type: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v2-0270', code: 'DS' }] },
      subject: { reference: expect.stringMatching(/^Patient\//) },
      date: '2024-01-05T10:15:00+00:00',
      author: [{ identifier: { value: '1234' }, display: 'Dr Gregory House' }],
      description: 'Discharge summary',
      securityLabel: [{ coding: [{ code: 'R' }] }],
    });
    expect(original['content']).toEqual([
      {
        attachment: {
          contentType: 'text/plain; charset=utf-8',
          data: Buffer.from('Admitted with chest pain.\nDischarged home.').toString('base64'),
        },
      },
    ]);
    const addendum = await byNumber('ADD1');
    expect(addendum['status']).toBe('entered-in-error');
    expect(addendum['relatesTo']).toEqual([
      { code: 'appends', target: { reference: `DocumentReference/${String(original['id'])}` } },
    ]);
    const replacement = await byNumber('DOC2');
    expect(Buffer.from(replacement['content'][0].attachment.data, 'base64').toString()).toBe(
      'Corrected summary, edited.',
    );
    expect(replacement).toMatchObject({
      status: 'current',
      relatesTo: [
        { code: 'replaces', target: { reference: `DocumentReference/${String(original['id'])}` } },
      ],
    });
    // The patient's documents are in their compartment, found by patient like any record.
    const listed = await http(
      'GET',
      `${testApp.url}/fhir/DocumentReference?${String(original['subject'].reference).replace('Patient/', 'patient=')}&status=current`,
    );
    expect(listed.body.entry.map((e: any) => e.resource.id)).toEqual([replacement['id']]);
  });

  it('keeps SIU appointments: booking, rescheduling, changes, cancellation; unknown or untimed ones are AE', async () => {
    const tag = randomUUID().slice(0, 8);
    const siu = (
      event: string,
      control: string,
      body: string,
      id = `F1-${tag}`,
      duration = '30|min',
    ) =>
      Buffer.from(
        `MSH|^~\\&|SCHED|HOSP|CV|CV|20250101||SIU^${event}|${control}-${tag}|P|2.5\r` +
          `SCH|P1-${tag}|${id}^SCHED^2.16.15^ISO|||||FOLLOWUP|NORMAL|${duration}|` +
          body,
      );
    const pid = `\rPID|1||APT-${tag}^^^HOSP&2.16.15&ISO^MR||Apt^Pat`;
    const resources = (room: string, personStatus = '') =>
      `\rRGS|1\rAIS|1||11429006^Consultation^SCT` +
      `\rAIP|1||1234^House^Gregory^^^Dr|D^Diabetologist^L||||||||${personStatus}` +
      `\rAIL|1||CLINIC-${tag}^${room}^^GHH-${tag}` +
      `\rAIG|1||GM-7^Glucose meter^L|EQ^Equipment^L`;
    const steps: [Buffer, string][] = [
      // Booked, with a start and a duration (no end): the end is the start plus 30 minutes.
      [
        siu(
          'S12',
          'A1',
          `||||||||||||||Booked\rTQ1|||||||202501101000+0100\rNTE|1||Bring your glucose log.` +
            pid +
            '\rDG1|1||E11.9^Type 2 diabetes mellitus without complications^I10' +
            resources('Room 5'),
        ),
        'AA',
      ],
      // Rescheduled: new times, SCH-25 silent, so still booked.
      [
        siu(
          'S13',
          'A2',
          `\rTQ1|||||||202501111400+0100|202501111430+0100` + pid + resources('Room 5'),
        ),
        'AA',
      ],
      // Modified: another room, the doctor not confirmed yet.
      [
        siu(
          'S14',
          'A3',
          `\rTQ1|||||||202501111400+0100|202501111430+0100` + pid + resources('Room 6', 'Pending'),
        ),
        'AA',
      ],
      // Cancelled with the SCH alone: times and who was booked are kept, all declined. Its
      // duration in seconds replaces the minutes stored.
      [siu('S15', 'A4', pid, `F1-${tag}`, '1800|s'), 'AA'],
      [siu('S26', 'A5', pid, `NEVER-${tag}`), 'AE'],
      // Local time without a UTC offset cannot be placed: no booked appointment without times.
      [siu('S12', 'A6', `\rTQ1|||||||202501101000` + pid, `F2-${tag}`), 'AE'],
      [siu('S23', 'A7', pid), 'AR'],
    ];
    const sender = await client();
    await sender.send(steps.map(([message]) => message));
    const acks = await sender.waitForAcks(steps.length);
    expect(acks.map((ack) => msaOf(ack).code)).toEqual(steps.map(([, code]) => code));
    expect(acks[4]).toContain('204^Unknown key identifier^HL70357');
    expect(acks[4]).toContain('A no-show needs the id (SCH-2 or SCH-1) of a known appointment');
    expect(acks[5]).toContain('as times with a UTC offset');
    const http = await doctorHttp();
    const found = await http(
      'GET',
      `${testApp.url}/fhir/Appointment?identifier=${encodeURIComponent(`urn:oid:2.16.15|F1-${tag}`)}`,
    );
    expect(found.body.entry).toHaveLength(1);
    const appointment = found.body.entry[0].resource as Record<string, any>;
    expect(appointment).toMatchObject({
      status: 'cancelled',
      start: '2025-01-11T14:00:00+01:00',
      end: '2025-01-11T14:30:00+01:00',
      appointmentType: {
        coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v2-0276', code: 'FOLLOWUP' }],
      },
      serviceType: [{ coding: [{ system: 'http://snomed.info/sct', code: '11429006' }] }],
      // The booking's diagnosis (DG1), kept by the messages that sent none.
      reasonCode: [{ coding: [{ system: 'http://hl7.org/fhir/sid/icd-10', code: 'E11.9' }] }],
      comment: 'Bring your glucose log.',
    });
    expect(appointment['minutesDuration']).toBeUndefined();
    const [patient, doctor, meter, room] = appointment['participant'];
    expect(patient).toEqual({
      actor: { reference: expect.stringMatching(/^Patient\//) },
      status: 'declined',
    });
    expect(doctor).toMatchObject({
      actor: { type: 'Practitioner', identifier: { value: '1234' }, display: 'Dr Gregory House' },
      status: 'declined',
    });
    expect(meter).toMatchObject({ actor: { display: 'Glucose meter' }, status: 'declined' });
    expect(room.actor.display).toBe(`CLINIC-${tag}, Room 6, GHH-${tag}`);
    // Its versions tell the story: booked at 10:00 (end from the duration), rescheduled, the
    // doctor pending in the modification.
    const history = await http(
      'GET',
      `${testApp.url}/fhir/Appointment/${appointment['id']}/_history`,
    );
    const versions = history.body.entry.map((e: any) => e.resource).reverse();
    expect(versions.map((v: any) => [v.status, v.start, v.end])).toEqual([
      ['booked', '2025-01-10T10:00:00+01:00', '2025-01-10T10:30:00+01:00'],
      ['booked', '2025-01-11T14:00:00+01:00', '2025-01-11T14:30:00+01:00'],
      ['booked', '2025-01-11T14:00:00+01:00', '2025-01-11T14:30:00+01:00'],
      ['cancelled', '2025-01-11T14:00:00+01:00', '2025-01-11T14:30:00+01:00'],
    ]);
    expect(versions[0].minutesDuration).toBe(30);
    expect(versions[1].participant.map((p: any) => p.status)).toEqual([
      'accepted',
      'accepted',
      'accepted',
      'accepted',
    ]);
    expect(versions[2].participant[1].status).toBe('tentative');
    // The Location booked is the one the feed names elsewhere, found by the patient's id too.
    const location = await http('GET', `${testApp.url}/fhir/${room.actor.reference}`);
    expect(location.body.name).toBe(`CLINIC-${tag}, Room 6, GHH-${tag}`);
    const listed = await http(
      'GET',
      `${testApp.url}/fhir/Appointment?patient=${patient.actor.reference}&status=cancelled`,
    );
    expect(listed.body.entry.map((e: any) => e.resource.id)).toEqual([appointment['id']]);
  });

  it('adds, changes, cancels and deletes some services and resources of an appointment (SIU S18-S22)', async () => {
    const tag = randomUUID().slice(0, 8);
    const siu = (event: string, control: string, body: string, id = `F1-${tag}`) =>
      Buffer.from(
        `MSH|^~\\&|SCHED|HOSP|CV|CV|20250101||SIU^${event}|${control}-${tag}|P|2.5\r` +
          `SCH|P1-${tag}|${id}^SCHED^2.16.27^ISO|||||FOLLOWUP|NORMAL|30|min\r` +
          `PID|1||RES-${tag}^^^HOSP&2.16.27&ISO^MR||Res^Pat\rRGS|1` +
          body,
      );
    const consultation = '\rAIS|1||11429006^Consultation^SCT';
    const footExam = '\rAIS|2||401191002^Foot examination^SCT';
    const doctor = '\rAIP|1||1234^House^Gregory^^^Dr|D^Diabetologist^L';
    const room = (status = '') => `\rAIL|1||CLINIC-${tag}^Room 5^^GHH-${tag}|||||||||${status}`;
    const meter = '\rAIG|1||GM-7^Glucose meter^L|EQ^Equipment^L';
    const steps: [Buffer, string][] = [
      [siu('S12', 'R1', `\rTQ1|||||||202501101000+0100${consultation}${doctor}${room()}`), 'AA'],
      // A glucose meter and a foot examination added: the doctor and the room stay.
      [siu('S18', 'R2', `${footExam}${meter}`), 'AA'],
      // The doctor cancelled: declined, the others as they were.
      [siu('S20', 'R3', doctor), 'AA'],
      // The room not confirmed any more (its AIL-12 filler status), by a modification.
      [siu('S19', 'R4', room('Pending')), 'AA'],
      // The meter and the foot examination deleted.
      [siu('S22', 'R5', `${footExam}${meter}`), 'AA'],
      [siu('S21', 'R6', doctor, `NEVER-${tag}`), 'AE'],
    ];
    const sender = await client();
    await sender.send(steps.map(([message]) => message));
    const acks = await sender.waitForAcks(steps.length);
    expect(acks.map((ack) => msaOf(ack).code)).toEqual(steps.map(([, code]) => code));
    expect(acks[5]).toContain('A discontinued service or resource needs the id');
    const http = await doctorHttp();
    const found = await http(
      'GET',
      `${testApp.url}/fhir/Appointment?identifier=${encodeURIComponent(`urn:oid:2.16.27|F1-${tag}`)}`,
    );
    const appointment = found.body.entry[0].resource as Record<string, any>;
    const history = await http(
      'GET',
      `${testApp.url}/fhir/Appointment/${appointment['id']}/_history`,
    );
    const versions = (history.body.entry as { resource: Record<string, any> }[])
      .map((e) => e.resource)
      .reverse();
    const who = (version: Record<string, any>) =>
      version['participant'].map((p: any) => [p.actor.display ?? 'patient', p.status]);
    const services = (version: Record<string, any>) =>
      (version['serviceType'] ?? []).map((s: any) => s.coding[0].code);
    const place = `CLINIC-${tag}, Room 5, GHH-${tag}`;
    expect(versions.map((v) => [v['status'], services(v), who(v)])).toEqual([
      [
        'booked',
        ['11429006'],
        [
          ['patient', 'accepted'],
          ['Dr Gregory House', 'accepted'],
          [place, 'accepted'],
        ],
      ],
      [
        'booked',
        ['11429006', '401191002'],
        [
          ['patient', 'accepted'],
          ['Dr Gregory House', 'accepted'],
          [place, 'accepted'],
          ['Glucose meter', 'accepted'],
        ],
      ],
      [
        'booked',
        ['11429006', '401191002'],
        [
          ['patient', 'accepted'],
          ['Dr Gregory House', 'declined'],
          [place, 'accepted'],
          ['Glucose meter', 'accepted'],
        ],
      ],
      [
        'booked',
        ['11429006', '401191002'],
        [
          ['patient', 'accepted'],
          ['Dr Gregory House', 'declined'],
          ['Glucose meter', 'accepted'],
          [place, 'tentative'],
        ],
      ],
      [
        'booked',
        ['11429006'],
        [
          ['patient', 'accepted'],
          ['Dr Gregory House', 'declined'],
          [place, 'tentative'],
        ],
      ],
    ]);
    // The times of the booking were kept throughout.
    expect(appointment['start']).toBe('2025-01-10T10:00:00+01:00');
  });

  it('keeps the allergy list an ADT^A60 sends: added, updated, deleted by identifier or allergen', async () => {
    const tag = randomUUID().slice(0, 8);
    const a60 = (control: string, ...iam: string[]) =>
      Buffer.from(
        `MSH|^~\\&|ADT|HOSP|CV|CV|20250101||ADT^A60|${control}-${tag}|P|2.5\r` +
          `PID|1||ALG-${tag}^^^HOSP&2.16.16&ISO^MR||Alg^Pat\r` +
          iam.join('\r'),
      );
    const peanut = (action: string, status: string) =>
      `IAM|1|FA^Food allergy^HL70127|256349002^Peanut^SCT|MO||${action}|ALG1-${tag}^HOSP^2.16.16^ISO||AL||201805||202010051600+0000||||${status}`;
    const aspirin = (action: string) => `IAM|2|DA|1191^Aspirin^RXNORM|||${action}|||||||||||C`;
    const steps: Buffer[] = [
      a60(
        'L1',
        peanut('A', 'C'),
        'NTE|1||Reacted at a birthday party.',
        'IAR|271807003^Skin rash^SCT|MI^Mild',
        aspirin('A'),
      ),
      // The same list again, under another control id: nothing piles up.
      a60('L2', peanut('X', 'C'), aspirin('X')),
      a60('L3', peanut('U', 'I')),
      // Deleted: aspirin (no IAM-7, so by its allergen) and an allergy never sent.
      a60('L4', aspirin('D'), `IAM|3|DA|7980^Penicillin^RXNORM|||D|NEVER-${tag}^HOSP^2.16.16^ISO`),
    ];
    const sender = await client();
    await sender.send(steps);
    const acks = await sender.waitForAcks(steps.length);
    expect(acks.map((ack) => msaOf(ack).code)).toEqual(['AA', 'AA', 'AA', 'AA']);
    const http = await doctorHttp();
    const patients = await http(
      'GET',
      `${testApp.url}/fhir/Patient?identifier=${encodeURIComponent(`urn:oid:2.16.16|ALG-${tag}`)}`,
    );
    const patientId = String(patients.body.entry[0].resource.id);
    const listed = await http(
      'GET',
      `${testApp.url}/fhir/AllergyIntolerance?patient=Patient/${patientId}&_sort=_lastUpdated`,
    );
    const allergies = listed.body.entry.map((e: any) => e.resource);
    expect(allergies).toHaveLength(2);
    const byCode = (code: string) => allergies.find((a: any) => a.code.coding[0].code === code);
    expect(byCode('256349002')).toMatchObject({
      identifier: [{ system: 'urn:oid:2.16.16', value: `ALG1-${tag}` }],
      clinicalStatus: { coding: [{ code: 'inactive' }] },
      type: 'allergy',
      category: ['food'],
      criticality: 'low',
      onsetDateTime: '2018-05',
      recordedDate: '2020-10-05T16:00:00+00:00',
    });
    const aspirinRecord = byCode('1191');
    expect(aspirinRecord['verificationStatus'].coding[0].code).toBe('entered-in-error');
    expect(aspirinRecord['clinicalStatus']).toBeUndefined();
    // The first version had the reaction and the note of the IAR and NTE after its IAM.
    const first = await http(
      'GET',
      `${testApp.url}/fhir/AllergyIntolerance/${byCode('256349002').id}/_history/1`,
    );
    expect(first.body).toMatchObject({
      clinicalStatus: { coding: [{ code: 'active' }] },
      verificationStatus: { coding: [{ code: 'confirmed' }] },
      note: [{ text: 'Reacted at a birthday party.' }],
      reaction: [
        {
          manifestation: [{ coding: [{ system: 'http://snomed.info/sct', code: '271807003' }] }],
          severity: 'mild',
        },
      ],
    });
  });

  it('keeps the problem list PPR messages send, apart from the diagnoses of visits', async () => {
    const tag = randomUUID().slice(0, 8);
    const pid = `PID|1||PRB-${tag}^^^HOSP&2.16.17&ISO^MR||Prob^Pat`;
    const message = (type: string, control: string, ...segments: string[]) =>
      Buffer.from(
        [
          `MSH|^~\\&|EHR|HOSP|CV|CV|20250101||${type}|${control}-${tag}|P|2.5`,
          pid,
          ...segments,
        ].join('\r'),
      );
    const diabetes = (action: string, ...rest: string[]) =>
      [`PRB|${action}|20250101|E11.9^Type 2 diabetes^I10|P1-${tag}^EHR^2.16.17^ISO`, ...rest].join(
        '|',
      );
    const hypertension = (action: string, ...rest: string[]) =>
      [`PRB|${action}|20250101|38341003^Hypertension^SCT|`, ...rest].join('|');
    const steps: Buffer[] = [
      message(
        'PPR^PC1',
        'P1',
        diabetes('AD', '', '', '202401151000+0000', '', '', '', '', '', 'C', '', '', '2023'),
        'NTE|1||Diet controlled.',
        hypertension('AD'),
      ),
      // A visit's diagnosis of the same code is another record.
      message('ADT^A08', 'P2', 'DG1|1||38341003^Hypertension^SCT||20250102'),
      message(
        'PPR^PC2',
        'P3',
        diabetes('UP', '', '', '', '', '20250301'),
        hypertension('UP', '', '', '', '', '', '', '', '', '', 'INACTIVE'),
      ),
      message('PPR^PC3', 'P4', hypertension('DE'), `PRB|DE|20250101|1^Gout^L|NEVER-${tag}^EHR`),
    ];
    const sender = await client();
    await sender.send(steps);
    const acks = await sender.waitForAcks(steps.length);
    expect(acks.map((ack) => msaOf(ack).code)).toEqual(['AA', 'AA', 'AA', 'AA']);
    const http = await doctorHttp();
    const patients = await http(
      'GET',
      `${testApp.url}/fhir/Patient?identifier=${encodeURIComponent(`urn:oid:2.16.17|PRB-${tag}`)}`,
    );
    const subject = `subject=Patient/${String(patients.body.entry[0].resource.id)}`;
    const category = (code: string) =>
      `category=${encodeURIComponent(`http://terminology.hl7.org/CodeSystem/condition-category|${code}`)}`;
    const problems = await http(
      'GET',
      `${testApp.url}/fhir/Condition?${subject}&${category('problem-list-item')}`,
    );
    const byCode = (code: string) =>
      problems.body.entry.find((e: any) => e.resource.code.coding[0].code === code).resource;
    expect(problems.body.entry).toHaveLength(2);
    expect(byCode('E11.9')).toMatchObject({
      identifier: [{ system: 'urn:oid:2.16.17', value: `P1-${tag}` }],
      clinicalStatus: { coding: [{ code: 'resolved' }] },
      code: { coding: [{ system: 'http://hl7.org/fhir/sid/icd-10', code: 'E11.9' }] },
      abatementDateTime: '2025-03-01',
    });
    const hypertensionRecord = byCode('38341003');
    expect(hypertensionRecord['verificationStatus'].coding[0].code).toBe('entered-in-error');
    expect(hypertensionRecord['clinicalStatus']).toBeUndefined();
    // The first version of the diabetes: confirmed, its dates and note.
    const first = await http(
      'GET',
      `${testApp.url}/fhir/Condition/${byCode('E11.9').id}/_history/1`,
    );
    expect(first.body).toMatchObject({
      clinicalStatus: { coding: [{ code: 'active' }] },
      verificationStatus: { coding: [{ code: 'confirmed' }] },
      recordedDate: '2024-01-15T10:00:00+00:00',
      onsetDateTime: '2023',
      note: [{ text: 'Diet controlled.' }],
    });
    const diagnoses = await http(
      'GET',
      `${testApp.url}/fhir/Condition?${subject}&${category('encounter-diagnosis')}`,
    );
    expect(diagnoses.body.entry).toHaveLength(1);
    expect(diagnoses.body.entry[0].resource.clinicalStatus.coding[0].code).toBe('active');
    // Its update (PRB-14 INACTIVE) before the deletion.
    const updated = await http(
      'GET',
      `${testApp.url}/fhir/Condition/${String(hypertensionRecord['id'])}/_history/2`,
    );
    expect(updated.body.clinicalStatus.coding[0].code).toBe('inactive');
    // Neither was written over the other: the problem has its three versions, the diagnosis one.
    expect(hypertensionRecord['meta'].versionId).toBe('3');
    expect(diagnoses.body.entry[0].resource.meta.versionId).toBe('1');
  });

  it('keeps the procedures (PR1) and observations (OBX) of an ADT feed once each, tied to the visit', async () => {
    const tag = randomUUID().slice(0, 8);
    const adt = (control: string, ...pr1: string[]) =>
      Buffer.from(
        [
          `MSH|^~\\&|ADT|HOSP|CV|CV|20250101||ADT^A01|${control}-${tag}|P|2.5`,
          `PID|1||PR-${tag}^^^HOSP&2.16.20&ISO^MR||Proc^Pat`,
          `PV1|1|I|4E^136^B^GHH||||||||||||||||V-${tag}^^^HOSP&2.16.20&ISO^VN`,
          ...pr1,
        ].join('\r'),
      );
    const biopsy = (action = '') =>
      `PR1|1||45380^Colonoscopy with biopsy^C4||202501101130+0000|D^Diagnostic Procedure^HL70230||1210^ANES^MARK|||2210^SURGEON^ROBERT||||K63.3^Ulcer of intestine^I10||||PR-1-${tag}^HOSP^2.16.20^ISO|${action}`;
    // No identifier: found again by its code and the time it started.
    const xray = 'PR1|2||71045^Xray exam chest 1 view^C4||202501101400+0000||20';
    // Admission vitals: a weight at its time, a height with none (one per visit).
    const weight = 'OBX|1|NM|29463-7^Body weight^LN||72.5|kg^^UCUM|||||F|||202501100900+0000';
    const height = 'OBX|2|NM|8302-2^Body height^LN||178|cm^^UCUM|||||F';
    const steps = [
      adt('P1', biopsy(), xray, weight, height),
      adt('P2', biopsy(), xray, weight, height),
      adt('P3', biopsy('D')),
    ];
    const sender = await client();
    await sender.send(steps);
    expect((await sender.waitForAcks(steps.length)).map((ack) => msaOf(ack).code)).toEqual([
      'AA',
      'AA',
      'AA',
    ]);
    const http = await doctorHttp();
    const encounter = await http(
      'GET',
      `${testApp.url}/fhir/Encounter?identifier=${encodeURIComponent(`urn:oid:2.16.20|V-${tag}`)}`,
    );
    const encounterId = String(encounter.body.entry[0].resource.id);
    const found = await http(
      'GET',
      `${testApp.url}/fhir/Procedure?encounter=Encounter/${encounterId}`,
    );
    expect(found.body.entry).toHaveLength(2);
    const byCode = (code: string) =>
      found.body.entry.find((e: any) => e.resource.code.coding[0].code === code).resource;
    expect(byCode('45380')).toMatchObject({
      identifier: [{ system: 'urn:oid:2.16.20', value: `PR-1-${tag}` }],
      status: 'entered-in-error',
      category: { coding: [{ code: 'D' }] },
      code: { coding: [{ system: 'http://www.ama-assn.org/go/cpt', code: '45380' }] },
      performedDateTime: '2025-01-10T11:30:00+00:00',
      performer: [
        { function: { text: 'Anesthesiologist' }, actor: { identifier: { value: '1210' } } },
        { function: { text: 'Surgeon' }, actor: { identifier: { value: '2210' } } },
      ],
      reasonCode: [{ coding: [{ code: 'K63.3' }] }],
    });
    expect(byCode('71045')).toMatchObject({
      status: 'unknown',
      performedPeriod: { start: '2025-01-10T14:00:00+00:00', end: '2025-01-10T14:20:00+00:00' },
      // Sent twice as it was: found again, and no new version.
      meta: { versionId: '1' },
    });
    const observations = await http(
      'GET',
      `${testApp.url}/fhir/Observation?encounter=Encounter/${encounterId}&_sort=code`,
    );
    expect(
      observations.body.entry.map((e: any) => [
        e.resource.code.coding[0].code,
        e.resource.valueQuantity.value,
        e.resource.meta.versionId,
      ]),
    ).toEqual([
      ['29463-7', 72.5, '1'],
      ['8302-2', 178, '1'],
    ]);
  });

  it('files an update under a new Patient, not the one deleted after the feed found it', async () => {
    const adt = (event: string, control: string, family: string) =>
      Buffer.from(
        `MSH|^~\\&|ADT|HOSP|CV|CV|20240101||ADT^${event}|${control}|P|2.5\rPID|1||DR-1^^^HOSP&2.16.11&ISO^MR||${family}^Pat`,
      );
    const sender = await client();
    await sender.send([adt('A04', 'DR-A', 'Before')]);
    expect(msaOf((await sender.waitForAcks(1))[0]!).code).toBe('AA');
    const http = await doctorHttp();
    const search = `${testApp.url}/fhir/Patient?identifier=${encodeURIComponent('urn:oid:2.16.11|DR-1')}`;
    const deletedId = (await http('GET', search)).body.entry[0].resource.id as string;
    // A plain DELETE takes no criteria lock: held open here, it commits after the A08 has
    // found the Patient live, while the A08 waits to lock it against deletion.
    const { release } = await heldDelete(testApp, 'Patient', deletedId);
    await sender.send([adt('A08', 'DR-B', 'After')]);
    await untilWaitingForLock(data, 'The A08', '%FOR KEY SHARE%');
    await release();
    const [ack] = await sender.waitForAcks(2).then((acks) => acks.slice(1));
    expect(msaOf(ack!).code).toBe('AA');
    // The deletion stands; the update, as a conditional update sent again would, found no
    // patient and created one.
    expect((await http('GET', `${testApp.url}/fhir/Patient/${deletedId}`)).status).toBe(410);
    const found = (await http('GET', search)).body.entry as { resource: Record<string, any> }[];
    expect(
      found.map(({ resource }) => [resource.id === deletedId, resource.name[0].family]),
    ).toEqual([[false, 'After']]);
  });

  it('files results under a new Patient, not the one deleted after the feed found it, when the PID says nothing new', async () => {
    const tag = randomUUID().slice(0, 8);
    const pid = `PID|1||RD-${tag}^^^HOSP&2.16.11&ISO^MR||Same^Pat`;
    const sender = await client();
    await sender.send([
      Buffer.from(`MSH|^~\\&|ADT|HOSP|CV|CV|20240101||ADT^A04|RD-A-${tag}|P|2.5\r${pid}`),
    ]);
    expect(msaOf((await sender.waitForAcks(1))[0]!).code).toBe('AA');
    const http = await doctorHttp();
    const search = `${testApp.url}/fhir/Patient?identifier=${encodeURIComponent(`urn:oid:2.16.11|RD-${tag}`)}`;
    const deletedId = (await http('GET', search)).body.entry[0].resource.id as string;
    // The deletion commits after the ORU has found the Patient live. Its PID repeats what the
    // Patient holds, so nothing is written to the Patient: until 2026-12-06 only the check of
    // the results' reference to it, at commit, saw the deletion, and refused them (AE).
    const { release } = await heldDelete(testApp, 'Patient', deletedId);
    await sender.send([
      Buffer.from(
        [
          `MSH|^~\\&|ADT|HOSP|CV|CV|20240101||ORU^R01|RD-B-${tag}|P|2.5.1`,
          pid,
          `OBR|1||RD-O-${tag}^HOSP^2.16.11^ISO|2345-7^Glucose^LN|||202401010800+0000||||||||||||||||F`,
          'OBX|1|NM|2345-7^Glucose^LN||5.4|mmol/L^^UCUM|||||F',
        ].join('\r'),
      ),
    ]);
    await untilWaitingForLock(data, 'The ORU', '%FOR KEY SHARE%');
    await release();
    const [ack] = await sender.waitForAcks(2).then((acks) => acks.slice(1));
    expect(msaOf(ack!).code).toBe('AA');
    expect((await http('GET', `${testApp.url}/fhir/Patient/${deletedId}`)).status).toBe(410);
    const found = (await http('GET', search)).body.entry as { resource: { id: string } }[];
    expect(found).toHaveLength(1);
    const report = await http(
      'GET',
      `${testApp.url}/fhir/DiagnosticReport?identifier=${encodeURIComponent(`urn:oid:2.16.11|RD-O-${tag}`)}`,
    );
    expect(report.body.entry[0].resource.subject).toEqual({
      reference: `Patient/${found[0]!.resource.id}`,
    });
  });

  it('processes a message again when a deadlock rolled it back, and answers AA once done', async () => {
    const adt = (event: string, control: string, family: string) =>
      Buffer.from(
        `MSH|^~\\&|ADT|HOSP|CV|CV|20240101||ADT^${event}|${control}|P|2.5\rPID|1||DL-1^^^HOSP&2.16.11&ISO^MR||${family}^Pat`,
      );
    const sender = await client();
    await sender.send([adt('A28', 'DL-A', 'Before')]);
    expect(msaOf((await sender.waitForAcks(1))[0]!).code).toBe('AA');
    const http = await doctorHttp();
    const search = `${testApp.url}/fhir/Patient?identifier=${encodeURIComponent('urn:oid:2.16.11|DL-1')}`;
    const patient = (await http('GET', search)).body.entry[0].resource as { id: string };

    const other = data.createQueryRunner();
    await other.connect();
    try {
      await other.startTransaction();
      await neverTheDeadlockVictim(other);
      await other.query(
        "SELECT 1 FROM resource WHERE resource_type = 'Patient' AND id = $1 FOR UPDATE",
        [patient.id],
      );
      // The update (A08) holds its stored message's row and waits for the Patient...
      await sender.send([adt('A08', 'DL-B', 'After')]);
      await untilWaitingForLock(data, 'The A08', '%FOR KEY SHARE%');
      const [message] = await data.query<{ id: string }[]>(
        "SELECT id FROM hl7_message WHERE control_id = 'DL-B'",
      );
      // ...while this session, holding the Patient, asks for the message's row: PostgreSQL rolls
      // the message's transaction back, and the service runs it again, which waits here until
      // this session lets go.
      await other.query('SELECT 1 FROM hl7_message WHERE id = $1 FOR UPDATE', [message!.id]);
      await other.rollbackTransaction();
      const [ack] = await sender.waitForAcks(2).then((acks) => acks.slice(1));
      expect(msaOf(ack!).code).toBe('AA');
    } finally {
      if (other.isTransactionActive) await other.rollbackTransaction();
      await other.release();
    }
    const [stored] = await data.query<{ status: string }[]>(
      "SELECT status FROM hl7_message WHERE control_id = 'DL-B'",
    );
    expect(stored!.status).toBe('processed');
    const updated = (await http('GET', search)).body.entry[0].resource;
    expect(updated).toMatchObject({ name: [{ family: 'After' }], meta: { versionId: '2' } });
  });

  it('locks the patients of a results message in one order, whatever order its PIDs come in', async () => {
    const tag = randomUUID().slice(0, 8);
    const msh = (type: string, control: string) =>
      `MSH|^~\\&|LAB|NORTH|CV|HOSP|20240101||${type}|${control}-${tag}|P|2.5.1`;
    const pid = (mrn: string) => `PID|1||${mrn}-${tag}^^^NORTH&2.16.840.1.8&ISO^MR||Crosswise^Pat`;
    const sender = await client();
    await sender.send(
      ['XA', 'XB'].map((mrn) => Buffer.from([msh('ADT^A04', mrn), pid(mrn)].join('\r'))),
    );
    expect((await sender.waitForAcks(2)).map((ack) => msaOf(ack).code)).toEqual(['AA', 'AA']);

    // The criteria a PID is searched by, and the key of its exclusive lock, which orders it.
    const unitOfWork = testApp.app.get(UnitOfWork);
    const matches = testApp.app.get(CriteriaMatches);
    const criteriaOf = (mrn: string) => {
      const { text, header } = decodeMessage(
        Buffer.from([msh('ORU^R01', 'X'), pid(mrn)].join('\r')),
      );
      const message = new V2Message(text, header.delimiters);
      const { identifiers } = patientFromSegments(
        message.first('PID')!,
        senderSystem(message),
        undefined,
      );
      return { type: 'Patient', criteria: identifierCriteria(identifiers)! };
    };
    const ownKey = async (manager: EntityManager): Promise<bigint> => {
      const [lock] = await manager.query<{ key: string }[]>(
        `SELECT ((classid::bigint << 32) | objid::bigint)::text AS key FROM pg_locks
          WHERE pid = pg_backend_pid() AND locktype = 'advisory' AND mode = 'ExclusiveLock'`,
      );
      return BigInt(lock!.key);
    };
    const keyOf = (mrn: string) =>
      unitOfWork.run(async (manager) => {
        await matches.lockCriteria([criteriaOf(mrn)]);
        return ownKey(manager);
      });
    const [first, second] = (await keyOf('XA')) < (await keyOf('XB')) ? ['XA', 'XB'] : ['XB', 'XA'];

    // This session holds the first patient's lock, as a message about it would...
    let release!: () => void;
    const released = new Promise<void>((resolve) => (release = resolve));
    let holding!: () => void;
    const held = new Promise<void>((resolve) => (holding = resolve));
    let secondTaken: unknown;
    const session = unitOfWork.run(async (manager) => {
      await matches.lockCriteria([criteriaOf(first)]);
      holding();
      await released;
      // ...and then asks for the second's, as a message naming both would. Until 2026-12-06
      // the ORU below held it already (its first PID), waiting here: a deadlock.
      await manager.query("SET LOCAL lock_timeout = '300ms'");
      secondTaken = await matches.lockCriteria([criteriaOf(second)]).then(
        () => true,
        (error: unknown) => error,
      );
    });
    await held;
    const result = (mrn: string, i: number) => [
      pid(mrn),
      `OBR|${i}||XO-${mrn}-${tag}^NORTH^2.16.840.1.8^ISO|2345-7^Glucose^LN|||202401010800+0000||||||||||||||||F`,
      `OBX|1|NM|2345-7^Glucose^LN||5.${i}|mmol/L^^UCUM|||||F`,
    ];
    await sender.send([
      Buffer.from([msh('ORU^R01', 'XR'), ...result(second, 1), ...result(first, 2)].join('\r')),
    ]);
    await untilWaitingForLock(data, 'The ORU', '%pg_advisory_xact_lock%');
    release();
    await session;
    expect(secondTaken).toBe(true);
    const [ack] = await sender.waitForAcks(3).then((acks) => acks.slice(2));
    expect(msaOf(ack!).code).toBe('AA');
    const http = await doctorHttp();
    for (const mrn of ['XA', 'XB']) {
      const reports = await http(
        'GET',
        `${testApp.url}/fhir/DiagnosticReport?identifier=${encodeURIComponent(`urn:oid:2.16.840.1.8|XO-${mrn}-${tag}`)}`,
      );
      expect(reports.body.entry).toHaveLength(1);
    }
  });

  it('maps VXU^V04 to Immunization, ORM^O01 and OMG^O19 to ServiceRequest, RDE^O11 to MedicationRequest', async () => {
    const vxu = samples.find((sample) => sample.file === 'VXU-V04-01.hl7')!;
    // The ORM samples share one placer order number (later ones update it): an order of its own.
    const orm = Buffer.from(
      [
        'MSH|^~\\&|ORDERS|HOSP|CV|CV|20240101||ORM^O01|ORM-T1|P|2.5',
        'PID|1||O-1^^^HOSP&2.16.6&ISO^MR||Order^Pat',
        'ORC|NW|P-555^HOSP^2.16.6^ISO|F-555^LAB^2.16.6^ISO||SC||||202110201126+0215|||D-77^Lee^Ann',
        `OBR|1|||24725-4^CT Head^LN${'|'.repeat(27)}R51^Headache^I10`,
        'NTE|1||Patient is claustrophobic',
      ].join('\r'),
    );
    // A general clinical order (OMG^O19) is an order like the others.
    const omg = Buffer.from(
      [
        'MSH|^~\\&|ORDERS|HOSP|CV|CV|20240101||OMG^O19|OMG-T1|P|2.5',
        'PID|1||O-1^^^HOSP&2.16.6&ISO^MR||Order^Pat',
        'ORC|NW|P-556^HOSP^2.16.6^ISO|||SC||||202110201130+0215',
        'OBR|1|||11524-6^EKG study^LN',
      ].join('\r'),
    );
    const sender = await client();
    await sender.send([vxu.bytes, orm, omg]);
    expect((await sender.waitForAcks(3)).map((ack) => msaOf(ack).code)).toEqual(['AA', 'AA', 'AA']);
    const http = await doctorHttp();
    const immunizations = await http(
      'GET',
      `${testApp.url}/fhir/Immunization?vaccine-code=${encodeURIComponent('http://hl7.org/fhir/sid/ndc|49281021588')}`,
    );
    expect(immunizations.body.entry[0].resource).toMatchObject({
      status: 'completed',
      occurrenceDateTime: '2021-08-18',
      lotNumber: '315841',
      expirationDate: '2021-12-16',
      primarySource: true,
      doseQuantity: { value: 0.5, unit: 'mL', system: 'http://unitsofmeasure.org', code: 'mL' },
    });
    const orders = await http(
      'GET',
      `${testApp.url}/fhir/ServiceRequest?identifier=${encodeURIComponent('urn:oid:2.16.6|P-555')}`,
    );
    // The give code, amount and units, and the route of the RXR after the RXE.
    const rde = Buffer.from(
      [
        'MSH|^~\\&|PHARMACY|HOSP|CV|CV|20240101||RDE^O11|RDE-T1|P|2.5',
        'PID|1||O-1^^^HOSP&2.16.6&ISO^MR||Order^Pat',
        'ORC|NW|RX-901^HOSP^2.16.6^ISO|||||||202401010900+0000',
        'RXE||0143963401^NICARDIPINE 40 MG/200 ML^NDC|5||43^mg/h',
        'RXR|IV^Intravenous',
      ].join('\r'),
    );
    await sender.send([rde]);
    expect(msaOf((await sender.waitForAcks(4))[3]!).code).toBe('AA');
    const medications = await http(
      'GET',
      `${testApp.url}/fhir/MedicationRequest?identifier=${encodeURIComponent('urn:oid:2.16.6|RX-901')}`,
    );
    expect(medications.body.entry[0].resource).toMatchObject({
      status: 'active',
      intent: 'order',
      dosageInstruction: [
        {
          doseAndRate: [{ doseQuantity: { value: 5, unit: 'mg/h' } }],
          route: { coding: [{ code: 'IV', display: 'Intravenous' }] },
        },
      ],
    });
    expect(orders.body.entry).toHaveLength(1);
    expect(orders.body.entry[0].resource).toMatchObject({
      status: 'active',
      intent: 'order',
      code: { coding: [{ system: 'http://loinc.org', code: '24725-4' }] },
      authoredOn: '2021-10-20T11:26:00+02:15',
      // The ordering provider (ORC-12), the reason (OBR-31) and the order's comment (NTE).
      requester: { type: 'Practitioner', identifier: { value: 'D-77' }, display: 'Ann Lee' },
      reasonCode: [{ coding: [{ code: 'R51', display: 'Headache' }] }],
      note: [{ text: 'Patient is claustrophobic' }],
    });
    const general = await http(
      'GET',
      `${testApp.url}/fhir/ServiceRequest?identifier=${encodeURIComponent('urn:oid:2.16.6|P-556')}`,
    );
    expect(general.body.entry[0].resource).toMatchObject({
      status: 'active',
      code: { coding: [{ system: 'http://loinc.org', code: '11524-6' }] },
    });
    // An order without an ORC, numbered in its OBR (OBR-2, OBR-3): sent twice, one order.
    const oml = (control: string) =>
      Buffer.from(
        [
          `MSH|^~\\&|ORDERS|HOSP|CV|CV|20240101||OML^O21|${control}|P|2.5`,
          'PID|1||O-1^^^HOSP&2.16.6&ISO^MR||Order^Pat',
          'OBR|1|P-557^HOSP^2.16.6^ISO|F-557^LAB^2.16.6^ISO|6532-6^Rabies FA^LN',
        ].join('\r'),
      );
    await sender.send([oml('OML-T1'), oml('OML-T2')]);
    expect((await sender.waitForAcks(6)).slice(4).map((ack) => msaOf(ack).code)).toEqual([
      'AA',
      'AA',
    ]);
    const numbered = await http(
      'GET',
      `${testApp.url}/fhir/ServiceRequest?identifier=${encodeURIComponent('urn:oid:2.16.6|P-557')}`,
    );
    expect(numbered.body.entry).toHaveLength(1);
    // Typed placer and filler numbers (v2-0203 PLAC, FILL), as the IG's OBR map has them.
    const v2_0203 = 'http://terminology.hl7.org/CodeSystem/v2-0203';
    expect(numbered.body.entry[0].resource.identifier).toEqual([
      {
        system: 'urn:oid:2.16.6',
        value: 'P-557',
        type: { coding: [{ system: v2_0203, code: 'PLAC' }] },
      },
      {
        system: 'urn:oid:2.16.6',
        value: 'F-557',
        type: { coding: [{ system: v2_0203, code: 'FILL' }] },
      },
    ]);
  });

  it('knows a dose without an order number again, keeps why one was refused, and deletes one (RXA-21 D)', async () => {
    const vxu = (control: string, ...orders: string[]) =>
      Buffer.from(
        [
          `MSH|^~\\&|IIS|HOSP|CV|CV|20240101||VXU^V04|${control}|P|2.3`,
          'PID|1||IZ-1^^^HOSP&2.16.15&ISO^MR||Dose^Kid||20200101|F',
          ...orders,
        ].join('\r'),
      );
    // RXA-3 time, RXA-5 vaccine, RXA-18 refusal reason, RXA-20 completion, RXA-21 action.
    const rxa = (vaccine: string, extra = '') =>
      `RXA|0|1|20240105||${vaccine}^CVX|0.5|mL^^UCUM${extra}`;
    const refused = `${'|'.repeat(11)}00^Parental decision^NIP002||RE|A`;
    const sender = await client();
    await sender.send([
      // No ORC at all (as v2.3 feeds send them), then the same message again.
      vxu('IZ-1', rxa('08^HepB'), rxa('03^MMR', refused)),
      vxu('IZ-2', rxa('08^HepB'), rxa('03^MMR', refused)),
      // An ORC is its RXA's own: the dose after it, without one, is another.
      vxu('IZ-3', 'ORC|RE||IZ-ORD-1^IIS', rxa('20^DTaP'), rxa('10^IPV')),
      // Deleted: a known dose, and one never sent.
      vxu('IZ-4', rxa('08^HepB', `${'|'.repeat(14)}D`)),
      vxu('IZ-5', rxa('21^Varicella', `${'|'.repeat(14)}D`)),
    ]);
    expect((await sender.waitForAcks(5)).map((ack) => msaOf(ack).code)).toEqual(
      Array(5).fill('AA'),
    );
    const http = await doctorHttp();
    const patientId = await patientIdOf(http, '2.16.15', 'IZ-1');
    const doses = await http(
      'GET',
      `${testApp.url}/fhir/Immunization?patient=Patient/${patientId}`,
    );
    const byVaccine = Object.fromEntries(
      (doses.body.entry as { resource: Record<string, any> }[]).map(({ resource }) => [
        resource['vaccineCode'].coding[0].code,
        resource,
      ]),
    );
    expect(doses.body.entry).toHaveLength(4);
    expect(Object.keys(byVaccine).sort()).toEqual(['03', '08', '10', '20']);
    expect(byVaccine['08']).toMatchObject({ status: 'entered-in-error' });
    expect(byVaccine['03']).toMatchObject({
      status: 'not-done',
      statusReason: { coding: [{ code: '00', display: 'Parental decision' }] },
      meta: { versionId: '1' },
    });
    expect(byVaccine['20'].identifier).toEqual([expect.objectContaining({ value: 'IZ-ORD-1' })]);
    expect(byVaccine['10'].identifier).toBeUndefined();
  });

  it('keeps a refill (RDE^O25) and a dispense (RDS^O13) with the prescription they belong to', async () => {
    const tag = randomUUID().slice(0, 8);
    const message = (type: string, control: string, ...segments: string[]) =>
      Buffer.from(
        [
          `MSH|^~\\&|PHARMACY|HOSP|CV|CV|20240101||${type}|${control}-${tag}|P|2.5`,
          `PID|1||RX-${tag}^^^HOSP&2.16.18&ISO^MR||Pharm^Pat`,
          `ORC|RF|RX-${tag}^HOSP^2.16.18^ISO|||||||202401010900+0000`,
          ...segments,
        ].join('\r'),
      );
    const steps = [
      // The route comes after a TQ1 and a PRT: it is still the RXE's.
      message(
        'RDE^O25',
        'R1',
        'RXE||01151327^Doxycycline^NDC|1||TAB^Tablet',
        'PRT||AD||AD',
        'TQ1|1||BID',
        'RXR|PO^Oral',
      ),
      message(
        'RDS^O13',
        'R2',
        'RXD|1|01151327^Doxycycline^NDC|202401021000+0000|20|TAB^Tablet||||Take with food|1234^House^Gregory',
        'RXR|PO^Oral',
      ),
      // The same dispense again (a resend under a new control id) replaces it.
      message(
        'RDS^O13',
        'R3',
        'RXD|1|01151327^Doxycycline^NDC|202401021000+0000|20|TAB^Tablet||||Take with food|1234^House^Gregory',
      ),
      message('RDS^O13', 'R4'),
    ];
    const sender = await client();
    await sender.send(steps);
    const acks = await sender.waitForAcks(steps.length);
    expect(acks.map((ack) => msaOf(ack).code)).toEqual(['AA', 'AA', 'AA', 'AE']);
    expect(acks[3]).toContain('A pharmacy message needs an RXE or RXD segment');
    const http = await doctorHttp();
    const requests = await http(
      'GET',
      `${testApp.url}/fhir/MedicationRequest?identifier=${encodeURIComponent(`urn:oid:2.16.18|RX-${tag}`)}`,
    );
    expect(requests.body.entry).toHaveLength(1);
    const request = requests.body.entry[0].resource;
    expect(request.dosageInstruction[0].route.coding[0].code).toBe('PO');
    const dispenses = await http(
      'GET',
      `${testApp.url}/fhir/MedicationDispense?${String(request.subject.reference).replace('Patient/', 'subject=Patient/')}`,
    );
    expect(dispenses.body.entry).toHaveLength(1);
    expect(dispenses.body.entry[0].resource).toMatchObject({
      identifier: [{ system: 'urn:oid:2.16.18', value: `RX-${tag}/dispense/1` }],
      status: 'completed',
      medicationCodeableConcept: {
        coding: [{ system: 'http://hl7.org/fhir/sid/ndc', code: '01151327' }],
      },
      authorizingPrescription: [{ reference: `MedicationRequest/${String(request.id)}` }],
      quantity: { value: 20, unit: 'Tablet' },
      whenHandedOver: '2024-01-02T10:00:00+00:00',
      performer: [{ actor: { identifier: { value: '1234' }, display: 'Gregory House' } }],
      note: [{ text: 'Take with food' }],
    });
  });

  it('keeps a referral (REF^I12) as a ServiceRequest for its diagnoses, changed (I13) and cancelled (I14)', async () => {
    const tag = randomUUID().slice(0, 8);
    const ref = (event: string, priority: string, id = `REF-${tag}`) =>
      Buffer.from(
        [
          `MSH|^~\\&|EHR|HOSP|CV|CV|20250101||REF^${event}|${event}-${id}|P|2.5`,
          `RF1|P^Pending^HL70283|${priority}|Med^Medical^HL70281||O|${id}^EHR^2.16.19^ISO|20250110|20250310`,
          'PRD|RP^Referring Provider^HL70286|POWELL^ROBERT^^^DR|||||PLN1001^SL',
          'PRD|RT^Referred to Provider^HL70286|McWILLIAMS^PAUL^^^DR|||||PLN5010^SL',
          `PID|1||REFP-${tag}^^^HOSP&2.16.19&ISO^MR||Ref^Pat`,
          'DG1|1||K63.3^Ulcer of intestine^I10||20250101',
        ].join('\r'),
      );
    const steps = [
      ref('I12', 'R'),
      ref('I13', 'S'),
      ref('I14', 'S'),
      ref('I14', 'S', `NEVER-${tag}`),
    ];
    const sender = await client();
    await sender.send(steps);
    const acks = await sender.waitForAcks(steps.length);
    expect(acks.map((ack) => msaOf(ack).code)).toEqual(['AA', 'AA', 'AA', 'AE']);
    expect(acks[3]).toContain('A cancelled referral needs the identifier (RF1-6)');
    const http = await doctorHttp();
    const found = await http(
      'GET',
      `${testApp.url}/fhir/ServiceRequest?identifier=${encodeURIComponent(`urn:oid:2.16.19|REF-${tag}`)}`,
    );
    expect(found.body.entry).toHaveLength(1);
    const referral = found.body.entry[0].resource;
    expect(referral).toMatchObject({
      status: 'revoked',
      intent: 'order',
      priority: 'stat',
      category: [
        { coding: [{ system: 'http://snomed.info/sct', code: '3457005' }] },
        { coding: [{ code: 'Med' }] },
      ],
      occurrencePeriod: { start: '2025-01-10', end: '2025-03-10' },
      requester: { identifier: { value: 'PLN1001' }, display: 'DR ROBERT POWELL' },
      performer: [{ identifier: { value: 'PLN5010' }, display: 'DR PAUL McWILLIAMS' }],
      meta: { versionId: '3' },
    });
    const reason = await http(
      'GET',
      `${testApp.url}/fhir/${referral.reasonReference[0].reference}`,
    );
    expect(reason.body.code.coding[0]).toMatchObject({ code: 'K63.3' });
    expect(reason.body.subject).toEqual(referral.subject);
  });

  it('ties results, orders, prescriptions and vaccinations to the visit they name (PV1-19) when it is known, and makes none', async () => {
    const tag = randomUUID().slice(0, 8);
    const head = (type: string, control: string, visit: string) => [
      `MSH|^~\\&|LAB|HOSP|CV|CV|20250101||${type}|${control}-${tag}|P|2.5`,
      `PID|1||VIS-${tag}^^^HOSP&2.16.21&ISO^MR||Visit^Pat`,
      `PV1|1|I|4E||||||||||||||||${visit}^^^HOSP&2.16.21&ISO^VN`,
    ];
    const steps = [
      Buffer.from(head('ADT^A01', 'V1', `V-${tag}`).join('\r')),
      Buffer.from(
        [
          ...head('ORM^O01', 'V2', `V-${tag}`),
          `ORC|NW|ORD-${tag}^HOSP^2.16.21^ISO`,
          'OBR|1|||2345-7^Glucose^LN',
        ].join('\r'),
      ),
      Buffer.from(
        [
          ...head('ORU^R01', 'V3', `V-${tag}`),
          `OBR|1||RES-${tag}^LAB^2.16.21^ISO|2345-7^Glucose^LN|||202501101000+0000`,
          'OBX|1|NM|2345-7^Glucose^LN||5.4|mmol/L^^UCUM|||||F',
        ].join('\r'),
      ),
      Buffer.from(
        [
          ...head('RDE^O11', 'V5', `V-${tag}`),
          `ORC|NW|RX-${tag}^HOSP^2.16.21^ISO`,
          'RXE||01151327^Doxycycline^NDC|1||TAB^Tablet',
        ].join('\r'),
      ),
      Buffer.from(
        [
          ...head('VXU^V04', 'V6', `V-${tag}`),
          `ORC|RE|IMM-${tag}^HOSP^2.16.21^ISO`,
          'RXA|0|1|20250110|20250110|08^HEPB-PEDIATRIC/ADOLESCENT^CVX|0.5|mL^mL^UCUM',
        ].join('\r'),
      ),
      // A visit not known here: the result is kept, with no visit, and no Encounter is made.
      Buffer.from(
        [
          ...head('ORU^R01', 'V4', `OTHER-${tag}`),
          `OBR|1||RES2-${tag}^LAB^2.16.21^ISO|2345-7^Glucose^LN|||202501111000+0000`,
          'OBX|1|NM|2345-7^Glucose^LN||6.1|mmol/L^^UCUM|||||F',
        ].join('\r'),
      ),
    ];
    const sender = await client();
    await sender.send(steps);
    expect((await sender.waitForAcks(steps.length)).map((ack) => msaOf(ack).code)).toEqual(
      steps.map(() => 'AA'),
    );
    const http = await doctorHttp();
    const encounter = async (number: string) =>
      (
        await http(
          'GET',
          `${testApp.url}/fhir/Encounter?identifier=${encodeURIComponent(`urn:oid:2.16.21|${number}`)}`,
        )
      ).body.entry ?? [];
    expect(await encounter(`OTHER-${tag}`)).toHaveLength(0);
    const visit = `Encounter/${String((await encounter(`V-${tag}`))[0].resource.id)}`;
    for (const type of ['ServiceRequest', 'DiagnosticReport', 'Observation', 'MedicationRequest']) {
      const found = await http('GET', `${testApp.url}/fhir/${type}?encounter=${visit}`);
      expect([type, found.body.entry?.length]).toEqual([type, 1]);
    }
    const immunization = await http(
      'GET',
      `${testApp.url}/fhir/Immunization?identifier=${encodeURIComponent(`urn:oid:2.16.21|IMM-${tag}`)}`,
    );
    expect(immunization.body.entry[0].resource.encounter).toEqual({ reference: visit });
    const other = await http(
      'GET',
      `${testApp.url}/fhir/DiagnosticReport?identifier=${encodeURIComponent(`urn:oid:2.16.21|RES2-${tag}`)}`,
    );
    expect(other.body.entry[0].resource.encounter).toBeUndefined();
  });

  it('ties a report and its results to the order they answer (ORC-2, else OBR-2; after the OBR in OUL)', async () => {
    const tag = randomUUID().slice(0, 8);
    const head = (type: string, control: string) => [
      `MSH|^~\\&|LAB|HOSP|CV|CV|20250101||${type}|${control}-${tag}|P|2.5`,
      `PID|1||ORD-${tag}^^^HOSP&2.16.29&ISO^MR||Order^Pat`,
    ];
    const placer = (n: string) => `${n}-${tag}^EHR^2.16.29^ISO`;
    const obr = (filler: string, placed = '') =>
      `OBR|1|${placed}|${filler}-${tag}^LAB^2.16.29^ISO|2345-7^Glucose^LN|||202501101000+0000`;
    const obx = 'OBX|1|NM|2345-7^Glucose^LN||5.4|mmol/L^^UCUM|3.5-5.5||||F';
    const steps = [
      // Two orders, then their results: one by the ORC before its OBR (ORU), one by OBR-2.
      Buffer.from([...head('ORM^O01', 'O1'), `ORC|NW|${placer('P1')}`, obr('')].join('\r')),
      Buffer.from([...head('ORM^O01', 'O2'), `ORC|NW|${placer('P2')}`, obr('')].join('\r')),
      Buffer.from([...head('ORU^R01', 'O3'), `ORC|RE|${placer('P1')}`, obr('R1'), obx].join('\r')),
      Buffer.from([...head('ORU^R01', 'O4'), obr('R2', placer('P2')), obx].join('\r')),
      // OUL: the ORC right after its OBR is that order's, not the next one's.
      Buffer.from(
        [
          ...head('OUL^R22', 'O5'),
          `SPM|1|S-${tag}&LAB&2.16.29&ISO||SER^Serum^HL70487`,
          obr('R3'),
          `ORC|RE|${placer('P1')}`,
          obx,
          obr('R4'),
          obx,
        ].join('\r'),
      ),
      // An order not known here: the report names its number.
      Buffer.from([...head('ORU^R01', 'O6'), `ORC|RE|${placer('P9')}`, obr('R5'), obx].join('\r')),
    ];
    const sender = await client();
    await sender.send(steps);
    expect((await sender.waitForAcks(steps.length)).map((ack) => msaOf(ack).code)).toEqual(
      steps.map(() => 'AA'),
    );
    const http = await doctorHttp();
    const byNumber = async (type: string, number: string) =>
      (
        await http(
          'GET',
          `${testApp.url}/fhir/${type}?identifier=${encodeURIComponent(`urn:oid:2.16.29|${number}-${tag}`)}`,
        )
      ).body.entry[0].resource as Record<string, any>;
    const order = async (number: string) =>
      `ServiceRequest/${String((await byNumber('ServiceRequest', number))['id'])}`;
    const [p1, p2] = [await order('P1'), await order('P2')];
    const based = async (report: string) => (await byNumber('DiagnosticReport', report))['basedOn'];
    expect(await based('R1')).toEqual([{ reference: p1 }]);
    expect(await based('R2')).toEqual([{ reference: p2 }]);
    expect(await based('R3')).toEqual([{ reference: p1 }]);
    expect(await based('R4')).toBeUndefined();
    expect(await based('R5')).toEqual([
      {
        type: 'ServiceRequest',
        identifier: {
          system: 'urn:oid:2.16.29',
          value: `P9-${tag}`,
          type: {
            coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v2-0203', code: 'PLAC' }],
          },
        },
      },
    ]);
    // The results too, found from the order, with their reference range in numbers.
    const results = await http('GET', `${testApp.url}/fhir/Observation?based-on=${p1}`);
    expect(results.body.entry).toHaveLength(2);
    expect(results.body.entry[0].resource.referenceRange[0]).toMatchObject({
      low: { value: 3.5, unit: 'mmol/L' },
      high: { value: 5.5, unit: 'mmol/L' },
      text: '3.5-5.5',
    });
  });

  it("keeps a report's own document (OBX ED, RP) as the report's presentedForm", async () => {
    const tag = randomUUID().slice(0, 8);
    const oru = (control: string, status: string) =>
      Buffer.from(
        [
          `MSH|^~\\&|LAB|HOSP|CV|CV|20250101||ORU^R01|${control}-${tag}|P|2.5`,
          `PID|1||PDF-${tag}^^^HOSP&2.16.30&ISO^MR||Pdf^Pat`,
          `OBR|1||R-${tag}^LAB^2.16.30^ISO|24323-8^Metabolic panel^LN|||202501101000+0000||||||||||||||||||${status}`,
          `OBX|1|NM|2345-7^Glucose^LN||5.4|mmol/L^^UCUM|||||${status}`,
          `OBX|2|ED|PDF^Lab report^L||LAB^AP^PDF^Base64^JVBERi0xLjQK||||||${status}`,
          `OBX|3|RP|IMG^Images^L||https://pacs.example/study/${tag}^LAB^IM^JPEG||||||${status}`,
        ].join('\r'),
      );
    const sender = await client();
    await sender.send([oru('E1', 'P'), oru('E2', 'F')]);
    expect((await sender.waitForAcks(2)).map((ack) => msaOf(ack).code)).toEqual(['AA', 'AA']);
    const http = await doctorHttp();
    const found = await http(
      'GET',
      `${testApp.url}/fhir/DiagnosticReport?identifier=${encodeURIComponent(`urn:oid:2.16.30|R-${tag}`)}`,
    );
    const report = found.body.entry[0].resource as Record<string, any>;
    // The final report replaced the preliminary one: its document once, its one result.
    expect(report['status']).toBe('final');
    expect(report['presentedForm']).toEqual([
      { contentType: 'application/pdf', data: 'JVBERi0xLjQK', title: 'Lab report' },
      { contentType: 'image/jpeg', url: `https://pacs.example/study/${tag}`, title: 'Images' },
    ]);
    expect(report['result']).toHaveLength(1);
    const results = await http(
      'GET',
      `${testApp.url}/fhir/Observation?subject=${String(report['subject'].reference)}`,
    );
    expect(results.body.entry.map((e: any) => e.resource.code.coding[0].code)).toEqual(['2345-7']);
  });

  it('files OUL^R22 results under the specimen (SPM) their OBRs follow', async () => {
    const tag = randomUUID().slice(0, 8);
    const spm = (id: string) =>
      `SPM|1|${id}-${tag}&LAB&2.16.23&ISO||SER^Serum^HL70487|||||||||||||202501100800+0000`;
    const obr = (id: string) => `OBR|1||${id}-${tag}^LAB^2.16.23^ISO|2345-7^Glucose^LN`;
    const obx = (value: string) => `OBX|1|NM|2345-7^Glucose^LN||${value}|mmol/L|||||F`;
    const sender = await client();
    const message = (control: string) =>
      Buffer.from(
        [
          `MSH|^~\\&|LAS|HOSP|CV|CV|20250101||OUL^R22|${control}-${tag}|P|2.5`,
          `PID|1||OUL-${tag}^^^HOSP&2.16.23&ISO^MR||Oul^Pat`,
          spm('S1'),
          'OBX|1|ST|SPECIMEN-Q^Specimen quality^L||Hemolyzed||||||F',
          // Two of one code: neither can be known again without being taken for the other.
          'OBX|2|ST|SPECIMEN-C^Specimen comment^L||Drawn late||||||F',
          'OBX|3|ST|SPECIMEN-C^Specimen comment^L||Recollect||||||F',
          obr('R1'),
          obx('5.4'),
          spm('S2'),
          obr('R2'),
          obx('6.1'),
        ].join('\r'),
      );
    // Sent again under a new control id (a resent queue): nothing is filed twice.
    await sender.send([message('U1'), message('U2')]);
    expect((await sender.waitForAcks(2)).map((ack) => msaOf(ack).code)).toEqual(['AA', 'AA']);
    const http = await doctorHttp();
    const specimenOf = async (id: string) =>
      (
        await http(
          'GET',
          `${testApp.url}/fhir/Specimen?identifier=${encodeURIComponent(`urn:oid:2.16.23|${id}-${tag}`)}`,
        )
      ).body.entry[0].resource.id as string;
    const [s1, s2] = [await specimenOf('S1'), await specimenOf('S2')];
    for (const [report, specimen] of [
      ['R1', s1],
      ['R2', s2],
    ] as const) {
      const found = await http(
        'GET',
        `${testApp.url}/fhir/DiagnosticReport?identifier=${encodeURIComponent(`urn:oid:2.16.23|${report}-${tag}`)}`,
      );
      expect(found.body.entry[0].resource.specimen).toEqual([
        { reference: `Specimen/${specimen}` },
      ]);
    }
    // The specimen's own observation (its quality) belongs to no report.
    const quality = await http('GET', `${testApp.url}/fhir/Observation?specimen=Specimen/${s1}`);
    expect(
      quality.body.entry
        .map((e: any) => String(e.resource.valueString ?? e.resource.valueQuantity.value))
        .sort(),
    ).toEqual(['5.4', 'Drawn late', 'Drawn late', 'Hemolyzed', 'Recollect', 'Recollect']);
  });

  /**
   * A billing system's messages about one patient (MRN `<prefix>-<tag>`) and visit (`V-<tag>`),
   * both numbered by HOSP under `oid`.
   */
  const billingMessages =
    (tag: string, prefix: string, oid: string) =>
    (type: string, control: string, ...segments: string[]) =>
      Buffer.from(
        [
          `MSH|^~\\&|BILLING|HOSP|CV|CV|20250101||${type}|${control}-${tag}|P|2.5`,
          `PID|1||${prefix}-${tag}^^^HOSP&${oid}&ISO^MR||${prefix}^Pat`,
          `PV1|1|I|4E^136^B^GHH||||||||||||||||V-${tag}^^^HOSP&${oid}&ISO^VN`,
          ...segments,
        ].join('\r'),
      );

  it("keeps the diagnoses and procedures of a billing account's messages (BAR), not the account", async () => {
    const tag = randomUUID().slice(0, 8);
    const message = billingMessages(tag, 'BAR', '2.16.24');
    const steps = [
      message('ADT^A01', 'B1'),
      message(
        'BAR^P01',
        'B2',
        'DG1|1||K35.80^Acute appendicitis^I10||202501101000+0000|F',
        'PR1|1||44970^Laparoscopic appendectomy^C4||202501101300+0000',
      ),
      message('BAR^P12', 'B3', 'DG1|1||K35.80^Acute appendicitis^I10||202501101000+0000|F'),
      // Purging accounts is the billing system's business: refused, as before.
      message('BAR^P02', 'B4'),
      // A later visit, then an account of both: each PV1's diagnoses are its own visit's.
      Buffer.from(
        [
          `MSH|^~\\&|BILLING|HOSP|CV|CV|20250101||ADT^A01|B5-${tag}|P|2.5`,
          `PID|1||BAR-${tag}^^^HOSP&2.16.24&ISO^MR||BAR^Pat`,
          `PV1|1|I|4E^136^B^GHH||||||||||||||||W-${tag}^^^HOSP&2.16.24&ISO^VN`,
        ].join('\r'),
      ),
      message(
        'BAR^P01',
        'B6',
        'DG1|1||K35.80^Acute appendicitis^I10||202501101000+0000|F',
        `PV1|2|I|4E^136^B^GHH||||||||||||||||W-${tag}^^^HOSP&2.16.24&ISO^VN`,
        'DG1|1||J18.9^Pneumonia^I10||202502011000+0000|F',
      ),
    ];
    const sender = await client();
    await sender.send(steps);
    const acks = await sender.waitForAcks(steps.length);
    expect(acks.map((ack) => msaOf(ack).code)).toEqual(['AA', 'AA', 'AA', 'AR', 'AA', 'AA']);
    // BAR is a type taken here: what is refused is the event (table 0357's 201), not the type.
    expect(acks[3]).toContain('ERR|||201^Unsupported event code^HL70357');
    const http = await doctorHttp();
    const encounter = await http(
      'GET',
      `${testApp.url}/fhir/Encounter?identifier=${encodeURIComponent(`urn:oid:2.16.24|V-${tag}`)}`,
    );
    expect(encounter.body.entry).toHaveLength(1);
    const visit = `Encounter/${String(encounter.body.entry[0].resource.id)}`;
    // The account's messages keep the visit's status (in progress, from the A01).
    expect(encounter.body.entry[0].resource.status).toBe('in-progress');
    const conditions = await http('GET', `${testApp.url}/fhir/Condition?encounter=${visit}`);
    expect(conditions.body.entry).toHaveLength(1);
    expect(conditions.body.entry[0].resource.code.coding[0].code).toBe('K35.80');
    const procedures = await http('GET', `${testApp.url}/fhir/Procedure?encounter=${visit}`);
    expect(procedures.body.entry[0].resource.code.coding[0].code).toBe('44970');
    const later = await http(
      'GET',
      `${testApp.url}/fhir/Encounter?identifier=${encodeURIComponent(`urn:oid:2.16.24|W-${tag}`)}`,
    );
    const laterVisit = `Encounter/${String(later.body.entry[0].resource.id)}`;
    const laterConditions = await http(
      'GET',
      `${testApp.url}/fhir/Condition?encounter=${laterVisit}`,
    );
    expect(
      (laterConditions.body.entry as { resource: { code: { coding: { code: string }[] } } }[]).map(
        (entry) => entry.resource.code.coding[0]!.code,
      ),
    ).toEqual(['J18.9']);
  });

  it("keeps a billing system's charges (DFT) as ChargeItems of the visit, refusing credits and payments", async () => {
    const tag = randomUUID().slice(0, 8);
    const message = billingMessages(tag, 'DFT', '2.16.25');
    // A charge with its transaction id and the procedure after it; one without an id.
    const charges = [
      `FT1|1|T-${tag}||20250110|20250111|CG|71045^Xray exam chest 1 view^C4|||2|100&USD|50&USD`,
      'NTE|1||Portable unit',
      'PR1|1||71045^Xray exam chest 1 view^C4||202501101300+0000',
      'FT1|2|||20250110|20250111|CG|99213^Office visit^C4|||1|80&USD',
    ];
    const steps = [
      message('ADT^A01', 'D1'),
      message('DFT^P03', 'D2', ...charges),
      // The billing system replays its queue: the same charges under a new control id.
      message('DFT^P03', 'D3', ...charges),
      // A payment is not a charge: refused, with nothing of the message kept.
      message(
        'DFT^P11',
        'D4',
        `FT1|1|P-${tag}||20250112||CG|99214^Office visit^C4|||1|120&USD`,
        `FT1|2|P2-${tag}||20250112||PY|99214^Office visit^C4|||1|-120&USD`,
      ),
      // Two charges of one code and day, neither numbered: which is which on a resend?
      message(
        'DFT^P03',
        'D5',
        'FT1|1|||20250113||CG|99215^Office visit^C4|||1|150&USD',
        'FT1|2|||20250113||CG|99215^Office visit^C4|||1|150&USD',
      ),
    ];
    const sender = await client();
    await sender.send(steps);
    const acks = await sender.waitForAcks(steps.length);
    expect(acks.map((ack) => msaOf(ack).code)).toEqual(['AA', 'AA', 'AA', 'AR', 'AE']);
    expect(acks[3]).toContain('103^Table value not found');
    expect(acks[4]).toContain('205^Duplicate key identifier');
    const billing = authorizedHttp(await tokenFor(testApp, 'billing'));
    const patient = await billing(
      'GET',
      `${testApp.url}/fhir/Patient?identifier=${encodeURIComponent(`urn:oid:2.16.25|DFT-${tag}`)}`,
    );
    const patientId = String(patient.body.entry[0].resource.id);
    const found = await billing(
      'GET',
      `${testApp.url}/fhir/ChargeItem?patient=Patient/${patientId}&_sort=code`,
    );
    const items = (found.body.entry as { resource: Record<string, any> }[]).map((e) => e.resource);
    // Two charges, each written once: the replay matched them (by FT1-2, else by code and day),
    // and neither the refused payment's message nor the ambiguous one left anything.
    expect(items.map((item) => [item['code'].coding[0].code, item['meta'].versionId])).toEqual([
      ['71045', '1'],
      ['99213', '1'],
    ]);
    const [xray, visit] = items as [Record<string, any>, Record<string, any>];
    expect(xray).toMatchObject({
      status: 'billable',
      identifier: [{ system: 'urn:carevault:v2:assigning-authority:HOSP', value: `T-${tag}` }],
      occurrenceDateTime: '2025-01-10',
      enteredDate: '2025-01-11',
      quantity: { value: 2 },
      priceOverride: { value: 100, currency: 'USD' },
      note: [{ text: 'Portable unit' }],
    });
    expect(visit).not.toHaveProperty('identifier');
    expect(visit['service']).toBeUndefined();
    // Both are of the visit the admission made; the X-ray's service is its procedure.
    const doctor = await doctorHttp();
    const encounter = await doctor(
      'GET',
      `${testApp.url}/fhir/Encounter?identifier=${encodeURIComponent(`urn:oid:2.16.25|V-${tag}`)}`,
    );
    const visitRef = `Encounter/${String(encounter.body.entry[0].resource.id)}`;
    expect([xray['context'], visit['context']]).toEqual([
      { reference: visitRef },
      { reference: visitRef },
    ]);
    const procedure = await doctor(
      'GET',
      `${testApp.url}/fhir/${String(xray['service'][0].reference)}`,
    );
    expect(procedure.body.code.coding[0].code).toBe('71045');
    expect(procedure.body.encounter).toEqual({ reference: visitRef });
  });

  it('answers AE (ERR 102 naming the field) for a charge amount a double cannot hold, and keeps no charge', async () => {
    const tag = randomUUID().slice(0, 8);
    const message = billingMessages(tag, 'DFX', '2.16.26');
    const charge = (amount: string) =>
      `FT1|1|X-${tag}||20250110|20250111|CG|71045^Xray exam chest 1 view^C4|||1|${amount}&USD`;
    const sender = await client();
    await sender.send([
      // 1234567890.123456789 was billed as 1234567890.1234567, with an AA.
      message('DFT^P03', 'X1', charge('1234567890.123456789')),
      // The billing system corrects it, and sends it again.
      message('DFT^P03', 'X2', charge('1234567890.12')),
    ]);
    const acks = await sender.waitForAcks(2);
    expect(acks.map((ack) => msaOf(ack).code)).toEqual(['AE', 'AA']);
    expect(acks[0]).toMatch(/\rERR\|.*102\^Data type error/);
    expect(acks[0]).toContain('FT1-11 holds a number with more digits than can be kept exactly');
    expect(acks[0]).not.toContain('1234567890');
    const [stored] = await data.query<{ status: string }[]>(
      'SELECT status FROM hl7_message WHERE control_id = $1',
      [`X1-${tag}`],
    );
    expect(stored!.status).toBe('error');
    const billing = authorizedHttp(await tokenFor(testApp, 'billing'));
    const patient = await billing(
      'GET',
      `${testApp.url}/fhir/Patient?identifier=${encodeURIComponent(`urn:oid:2.16.26|DFX-${tag}`)}`,
    );
    const found = await billing(
      'GET',
      `${testApp.url}/fhir/ChargeItem?patient=Patient/${String(patient.body.entry[0].resource.id)}`,
    );
    // Only the corrected charge: the refused message left nothing, rounded or not.
    expect(
      (found.body.entry as { resource: Record<string, any> }[]).map(
        (e) => e.resource['priceOverride'],
      ),
    ).toEqual([{ value: 1234567890.12, currency: 'USD' }]);
  });

  it('moves a visit to another patient on ADT^A45, with what was recorded in it', async () => {
    const tag = randomUUID().slice(0, 8);
    const msh = (type: string, control: string) =>
      `MSH|^~\\&|ADT|HOSP|CV|CV|20250101||${type}|${control}-${tag}|P|2.5`;
    const wrong = `PID|1||WRONG-${tag}^^^HOSP&2.16.26&ISO^MR||Wrong^Pat`;
    const right = `PID|1||RIGHT-${tag}^^^HOSP&2.16.26&ISO^MR||Right^Pat`;
    const visit = (number: string) => `PV1|1|I|4E||||||||||||||||${number}^^^HOSP&2.16.26&ISO^VN`;
    const move = (control: string) =>
      Buffer.from(
        [
          msh('ADT^A45', control),
          right,
          `MRG|WRONG-${tag}^^^HOSP&2.16.26&ISO^MR||||V-${tag}^^^HOSP&2.16.26&ISO^VN`,
          visit(`V2-${tag}`),
        ].join('\r'),
      );
    const steps = [
      // The visit, its diagnosis and a result, filed under the wrong patient.
      Buffer.from(
        [
          msh('ADT^A01', 'M1'),
          wrong,
          visit(`V-${tag}`),
          'DG1|1||K35.80^Acute appendicitis^I10||202501101000+0000|F',
          'AL1|1|DA|P^PENICILLIN',
        ].join('\r'),
      ),
      Buffer.from(
        [
          msh('ORU^R01', 'M2'),
          wrong,
          visit(`V-${tag}`),
          `OBR|1||RES-${tag}^LAB^2.16.26^ISO|2345-7^Glucose^LN|||202501101000+0000`,
          'OBX|1|NM|2345-7^Glucose^LN||5.4|mmol/L^^UCUM|||||F',
        ].join('\r'),
      ),
      move('M3'),
      // The same move again under a new control id (a replayed queue): nothing left to do.
      move('M4'),
      // A visit never seen here has nothing to move; one without its number is an error.
      Buffer.from(
        [
          msh('ADT^A45', 'M5'),
          right,
          `MRG|WRONG-${tag}^^^HOSP&2.16.26&ISO^MR||||UNKNOWN-${tag}^^^HOSP&2.16.26&ISO^VN`,
          visit(`UNKNOWN-${tag}`),
        ].join('\r'),
      ),
      Buffer.from(
        [msh('ADT^A45', 'M6'), right, `MRG|WRONG-${tag}^^^HOSP&2.16.26&ISO^MR`].join('\r'),
      ),
      Buffer.from([msh('ADT^A45', 'M7'), right].join('\r')),
    ];
    const sender = await client();
    await sender.send(steps);
    const acks = await sender.waitForAcks(steps.length);
    expect(acks.map((ack) => msaOf(ack).code)).toEqual(['AA', 'AA', 'AA', 'AA', 'AA', 'AE', 'AE']);
    expect(acks[5]).toContain('MRG-5 (the number of the visit to move) is required');
    expect(acks[6]).toContain('A visit move needs an MRG segment');
    const http = await doctorHttp();
    const patientOf = async (mrn: string) =>
      String(
        (
          await http(
            'GET',
            `${testApp.url}/fhir/Patient?identifier=${encodeURIComponent(`urn:oid:2.16.26|${mrn}`)}`,
          )
        ).body.entry[0].resource.id,
      );
    const wrongId = await patientOf(`WRONG-${tag}`);
    const rightId = await patientOf(`RIGHT-${tag}`);
    // The visit is the right patient's, under its new number only, moved once.
    const renumbered = await http(
      'GET',
      `${testApp.url}/fhir/Encounter?identifier=${encodeURIComponent(`urn:oid:2.16.26|V2-${tag}`)}`,
    );
    const encounter = renumbered.body.entry[0].resource;
    expect(encounter.subject).toEqual({ reference: `Patient/${rightId}` });
    expect(encounter.meta.versionId).toBe('2');
    const old = await http(
      'GET',
      `${testApp.url}/fhir/Encounter?identifier=${encodeURIComponent(`urn:oid:2.16.26|V-${tag}`)}`,
    );
    expect(old.body.entry ?? []).toHaveLength(0);
    // What names the visit moved with it; the allergy, which does not, stayed.
    for (const type of ['Condition', 'DiagnosticReport', 'Observation']) {
      const records = await http(
        'GET',
        `${testApp.url}/fhir/${type}?encounter=Encounter/${String(encounter.id)}`,
      );
      expect([type, records.body.entry.map((e: any) => e.resource.subject.reference)]).toEqual([
        type,
        [`Patient/${rightId}`],
      ]);
    }
    const leftBehind = await http(
      'GET',
      `${testApp.url}/fhir/Observation?subject=Patient/${wrongId}`,
    );
    expect(leftBehind.body.entry ?? []).toHaveLength(0);
    const allergies = await http(
      'GET',
      `${testApp.url}/fhir/AllergyIntolerance?patient=Patient/${wrongId}`,
    );
    expect(allergies.body.entry).toHaveLength(1);
  });

  it("refuses a visit number (PV1-19) that is another patient's, unless merged into this one", async () => {
    const tag = randomUUID().slice(0, 8);
    const msh = (type: string, control: string) =>
      `MSH|^~\\&|ADT|HOSP|CV|CV|20250101||${type}|${control}-${tag}|P|2.5`;
    const pid = (mrn: string) => `PID|1||${mrn}-${tag}^^^HOSP&2.16.27&ISO^MR||Pat^${mrn}`;
    const visit = (number: string) => `PV1|1|I|4E||||||||||||||||${number}^^^HOSP&2.16.27&ISO^VN`;
    const result = (control: string, mrn: string, number: string) =>
      Buffer.from(
        [
          msh('ORU^R01', control),
          pid(mrn),
          visit(number),
          `OBR|1||${control}-${tag}^LAB^2.16.27^ISO|2345-7^Glucose^LN|||202501101000+0000`,
          'OBX|1|NM|2345-7^Glucose^LN||5.4|mmol/L^^UCUM|||||F',
        ].join('\r'),
      );
    const steps: [Buffer, string][] = [
      [Buffer.from([msh('ADT^A01', 'W1'), pid('ANN'), visit(`VA-${tag}`)].join('\r')), 'AA'],
      [Buffer.from([msh('ADT^A01', 'W2'), pid('BOB'), visit(`VB-${tag}`)].join('\r')), 'AA'],
      // Bob's update and discharge naming Ann's visit do not take it from her; his result
      // naming it is his, filed without a visit, as for a visit not known here.
      [Buffer.from([msh('ADT^A08', 'W3'), pid('BOB'), visit(`VA-${tag}`)].join('\r')), 'AE'],
      [Buffer.from([msh('ADT^A03', 'W4'), pid('BOB'), visit(`VA-${tag}`)].join('\r')), 'AE'],
      [result('W5', 'BOB', `VA-${tag}`), 'AA'],
      // Ann merged into Bob (A40): her visit is his now, and so are the results in it.
      [
        Buffer.from(
          [msh('ADT^A40', 'W6'), pid('BOB'), `MRG|ANN-${tag}^^^HOSP&2.16.27&ISO^MR`].join('\r'),
        ),
        'AA',
      ],
      [result('W7', 'BOB', `VA-${tag}`), 'AA'],
      [Buffer.from([msh('ADT^A03', 'W8'), pid('BOB'), visit(`VA-${tag}`)].join('\r')), 'AA'],
    ];
    const sender = await client();
    await sender.send(steps.map(([message]) => message));
    const acks = await sender.waitForAcks(steps.length);
    expect(acks.map((ack) => msaOf(ack).code)).toEqual(steps.map(([, code]) => code));
    expect(acks[2]).toContain('ERR|||205^');
    expect(acks[2]).toContain("PV1-19 names another patient's visit");
    const http = await doctorHttp();
    const found = async (type: string, value: string) =>
      (
        await http(
          'GET',
          `${testApp.url}/fhir/${type}?identifier=${encodeURIComponent(`urn:oid:2.16.27|${value}`)}`,
        )
      ).body.entry?.map((entry: any) => entry.resource) ?? [];
    const [bob] = await found('Patient', `BOB-${tag}`);
    const [annVisit] = await found('Encounter', `VA-${tag}`);
    expect(annVisit.status).toBe('finished');
    expect(annVisit.subject).toEqual({ reference: `Patient/${String(bob.id)}` });
    const [unlinked] = await found('DiagnosticReport', `W5-${tag}`);
    expect(unlinked.subject).toEqual({ reference: `Patient/${String(bob.id)}` });
    expect(unlinked.encounter).toBeUndefined();
    const [merged] = await found('DiagnosticReport', `W7-${tag}`);
    expect(merged.encounter).toEqual({ reference: `Encounter/${String(annVisit.id)}` });
  });

  /** The one Encounter of a visit number of HOSP (2.16.9), as a doctor finds it. */
  /** The id of the one Patient an identifier (an OID's MRN) names, found through the API. */
  async function patientIdOf(http: HttpFn, oid: string, mrn: string): Promise<string> {
    const found = await http(
      'GET',
      `${testApp.url}/fhir/Patient?identifier=${encodeURIComponent(`urn:oid:${oid}|${mrn}`)}`,
    );
    expect(found.body.entry).toHaveLength(1);
    return String(found.body.entry[0].resource.id);
  }

  async function visitEncounter(http: HttpFn, visit: string): Promise<Record<string, any>> {
    const found = await http(
      'GET',
      `${testApp.url}/fhir/Encounter?identifier=${encodeURIComponent(`urn:oid:2.16.9|${visit}`)}`,
    );
    expect(found.body.entry).toHaveLength(1);
    return found.body.entry[0].resource as Record<string, any>;
  }

  it('follows a pending admission (A14) to its cancellation (A27); pending and tracking events keep its status', async () => {
    const sender = await client();
    const visit = `P-${randomUUID().slice(0, 8)}`;
    const adt = (event: string, location: string, visitNumber = visit) =>
      Buffer.from(
        `MSH|^~\\&|ADT|HOSP|CV|CV|20240101||ADT^${event}|${event}-${visitNumber}|P|2.5\r` +
          `PID|1||${visit}-P^^^HOSP&2.16.9&ISO^MR||Doe^Jo\r` +
          `PV1|1|I|${location}||||||||||||||||${visitNumber}^^^HOSP&2.16.9&ISO^VN`,
      );
    const http = await doctorHttp();
    const encounter = () => visitEncounter(http, visit);
    let acked = 0;
    const send = async (message: Buffer): Promise<string> => {
      await sender.send([message]);
      acked += 1;
      return (await sender.waitForAcks(acked)).at(-1)!;
    };
    expect(msaOf(await send(adt('A14', '4E^136^B^GHH'))).code).toBe('AA');
    expect((await encounter())['status']).toBe('planned');
    for (const [event, location] of [
      ['A15', '4E^136^B^GHH'],
      ['A26', '4E^136^B^GHH'],
      ['A16', '4E^136^B^GHH'],
      ['A25', '4E^136^B^GHH'],
      ['A09', '4E^136^B^GHH'],
      ['A10', '5W^501^A^GHH'],
    ] as const) {
      expect([event, msaOf(await send(adt(event, location))).code]).toEqual([event, 'AA']);
    }
    const tracked = await encounter();
    expect(tracked['status']).toBe('planned');
    expect(tracked['location'].at(-1).location.display).toBe('5W, room 501, bed A, GHH');
    // Only the move (A10) changed the visit: the events repeating it made no versions.
    expect(tracked['meta'].versionId).toBe('2');
    expect(msaOf(await send(adt('A27', '5W^501^A^GHH'))).code).toBe('AA');
    expect((await encounter())['status']).toBe('cancelled');
    // Neither a pending-admission cancellation nor a tracking event makes a visit never seen.
    const unknown = await send(adt('A27', '5W^501^A^GHH', `other-${visit}`));
    expect(msaOf(unknown).code).toBe('AE');
    expect(unknown).toContain('A cancelled pending admission needs the visit number');
    expect(msaOf(await send(adt('A10', '5W^501^A^GHH', `other-${visit}`))).code).toBe('AA');
    const others = await http(
      'GET',
      `${testApp.url}/fhir/Encounter?identifier=${encodeURIComponent(`urn:oid:2.16.9|other-${visit}`)}`,
    );
    expect(others.body.entry ?? []).toHaveLength(0);
  });

  it('follows a leave of absence (A21, A22, A52, A53) and a cancelled pre-admission (A38)', async () => {
    const sender = await client();
    const visit = `L-${randomUUID().slice(0, 8)}`;
    const adt = (event: string, control: string, visitNumber = visit) =>
      Buffer.from(
        `MSH|^~\\&|ADT|HOSP|CV|CV|20240101||ADT^${event}|${control}-${visitNumber}|P|2.5\r` +
          `PID|1||${visit}-P^^^HOSP&2.16.9&ISO^MR||Leave^Jo\r` +
          `PV1|1|I|4E^136^B^GHH||||||||||||||||${visitNumber}^^^HOSP&2.16.9&ISO^VN`,
      );
    const http = await doctorHttp();
    let acked = 0;
    const statusAfter = async (event: string, control: string, visitNumber = visit) => {
      await sender.send([adt(event, control, visitNumber)]);
      acked += 1;
      expect([event, msaOf((await sender.waitForAcks(acked)).at(-1)!).code]).toEqual([event, 'AA']);
      return (await visitEncounter(http, visitNumber))['status'] as string;
    };
    expect(await statusAfter('A01', 'L1')).toBe('in-progress');
    expect(await statusAfter('A21', 'L2')).toBe('onleave');
    expect(await statusAfter('A33', 'L3')).toBe('onleave'); // tracking cancelled: no status
    expect(await statusAfter('A52', 'L4')).toBe('in-progress'); // the leave cancelled
    expect(await statusAfter('A21', 'L5')).toBe('onleave');
    expect(await statusAfter('A22', 'L6')).toBe('in-progress');
    expect(await statusAfter('A53', 'L7')).toBe('onleave'); // the return cancelled
    expect(await statusAfter('A05', 'L8', `pre-${visit}`)).toBe('planned');
    expect(await statusAfter('A38', 'L9', `pre-${visit}`)).toBe('cancelled');
  });

  it('keeps newer data when an older ADT message (EVN-2, else MSH-7) arrives late', async () => {
    const visit = `O-${randomUUID().slice(0, 8)}`;
    const adt = (event: string, hour: string, name: string, location: string, end = '') =>
      Buffer.from(
        `MSH|^~\\&|ADT|HOSP|CV|CV|20250301${hour}00+0000||ADT^${event}|${event}${hour}-${visit}|P|2.5\r` +
          `EVN|${event}|20250301${hour}00+0000\r` +
          `PID|1||${visit}-P^^^HOSP&2.16.9&ISO^MR||${name}^Ann\r` +
          `PV1|1|I|${location}||||||||||||||||${visit}^^^HOSP&2.16.9&ISO^VN` +
          (end ? `||||||||||||||||||||||||||20250301${end}00+0000` : ''),
      );
    const steps = [
      adt('A01', '10', 'First', '4E^101^A^GHH'),
      adt('A08', '12', 'Second', '5W^202^B^GHH'),
      // Older than the A08 before it (a queue replayed out of order): nothing of it is taken.
      adt('A08', '11', 'Stale', '4E^102^A^GHH'),
      adt('A08', '14', 'Newest', '6N^303^C^GHH'),
      // The discharge at 13:00 is taken, though later news of the visit's details came first.
      adt('A03', '13', 'Third', '5W^202^B^GHH', '13'),
      // The admission sent again after the discharge does not reopen the visit.
      Buffer.from(adt('A01', '10', 'First', '4E^101^A^GHH').toString().replace('A0110-', 'R0110-')),
      // A lab whose clock runs ahead: its result at 16:00 does not make the admission system's
      // A08 of 15:00 look older. Each feed's messages are ordered by its own clock.
      Buffer.from(
        `MSH|^~\\&|LAB|LABFAC|CV|CV|202503011600+0000||ORU^R01|LAB16-${visit}|P|2.5\r` +
          `PID|1||${visit}-P^^^HOSP&2.16.9&ISO^MR||Lab^Ann\r` +
          `OBR|1||F-${visit}|2345-7^Glucose^LN|||202503011550+0000\r` +
          `OBX|1|NM|2345-7^Glucose^LN||95|mg/dL|||||F`,
      ),
      adt('A08', '15', 'Renamed', '6N^303^C^GHH'),
    ];
    const sender = await client();
    await sender.send(steps);
    const acks = await sender.waitForAcks(steps.length);
    expect(acks.map((ack) => msaOf(ack).code)).toEqual(steps.map(() => 'AA'));
    // Taken, yet its sender is told what it did not change (types only, never values).
    const errs = (ack: string) => ack.split('\r').filter((segment) => segment.startsWith('ERR'));
    expect(errs(acks[2]!)).toEqual([
      'ERR|||0^Message accepted^HL70357|W||||Older than a message already applied to its Patient, Encounter (by EVN-2, OBR-22 or MSH-7): what the newer message set there was kept; the rest was taken',
    ]);
    expect(errs(acks[1]!)).toEqual([]);
    const http = await doctorHttp();
    const encounter = await visitEncounter(http, visit);
    expect(encounter['status']).toBe('finished');
    expect(encounter['period']).toEqual({ end: '2025-03-01T13:00:00+00:00' });
    expect(
      (encounter['location'] as { status: string; location: { display: string } }[]).map(
        (entry) => `${entry.location.display}: ${entry.status}`,
      ),
    ).toEqual([
      // Discharged: the last place is no longer where the patient is.
      '4E, room 101, bed A, GHH: completed',
      '5W, room 202, bed B, GHH: completed',
      '6N, room 303, bed C, GHH: completed',
    ]);
    const patient = await http(
      'GET',
      `${testApp.url}/fhir/${String(encounter['subject'].reference)}`,
    );
    expect(patient.body.name).toEqual([expect.objectContaining({ family: 'Renamed' })]);
  });

  it('does not let one message dated years ahead (a mistyped MSH-7) freeze a patient', async () => {
    const tag = `Y-${randomUUID().slice(0, 8)}`;
    const a08 = (time: string, name: string) =>
      Buffer.from(
        `MSH|^~\\&|ADT|HOSP|CV|CV|${time}||ADT^A08|${time}-${tag}|P|2.5\r` +
          `PID|1||${tag}^^^HOSP&2.16.9&ISO^MR||${name}^Ann`,
      );
    const steps = [a08('205203011200+0000', 'Mistyped'), a08('202503011200+0000', 'Corrected')];
    const sender = await client();
    await sender.send(steps);
    const acks = await sender.waitForAcks(steps.length);
    expect(acks.map((ack) => msaOf(ack).code)).toEqual(['AA', 'AA']);
    expect(kept(acks[1]!)).toBeUndefined();
    const http = await doctorHttp();
    const found = await http(
      'GET',
      `${testApp.url}/fhir/Patient?identifier=${encodeURIComponent(`urn:oid:2.16.9|${tag}`)}`,
    );
    expect(found.body.entry[0].resource.name[0].family).toBe('Corrected');
  });

  it("keeps a patient's allergies, diagnoses, kin, coverage and problems as the newest message left them", async () => {
    const tag = `L-${randomUUID().slice(0, 8)}`;
    const message = (type: string, hour: string, ...segments: string[]) =>
      Buffer.from(
        [
          `MSH|^~\\&|ADT|HOSP|CV|CV|20250301${hour}00+0000||${type}|${hour}-${tag}|P|2.5`,
          `PID|1||${tag}^^^HOSP&2.16.9&ISO^MR||Late^Ann`,
          ...segments,
        ].join('\r'),
      );
    const adt = (hour: string, severity: string, diagnosis: string, phone: string, plan: string) =>
      message(
        'ADT^A08',
        hour,
        `AL1|1|DA|P^PENICILLIN|${severity}|HIVES`,
        `DG1|1||I10^Hypertension^I10||20250301|${diagnosis}`,
        `NK1|1|Late^Bob|SPO^SPOUSE||${phone}`,
        `IN1|1|${plan}^Plan ${plan}|ACME|Acme Health||||||||||||||||||||||||||||||||POL-${tag}`,
      );
    const problem = (hour: string, status: string) =>
      message(
        'PPR^PC2',
        hour,
        `PRB|UP|20250301|E11.9^Type 2 diabetes^I10|P-${tag}^EHR^2.16.9^ISO||||||||||${status}`,
      );
    const steps = [
      adt('12', 'SV', 'F', '555-0102', 'GOLD'),
      problem('12', 'RESOLVED'),
      // Replayed out of order: older than what was applied, so nothing of them is taken.
      adt('11', 'MI', 'W', '555-0101', 'SILVER'),
      problem('11', 'ACTIVE'),
    ];
    const sender = await client();
    await sender.send(steps);
    const acks = await sender.waitForAcks(steps.length);
    expect(acks.map((ack) => msaOf(ack).code)).toEqual(steps.map(() => 'AA'));
    expect(acks.map(kept)).toEqual([
      undefined,
      undefined,
      'Patient, AllergyIntolerance, Condition, RelatedPerson, Coverage',
      // A PPR's PID sets no details of a known patient (only ADT does), whatever its time.
      'Condition',
    ]);
    // A resend of it is answered from what was stored, warning and all.
    await sender.send([steps[2]!]);
    const [again] = (await sender.waitForAcks(steps.length + 1)).slice(-1);
    expect(kept(again!)).toBe(kept(acks[2]!));
    expect(again).toContain('ERR|||0^Message accepted^HL70357|W|');
    const http = await doctorHttp();
    const patients = await http(
      'GET',
      `${testApp.url}/fhir/Patient?identifier=${encodeURIComponent(`urn:oid:2.16.9|${tag}`)}`,
    );
    const patient = `Patient/${String(patients.body.entry[0].resource.id)}`;
    const only = async (query: string) => {
      const found = await http('GET', `${testApp.url}/fhir/${query}`);
      expect(found.body.entry).toHaveLength(1);
      return found.body.entry[0].resource;
    };
    const allergy = await only(`AllergyIntolerance?patient=${patient}`);
    expect(allergy.criticality).toBe('high');
    expect(allergy.reaction[0].severity).toBe('severe');
    const conditions = await http('GET', `${testApp.url}/fhir/Condition?subject=${patient}`);
    const byCode = (code: string) =>
      conditions.body.entry.find((e: any) => e.resource.code.coding[0].code === code).resource;
    expect(byCode('I10').verificationStatus.coding[0].code).toBe('confirmed');
    expect(byCode('E11.9').clinicalStatus.coding[0].code).toBe('resolved');
    const kin = await only(`RelatedPerson?patient=${patient}`);
    expect(kin.telecom).toEqual([expect.objectContaining({ value: '555-0102' })]);
    const coverage = await only(`Coverage?beneficiary=${patient}`);
    expect(coverage.class[0].value).toBe('GOLD');
    // Each was written once: the older message made no version.
    for (const resource of [allergy, byCode('I10'), byCode('E11.9'), kin, coverage]) {
      expect(`${resource.resourceType} ${resource.meta.versionId}`).toBe(
        `${resource.resourceType} 1`,
      );
    }
  });

  it('keeps cancelled orders, appointments and documents, stopped prescriptions and deleted doses when older messages are replayed', async () => {
    const tag = `Q-${randomUUID().slice(0, 8)}`;
    const message = (type: string, hour: string, ...segments: string[]) =>
      Buffer.from(
        [
          `MSH|^~\\&|EHR|HOSP|CV|CV|20250301${hour}00+0000||${type}|${type}-${hour}-${tag}|P|2.5`,
          `PID|1||${tag}^^^HOSP&2.16.9&ISO^MR||Queue^Ann`,
          ...segments,
        ].join('\r'),
      );
    const order = (hour: string, control: string) =>
      message(
        'ORM^O01',
        hour,
        `ORC|${control}|O-${tag}^HOSP^2.16.9^ISO`,
        'OBR|1|||24725-4^CT Head^LN',
      );
    const prescription = (hour: string, control: string) =>
      message(
        'RDE^O11',
        hour,
        `ORC|${control}|RX-${tag}^HOSP^2.16.9^ISO`,
        'RXE||0143963401^NICARDIPINE 40 MG/200 ML^NDC|5||43^mg/h',
      );
    const dose = (hour: string, action: string) =>
      message(
        'VXU^V04',
        hour,
        `ORC|RE|IZ-${tag}^HOSP^2.16.9^ISO`,
        `RXA|0|1|20250301||08^HepB^CVX|0.5|mL^^UCUM${'|'.repeat(14)}${action}`,
      );
    const referral = (hour: string, event: string) =>
      message(
        `REF^${event}`,
        hour,
        `RF1|P^Pending^HL70283|R|Med^Medical^HL70281||O|REF-${tag}^EHR^2.16.9^ISO`,
      );
    const appointment = (hour: string, event: string) =>
      Buffer.from(
        message('SIU^' + event, hour)
          .toString()
          .replace(
            '\rPID',
            `\rSCH|P-${tag}|APT-${tag}^SCHED^2.16.9^ISO|||||FOLLOWUP|NORMAL|30|min\r` +
              'TQ1|||||||202503201000+0000\rPID',
          ),
      );
    const document = (hour: string, event: string, text: string) =>
      message(
        `MDM^${event}`,
        hour,
        `TXA|1|DS|TX|202503011000+0000||||||||DOC-${tag}^HOSP^2.16.9^ISO|||||AU`,
        `OBX|1|TX|18842-5^Discharge summary^LN||${text}||||||F`,
      );
    const charge = (hour: string, units: string) =>
      message(
        'DFT^P03',
        hour,
        `FT1|1|T-${tag}||20250301|20250301|CG|71045^Xray exam chest 1 view^C4|||${units}`,
      );
    const steps = [
      order('10', 'NW'),
      order('12', 'CA'),
      order('11', 'NW'),
      prescription('10', 'NW'),
      prescription('12', 'DC'),
      prescription('11', 'NW'),
      dose('10', 'A'),
      dose('12', 'D'),
      dose('11', 'A'),
      referral('10', 'I12'),
      referral('12', 'I14'),
      referral('11', 'I13'),
      appointment('10', 'S12'),
      appointment('12', 'S15'),
      appointment('11', 'S12'),
      document('10', 'T02', 'First draft.'),
      document('12', 'T08', 'Final text.'),
      document('11', 'T08', 'Second draft.'),
      charge('12', '2'),
      charge('11', '1'),
    ];
    const sender = await client();
    await sender.send(steps);
    const acks = await sender.waitForAcks(steps.length);
    expect(acks.map((ack) => msaOf(ack).code)).toEqual(steps.map(() => 'AA'));
    // Not their Patient: only ADT sets a known patient's details, so no older PID is kept out.
    expect([2, 5, 8, 11, 14, 17, 19].map((i) => kept(acks[i]!))).toEqual([
      'ServiceRequest',
      'MedicationRequest',
      'Immunization',
      'ServiceRequest',
      'Appointment',
      'DocumentReference',
      'ChargeItem',
    ]);
    const http = await doctorHttp();
    const status = async (type: string, system: string, value: string) => {
      const found = await http(
        'GET',
        `${testApp.url}/fhir/${type}?identifier=${encodeURIComponent(`${system}|${value}`)}`,
      );
      expect(found.body.entry).toHaveLength(1);
      return found.body.entry[0].resource.status;
    };
    expect(await status('ServiceRequest', 'urn:oid:2.16.9', `O-${tag}`)).toBe('revoked');
    expect(await status('MedicationRequest', 'urn:oid:2.16.9', `RX-${tag}`)).toBe('stopped');
    expect(await status('Immunization', 'urn:oid:2.16.9', `IZ-${tag}`)).toBe('entered-in-error');
    expect(await status('ServiceRequest', 'urn:oid:2.16.9', `REF-${tag}`)).toBe('revoked');
    expect(await status('Appointment', 'urn:oid:2.16.9', `APT-${tag}`)).toBe('cancelled');
    const documents = await http(
      'GET',
      `${testApp.url}/fhir/DocumentReference?identifier=${encodeURIComponent(`urn:oid:2.16.9|DOC-${tag}`)}`,
    );
    const [content] = documents.body.entry[0].resource.content;
    expect(Buffer.from(content.attachment.data, 'base64').toString()).toBe('Final text.');
    const charges = await http(
      'GET',
      `${testApp.url}/fhir/ChargeItem?patient:Patient.identifier=${encodeURIComponent(`urn:oid:2.16.9|${tag}`)}`,
    );
    expect(charges.body.entry).toHaveLength(1);
    expect(charges.body.entry[0].resource.quantity.value).toBe(2);
  });

  it('follows a visit through transfer, discharge and their cancellations (A02, A03, A11-A13)', async () => {
    const sender = await client();
    const visit = `V-${randomUUID().slice(0, 8)}`;
    const adt = (event: string, control: string, location: string, times = '') =>
      Buffer.from(
        `MSH|^~\\&|ADT|HOSP|CV|CV|20240101||ADT^${event}|${control}-${visit}|P|2.5\r` +
          `PID|1||${visit}-P^^^HOSP&2.16.9&ISO^MR||Doe^Jo\r` +
          `NK1|1|NUCLEAR^NELDA^W|SPO^SPOUSE\r` +
          `PV1|1|I|${location}||||||||||||||||${visit}^^^HOSP&2.16.9&ISO^VN${times}`,
      );
    const discharged = '|||||||||||||||||||||||||202401051000+0000';
    const steps: [Buffer, string][] = [
      [adt('A01', 'ADM', '4E^136^B^GHH'), 'AA'],
      [adt('A02', 'TRF', 'ICU^2^1^GHH'), 'AA'],
      [adt('A03', 'DIS', 'ICU^2^1^GHH', discharged), 'AA'],
      [adt('A13', 'CDS', 'ICU^2^1^GHH'), 'AA'],
      [adt('A12', 'CTR', '4E^136^B^GHH'), 'AA'],
    ];
    await sender.send(steps.map(([message]) => message));
    const acks = await sender.waitForAcks(steps.length);
    expect(acks.map((ack) => msaOf(ack).code)).toEqual(steps.map(([, code]) => code));
    const http = await doctorHttp();
    const encounter = () => visitEncounter(http, visit);
    const reopened = await encounter();
    // The discharge was cancelled: open again, no end; the transfer too: back in 4E, with the
    // ICU stay kept as where the patient was.
    expect(reopened['status']).toBe('in-progress');
    expect(reopened['period']?.end).toBeUndefined();
    const place = (display: string) => ({
      reference: expect.stringMatching(/^Location\//),
      display,
    });
    expect(reopened['location']).toEqual([
      { location: place('ICU, room 2, bed 1, GHH'), status: 'completed' },
      { location: place('4E, room 136, bed B, GHH'), status: 'active' },
    ]);
    // Each place is a Location of that name, so a search by ward finds who was there.
    const inIcu = await http(
      'GET',
      `${testApp.url}/fhir/Encounter?location.name=ICU&identifier=${encodeURIComponent(`urn:oid:2.16.9|${visit}`)}`,
    );
    expect(inIcu.body.entry).toHaveLength(1);
    const icu = await http(
      'GET',
      `${testApp.url}/fhir/${String(reopened['location'][0].location.reference)}`,
    );
    expect(icu.body).toMatchObject({ resourceType: 'Location', name: 'ICU, room 2, bed 1, GHH' });
    // The bed is part of its room, ward and site (v2-to-FHIR PL[Location]), each typed.
    const chain: [string, string][] = [];
    for (let at: any = icu.body; at;) {
      chain.push([at.name, at.physicalType.coding[0].code]);
      const up: string | undefined = at.partOf?.reference;
      at = up ? (await http('GET', `${testApp.url}/fhir/${up}`)).body : undefined;
    }
    expect(chain).toEqual([
      ['ICU, room 2, bed 1, GHH', 'bd'],
      ['ICU, room 2, GHH', 'ro'],
      ['ICU, GHH', 'wa'],
      ['GHH', 'si'],
    ]);
    const site = await http(
      'GET',
      `${testApp.url}/fhir/Location?identifier=${encodeURIComponent('urn:carevault:v2:location|GHH')}`,
    );
    const wards = await http(
      'GET',
      `${testApp.url}/fhir/Location?partof=Location/${String(site.body.entry[0].resource.id)}&_count=100`,
    );
    expect(wards.body.entry.map((e: any) => e.resource.name)).toEqual(
      expect.arrayContaining(['ICU, GHH', '4E, GHH']),
    );
    // The transfer's audit row names the Location with the Encounter.
    const [transfer] = await data.query<{ entities: string[] }[]>(
      `SELECT a.entities FROM audit_event a JOIN hl7_message m ON a.request_id = m.id::text
        WHERE a.source = 'hl7' AND m.control_id = $1`,
      [`TRF-${visit}`],
    );
    expect(transfer!.entities).toEqual(
      expect.arrayContaining([
        String(reopened['location'][0].location.reference),
        `Encounter/${String(reopened['id'])}`,
      ]),
    );
    // The spouse (NK1 without identifiers) came with every message: found again by name.
    const kin = await http(
      'GET',
      `${testApp.url}/fhir/RelatedPerson?patient=${String(reopened['subject'].reference)}`,
    );
    expect(kin.body.entry).toHaveLength(1);
    expect(kin.body.entry[0].resource.name).toEqual([{ family: 'NUCLEAR', given: ['NELDA', 'W'] }]);
    await sender.send([adt('A11', 'CAD', '4E^136^B^GHH')]);
    // ACKs accumulate on the connection: each new one is the last.
    expect(msaOf((await sender.waitForAcks(steps.length + 1)).at(-1)!).code).toBe('AA');
    expect((await encounter())['status']).toBe('cancelled');
    // An update (A08) moves the visit's details, not its status.
    await sender.send([adt('A08', 'UPD', '5W^501^A^GHH')]);
    expect(msaOf((await sender.waitForAcks(steps.length + 2)).at(-1)!).code).toBe('AA');
    const updated = await encounter();
    expect(updated['status']).toBe('cancelled');
    // The place it names, as where the cancelled visit was (no one is there for it now).
    expect(updated['location'].at(-1)).toEqual({
      location: place('5W, room 501, bed A, GHH'),
      status: 'completed',
    });
    // A cancellation of a visit never seen is an error, not a new Encounter.
    await sender.send([
      Buffer.from(
        `MSH|^~\\&|ADT|HOSP|CV|CV|20240101||ADT^A11|UNK-${visit}|P|2.5\rPID|1||${visit}-P^^^HOSP&2.16.9&ISO^MR||Doe^Jo\rPV1|1|I|||||||||||||||||other-${visit}^^^HOSP&2.16.9&ISO^VN`,
      ),
    ]);
    const unknown = (await sender.waitForAcks(steps.length + 3)).at(-1);
    expect(msaOf(unknown!).code).toBe('AE');
    expect(unknown).toContain('A cancelled admission needs the visit number');
    // An update of a visit never seen makes no Encounter either, but is applied to the patient.
    await sender.send([
      Buffer.from(
        `MSH|^~\\&|ADT|HOSP|CV|CV|20240101||ADT^A08|U08-${visit}|P|2.5\rPID|1||${visit}-P^^^HOSP&2.16.9&ISO^MR||Doe^Jo\rPV1|1|I|||||||||||||||||other-${visit}^^^HOSP&2.16.9&ISO^VN`,
      ),
    ]);
    expect(msaOf((await sender.waitForAcks(steps.length + 4)).at(-1)!).code).toBe('AA');
    const other = await http(
      'GET',
      `${testApp.url}/fhir/Encounter?identifier=${encodeURIComponent(`urn:oid:2.16.9|other-${visit}`)}`,
    );
    expect(other.body.entry ?? []).toEqual([]);
  });

  it('names the element a mapped resource broke in its AE, never the value', async () => {
    const sender = await client();
    await sender.send([
      Buffer.from(
        [
          'MSH|^~\\&|LAB|HOSP|CV|CV|20240101||ORU^R01|BAD-CODE|P|2.5',
          'PID|1||BC-1^^^HOSP&2.16.17&ISO^MR||Code^Bad',
          'OBR|1||BC-R1^LAB|2345-7^Glucose^LN',
          // A code may not hold two blanks in a row (FHIR's code type).
          'OBX|1|NM|23  45^Glucose^LN||5.5|mmol/L|||||F',
        ].join('\r'),
      ),
    ]);
    const [ack] = await sender.waitForAcks(1);
    expect(msaOf(ack!).code).toBe('AE');
    expect(ack).toContain(
      'could not be stored as FHIR resources (FHIR 400 at Observation.code.coding[0].code)',
    );
    expect(ack).not.toContain('23  45');
  });

  it('names a choice element a mapped resource broke too (value[x] of a text too long)', async () => {
    const sender = await client();
    await sender.send([
      Buffer.from(
        [
          'MSH|^~\\&|LAB|HOSP|CV|CV|20240101||ORU^R01|LONG-TEXT|P|2.5',
          'PID|1||LT-1^^^HOSP&2.16.17&ISO^MR||Text^Long',
          'OBR|1||LT-R1^LAB|11526-1^Pathology^LN',
          // FHIR strings hold at most 1 MB.
          `OBX|1|TX|11526-1^Pathology^LN||${'x'.repeat(1_100_000)}||||||F`,
        ].join('\r'),
      ),
    ]);
    const [ack] = await sender.waitForAcks(1);
    expect(msaOf(ack!).code).toBe('AE');
    expect(ack).toContain(
      'could not be stored as FHIR resources (FHIR 400 at Observation.value[x])',
    );
  });

  it('knows a visit sent without a number again by its patient, class and admit time', async () => {
    const pv1 = (fields: Record<number, string>) =>
      ['PV1', ...Array.from({ length: 45 }, (_, i) => fields[i + 1] ?? '')].join('|');
    const adt = (event: string, control: string, fields: Record<number, string>) =>
      Buffer.from(
        [
          `MSH|^~\\&|REG|CLINIC|CV|CV|20240101||ADT^${event}|${control}|P|2.5`,
          'PID|1||UV-1^^^CLINIC&2.16.18&ISO^MR||Visit^Unnumbered',
          pv1({ 1: '1', 2: 'O', ...fields }),
        ].join('\r'),
      );
    const sender = await client();
    await sender.send([
      // Registered, the same registration again, then discharged: one visit.
      adt('A04', 'UV-1', { 44: '202401101030+0000' }),
      adt('A04', 'UV-2', { 44: '202401101030+0000' }),
      adt('A03', 'UV-3', { 44: '202401101030+0000', 45: '202401101130+0000' }),
      // Another visit that day; and two timed to the day only, which nothing tells apart.
      adt('A04', 'UV-4', { 44: '202401101400+0000' }),
      adt('A04', 'UV-5', { 44: '20240111' }),
      adt('A04', 'UV-6', { 44: '20240111' }),
    ]);
    expect((await sender.waitForAcks(6)).map((ack) => msaOf(ack).code)).toEqual(
      Array(6).fill('AA'),
    );
    const http = await doctorHttp();
    const patientId = await patientIdOf(http, '2.16.18', 'UV-1');
    const visits = await http(
      'GET',
      `${testApp.url}/fhir/Encounter?subject=Patient/${patientId}&_sort=_lastUpdated`,
    );
    expect(
      (visits.body.entry as { resource: Record<string, any> }[]).map(({ resource }) => [
        resource['period'].start,
        resource['status'],
      ]),
    ).toEqual([
      ['2024-01-10T10:30:00+00:00', 'finished'],
      ['2024-01-10T14:00:00+00:00', 'planned'],
      ['2024-01-11', 'planned'],
      ['2024-01-11', 'planned'],
    ]);
  });

  it('answers AE for a discharge of an unknown visit, and keeps the message as error', async () => {
    const sender = await client();
    await sender.send([
      Buffer.from(
        'MSH|^~\\&|ADT|HOSP|CV|CV|20240101||ADT^A03|DIS1|P|2.5\rPID|1||D-1^^^HOSP&2.16.9&ISO^MR||Doe^Jo\rPV1|1|I',
      ),
    ]);
    const [ack] = await sender.waitForAcks(1);
    expect(msaOf(ack!).code).toBe('AE');
    expect(ack).toContain('204^Unknown key identifier^HL70357');
    const [row] = await data.query<{ status: string }[]>(
      `SELECT status FROM hl7_message WHERE control_id = 'DIS1'`,
    );
    expect(row!.status).toBe('error');
    // Rolled back with it: the Patient of the failed message was not kept.
    const http = await doctorHttp();
    const found = await http(
      'GET',
      `${testApp.url}/fhir/Patient?identifier=${encodeURIComponent('urn:oid:2.16.9|D-1')}`,
    );
    expect(found.body.entry ?? []).toHaveLength(0);
  });

  it('lists failed messages and reprocesses them (HTTP and CLI) once the cause is fixed', async () => {
    const sender = await client();
    const a03 =
      'MSH|^~\\&|ADT|HOSP|CV|CV|20240101||ADT^A03|DIS2|P|2.5\rPID|1||D-2^^^HOSP&2.16.9&ISO^MR||Doe^Al\rPV1|1|I|||||||||||||||||V-DIS2^^^HOSP&2.16.9&ISO^VN';
    await sender.send([Buffer.from(a03)]);
    expect(msaOf((await sender.waitForAcks(1))[0]!).code).toBe('AE');

    const integration = await tokenFor(testApp, 'integration');
    const get = (url: string, token = integration) =>
      fetch(`${testApp.url}${url}`, { headers: { authorization: `Bearer ${token}` } });
    expect(
      (await get('/hl7/messages?status=error', await tokenFor(testApp, 'doctor'))).status,
    ).toBe(403);
    const listed = (await (await get('/hl7/messages?status=error')).json()) as Record<
      string,
      unknown
    >[];
    const failed = listed.find((message) => message['controlId'] === 'DIS2')!;
    expect(failed).toMatchObject({ messageType: 'ADT^A03', status: 'error', errorCode: '204' });
    expect(failed).not.toHaveProperty('raw');

    // The admission arrives late; then the discharge goes through.
    const a01 = a03.replace('ADT^A03|DIS2', 'ADT^A01|ADM2');
    await sender.send([Buffer.from(a01)]);
    expect(msaOf((await sender.waitForAcks(2))[1]!).code).toBe('AA');
    const reprocess = () =>
      fetch(`${testApp.url}/hl7/messages/${String(failed['id'])}/reprocess`, {
        method: 'POST',
        headers: { authorization: `Bearer ${integration}` },
      });
    const done = await reprocess();
    expect(await done.json()).toMatchObject({ status: 'processed', ackCode: 'AA' });
    expect((await reprocess()).status).toBe(409);

    // The CLI reprocesses what is still in error (DIS1 has no admission: it fails again),
    // narrowed to a type and a sender when asked.
    const cliEnv = childEnv({
      DATABASE_URL: process.env['DATABASE_URL']!,
      PHI_MASTER_KEY: process.env['PHI_MASTER_KEY']!,
      LOG_LEVEL: 'silent',
    });
    const narrowed = await runNode(
      BUILT.cli,
      ['hl7:reprocess', '--status', 'error', '--type', 'adt^a03', '--sender', 'ADT'],
      cliEnv,
    );
    const lines = narrowed.stdout.split('\n').filter((line) => /^[0-9a-f-]{36} /.test(line));
    expect(lines.length).toBeGreaterThan(0);
    expect(lines.every((line) => line.split(' ')[1] === 'ADT^A03')).toBe(true);
    expect(
      (await runNode(BUILT.cli, ['hl7:reprocess', '--type', 'ADT^A03^ADT_A03'], cliEnv)).code,
    ).not.toBe(0);
    const cli = await runNode(BUILT.cli, ['hl7:reprocess', '--status', 'error'], cliEnv);
    expect(cli.stdout).toMatch(/ADT\^A03 AE error: A discharge needs the visit number/);
    expect(cli.stdout).toContain('processed');
    expect(cli.code).toBe(1);
  });

  it('sets a failed message aside as dismissed once its sender has corrected it', async () => {
    const tag = randomUUID().slice(0, 8);
    const a03 = `MSH|^~\\&|ADT|HOSP|CV|CV|20240101||ADT^A03|DSM-${tag}|P|2.5\rPID|1||DSM-${tag}^^^HOSP&2.16.9&ISO^MR||Doe^Al\rPV1|1|I|||||||||||||||||V-${tag}^^^HOSP&2.16.9&ISO^VN`;
    const sender = await client();
    expect(msaOf((await sender.exchange([a03]))[0]!).code).toBe('AE');
    const admin = await tokenFor(testApp, 'admin');
    const call = async (method: string, url: string, token = admin) => {
      const response = await fetch(`${testApp.url}${url}`, {
        method,
        headers: { authorization: `Bearer ${token}` },
      });
      return { status: response.status, body: (await response.json()) as any };
    };
    const [failed] = (await call('GET', `/hl7/messages?controlId=DSM-${tag}`)).body;
    expect(failed).toMatchObject({ status: 'error' });
    const dismiss = `/hl7/messages/${String(failed.id)}/dismiss`;
    for (const role of ['doctor', 'integration'] as const) {
      expect((await call('POST', dismiss, await tokenFor(testApp, role))).status).toBe(403);
    }
    const dismissed = await call('POST', dismiss);
    expect(dismissed).toMatchObject({ status: 200, body: { status: 'dismissed', ackCode: 'AE' } });
    expect((await call('POST', dismiss)).status).toBe(409);
    const errors = (await call('GET', `/hl7/messages?status=error&controlId=DSM-${tag}`)).body;
    expect(errors).toEqual([]);
    const aside = (await call('GET', `/hl7/messages?status=dismissed&controlId=DSM-${tag}`)).body;
    expect(aside.map((message: { id: string }) => message.id)).toEqual([failed.id]);
    // Sent again all the same, it is processed again, as an error's resend is: the sender
    // wants it taken.
    expect(msaOf((await sender.exchange([a03]))[0]!).code).toBe('AE');
    expect((await call('GET', `/hl7/messages?controlId=DSM-${tag}`)).body).toMatchObject([
      { status: 'error' },
    ]);
  });

  it('finds stored messages by type, control id, sender, time and warning, a page at a time', async () => {
    const app = `FIND${randomUUID().slice(0, 8)}`;
    const adt = (event: string, hour: string, control: string) =>
      Buffer.from(
        `MSH|^~\\&|${app}|HOSP|CV|CV|20250301${hour}00+0000||ADT^${event}|${control}-${app}|P|2.5\r` +
          `PID|1||${app}^^^HOSP&2.16.9&ISO^MR||Find^Ann`,
      );
    const sender = await client();
    // One at a time, so that they are received in this order.
    for (const [i, message] of [
      adt('A04', '10', 'C1'),
      adt('A08', '12', 'C2'),
      adt('A08', '11', 'C3'), // older than C2: accepted with a warning
      adt('A28', '13', 'C4'),
    ].entries()) {
      await sender.send([message]);
      expect(msaOf((await sender.waitForAcks(i + 1))[i]!).code).toBe('AA');
    }
    const integration = await tokenFor(testApp, 'integration');
    const list = async (query: string) => {
      const response = await fetch(`${testApp.url}/hl7/messages?${query}`, {
        headers: { authorization: `Bearer ${integration}` },
      });
      const body = (await response.json()) as Record<string, any>;
      return { status: response.status, body, link: response.headers.get('link') };
    };
    const controls = async (query: string) =>
      ((await list(`status=processed&sender=${app}&${query}`)).body as Record<string, any>[]).map(
        (message) => String(message['controlId']).split('-')[0],
      );
    expect(await controls('')).toEqual(['C1', 'C2', 'C3', 'C4']);
    expect(await controls('type=ADT^A08')).toEqual(['C2', 'C3']);
    expect(await controls('type=adt')).toEqual(['C1', 'C2', 'C3', 'C4']);
    expect(await controls(`controlId=C3-${app}`)).toEqual(['C3']);
    // A control id finds the message whatever became of it, without a status.
    const byControlId = await list(`controlId=C3-${app}`);
    expect(byControlId.status).toBe(200);
    expect(byControlId.body).toMatchObject([{ controlId: `C3-${app}`, status: 'processed' }]);
    expect((await list(`sender=${app}`)).status).toBe(400);
    expect(await controls('warned=true')).toEqual(['C3']);
    const all = (await list(`status=processed&sender=${app}`)).body as Record<string, any>[];
    expect(all[2]).toMatchObject({ ackCode: 'AA', errorCode: '0' });
    const at = (i: number) => encodeURIComponent(String(all[i]!['receivedAt']));
    expect(await controls(`since=${at(2)}`)).toEqual(['C3', 'C4']);
    expect(await controls(`before=${at(1)}`)).toEqual(['C1']);

    // A page of three, and the Link to the next, which holds the last one.
    const first = await list(`status=processed&sender=${app}&_count=3`);
    expect(first.body).toHaveLength(3);
    const next = /^<([^>]+)>; rel="next"$/.exec(first.link ?? '')?.[1];
    expect(next).toContain(`_after=${String(first.body[2].id)}`);
    const second = await list(next!.slice(next!.indexOf('?') + 1));
    expect(second.body.map((message: any) => message.controlId)).toEqual([`C4-${app}`]);
    expect(second.link).toBeNull();

    // Refused rather than ignored.
    expect((await list('status=processed&sendr=X')).status).toBe(400);
    expect((await list(`status=processed&_after=${randomUUID()}`)).status).toBe(400);
    expect((await list('status=processed&since=yesterday')).status).toBe(400);
    expect((await list('status=processed&type=ADT^A08^ADT_A01')).status).toBe(400);
  });

  it('sends a file of messages with the hl7:send CLI, printing each ACK', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'carevault-hl7-send-'));
    const file = join(dir, 'feed.hl7');
    const message = (id: string, type = 'ADT^A28') =>
      `MSH|^~\\&|CLI|HOSP|CV|CV|20240101||${type}|${id}|P|2.5\rPID|1||${id}^^^HOSP&2.16.4&ISO^MR||Cli^Sent\r`;
    await writeFile(
      file,
      [message('CLI-1'), message('CLI-2', 'QRY^A19'), message('CLI-3')].join('\n'),
    );
    try {
      const cli = await runNode(
        BUILT.cli,
        ['hl7:send', file, '--host', '127.0.0.1', '--port', String(port)],
        childEnv({
          DATABASE_URL: process.env['DATABASE_URL']!,
          PHI_MASTER_KEY: process.env['PHI_MASTER_KEY']!,
          LOG_LEVEL: 'silent',
        }),
      );
      expect(cli.stdout.split('\n').slice(0, 4)).toEqual([
        '1 AA CLI-1',
        '2 AR CLI-2 200 Unsupported message type',
        '3 AA CLI-3',
        `Sent 3 message(s) to 127.0.0.1:${port}: 2 accepted (AA)`,
      ]);
      expect(cli.code).toBe(1);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('takes a batch (FHS/BHS) in one frame and answers a batch of ACKs in order', async () => {
    const message = (id: string) =>
      `MSH|^~\\&|BATCH|HOSP|CV|CV|20240101||ADT^A28|${id}|P|2.5\rPID|1||${id}^^^HOSP&2.16.3&ISO^MR||Batch^Pat`;
    const sender = await client();
    await sender.send([
      Buffer.from(
        [
          'FHS|^~\\&|BATCH|HOSP|CV|CV|20240101||||FILE-1',
          'BHS|^~\\&|BATCH|HOSP|CV|CV|20240101||||BATCH-1',
          message('BAT-1'),
          message('BAT-2'),
          message('BAT-3'),
          'BTS|3',
          'FTS|1',
        ].join('\r'),
      ),
    ]);
    const [reply] = await sender.waitForAcks(1);
    const segments = reply!.split('\r');
    // A file's batch, answered as one: each header answers the sender's (its control id in
    // -12), as an ACK's MSH answers a message's.
    expect(segments[0]).toMatch(
      /^FHS\|\^~\\&\|CV\|CV\|BATCH\|HOSP\|\d{14}[-+]\d{4}\|\|\|\|CV[0-9a-f]{18}\|FILE-1$/,
    );
    expect(segments[1]).toMatch(/^BHS\|\^~\\&\|CV\|CV\|BATCH\|HOSP\|.*\|BATCH-1$/);
    expect(segments.at(-2)).toBe('FTS|1');
    expect(segments.filter((segment) => segment.startsWith('MSA'))).toEqual([
      'MSA|AA|BAT-1|',
      'MSA|AA|BAT-2|',
      'MSA|AA|BAT-3|',
    ]);
    expect(segments).toContain('BTS|3');
    const [row] = await data.query<{ n: number }[]>(
      `SELECT count(*)::int AS n FROM hl7_message WHERE control_id LIKE 'BAT-%' AND status = 'processed'`,
    );
    expect(row!.n).toBe(3);
  });

  it('processes the same message once when it arrives on two connections at the same time', async () => {
    // No visit number: processed twice, this admission would make two Encounters.
    const admission = Buffer.from(
      'MSH|^~\\&|ADT|HOSP|CV|CV|20240101||ADT^A04|TWICE-1|P|2.5\rPID|1||TW-1^^^HOSP&2.16.2&ISO^MR||Twice^Pat\rPV1|1|O',
    );
    const [first, second] = await Promise.all([client(), client()]);
    await Promise.all([first.send([admission]), second.send([admission])]);
    const acks = await Promise.all([first.waitForAcks(1), second.waitForAcks(1)]);
    expect(acks.map(([ack]) => msaOf(ack!).code)).toEqual(['AA', 'AA']);
    const http = await doctorHttp();
    const patients = await http(
      'GET',
      `${testApp.url}/fhir/Patient?identifier=${encodeURIComponent('urn:oid:2.16.2|TW-1')}`,
    );
    expect(patients.body.entry).toHaveLength(1);
    const encounters = await http(
      'GET',
      `${testApp.url}/fhir/Encounter?subject=Patient/${String(patients.body.entry[0].resource.id)}`,
    );
    expect(encounters.body.entry).toHaveLength(1);
  });

  it('answers a sender that half-closes after its last frame, then ends the connection', async () => {
    // `nc -N`, a batch script: all sent, then FIN, then read the answers. Until 2026-12-06
    // the first ACK was lost and the other messages were never processed.
    const tag = randomUUID().slice(0, 8);
    const messages = [1, 2, 3].map((i) =>
      Buffer.from(
        `MSH|^~\\&|ADT|HOSP|CV|CV|20240101||ADT^A28|HC-${tag}-${i}|P|2.5\rPID|1||HC-${tag}^^^HOSP&2.16.12&ISO^MR||Half^Close`,
      ),
    );
    const sender = await client();
    await sender.send(messages);
    sender.socket.end();
    await sender.waitForClose();
    expect(sender.acks.map((ack) => msaOf(ack))).toEqual(
      [1, 2, 3].map((i) => ({ code: 'AA', controlId: `HC-${tag}-${i}` })),
    );
  });

  it('answers a resend with the same ACK code and stores it once', async () => {
    const sample = samples.find((s) => s.file === 'ADT-A08-01.hl7')!;
    const sender = await client();
    const before = await storedCount();
    // A resend is expected: no failed statement is logged at error level for it.
    const failedQueries = jest.spyOn(PhiSafeTypeOrmLogger.prototype, 'logQueryError');
    try {
      await sender.send([sample.bytes, sample.bytes]);
      const [first, second] = await sender.waitForAcks(2);
      expect(msaOf(second!)).toEqual(msaOf(first!));
      expect(await storedCount()).toBe(before);
      expect(failedQueries).not.toHaveBeenCalled();
    } finally {
      failedQueries.mockRestore();
    }
  });

  it('stores a frame without a readable header once, however often its peer resends it', async () => {
    // No MSH-3, MSH-4 or MSH-10 to key it by: a sender retrying it every few seconds must not
    // grow the table without bound.
    const garbage = Buffer.from(`not HL7 at all ${randomUUID()}`);
    const sender = await client();
    const before = await storedCount();
    await sender.send([garbage, garbage, garbage]);
    const acks = await sender.waitForAcks(3);
    expect(acks.map((ack) => msaOf(ack).code)).toEqual(['AR', 'AR', 'AR']);
    expect(await storedCount()).toBe(before + 1);
  });

  it('refuses a malformed MSH-2 with AR and keeps the message', async () => {
    const sender = await client();
    const before = await storedCount();
    await sender.send([Buffer.from('MSH||A|B|C|D|20240101||ADT^A01|BAD1|P|2.5\rPID|1')]);
    const [ack] = await sender.waitForAcks(1);
    expect(msaOf(ack!).code).toBe('AR');
    expect(ack).toMatch(/\rERR\|/);
    expect(await storedCount()).toBe(before + 1);
  });

  it('refuses an MSH-10 over 199 characters, or an MSH-3 or MSH-4 over 227, with AR, echoing their start', async () => {
    // 199 is MSH-10's length from v2.7 on (20 in v2.5, which senders often exceed). Random
    // text does not compress: whole, it was more than a database index row holds, so the
    // message could not be stored, got no ACK, and its sender resent it forever.
    const long = randomBytes(5_000).toString('hex');
    const sender = await client();
    const before = await storedCount();
    await sender.send([
      Buffer.from(
        `MSH|^~\\&|LAB|HOSP|CV|CV|20240101||ADT^A28|${long}|P|2.5\rPID|1||L-1^^^HOSP&2.16.13&ISO^MR`,
      ),
    ]);
    const [ack] = await sender.waitForAcks(1);
    expect(msaOf(ack!)).toMatchObject({ code: 'AR', controlId: long.slice(0, 199) });
    expect(ack).toContain(
      'ERR|||102^Data type error^HL70357|E||||MSH-10 (message control id) is longer than 199 characters',
    );
    expect(await storedCount()).toBe(before + 1);
    const [row] = await data.query<{ control_id: string; status: string }[]>(
      'SELECT control_id, status FROM hl7_message WHERE control_id = $1',
      [long.slice(0, 199)],
    );
    expect(row).toEqual({ control_id: long.slice(0, 199), status: 'rejected' });
    // So is a sending application or facility (MSH-3, MSH-4: HD, 227 characters in v2.5).
    await sender.send([
      Buffer.from(`MSH|^~\\&|${long}|HOSP|CV|CV|20240101||ADT^A28|LONG-3|P|2.5\rPID|1`),
      Buffer.from(`MSH|^~\\&|LAB|${long}|CV|CV|20240101||ADT^A28|LONG-4|P|2.5\rPID|1`),
    ]);
    const [app, facility] = (await sender.waitForAcks(3)).slice(1);
    expect(msaOf(app!)).toEqual({ code: 'AR', controlId: 'LONG-3' });
    expect(app).toContain('|MSH-3 (sending application) is longer than 227 characters');
    expect(msaOf(facility!)).toEqual({ code: 'AR', controlId: 'LONG-4' });
    expect(facility).toContain('|MSH-4 (sending facility) is longer than 227 characters');
    expect(`${app!}${facility!}`).not.toContain(long.slice(0, 228));
    expect(await storedCount()).toBe(before + 3);
  });

  it('closes a connection that sends an oversized frame, and keeps serving others', async () => {
    const bad = await client();
    const good = await client();
    await bad.write(
      Buffer.concat([Buffer.from([0x0b]), Buffer.alloc(17 * 1024 * 1024, 'x')]),
      1 << 20,
    );
    await bad.waitForClose();
    await good.send([samples[0]!.bytes]);
    expect(await good.waitForAcks(1)).toHaveLength(1);
  });

  it('ignores junk between frames', async () => {
    const sender = await client();
    await sender.write(Buffer.from('\r\nnoise\r\n'));
    await sender.send([samples[1]!.bytes]);
    await sender.write(Buffer.from('more noise'));
    await sender.send([samples[2]!.bytes]);
    const acks = await sender.waitForAcks(2);
    expect(acks.map((ack) => msaOf(ack).controlId)).toEqual(
      [samples[1]!, samples[2]!].map((sample) => decodeMessage(sample.bytes).header.controlId),
    );
  });
});
