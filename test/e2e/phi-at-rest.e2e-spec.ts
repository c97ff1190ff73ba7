import { DataSource, QueryFailedError } from 'typeorm';
import { PhiDecryptionError } from '../../src/crypto/field-cipher.js';
import { phiColumnsOf } from '../../src/crypto/phi.decorator.js';
import { PhiWriteError } from '../../src/crypto/phi.subscriber.js';
import { ResourceEntity } from '../../src/fhir/resource.entity.js';
import { Hl7InboundService } from '../../src/hl7/inbound/hl7-inbound.service.js';
import { buildPatient } from '../support/factories.js';
import { createUser, enableMfa, loginWithMfa, tokenFor } from '../support/auth.js';
import { authorizedHttp, type HttpFn } from '../support/http.js';
import { withEnv } from '../support/env.js';
import { MllpTestPeer } from '../support/mllp.js';
import { createScratchDatabase, type ScratchDatabase } from '../support/scratch-database.js';
import { createTestApp, type TestApp } from '../support/test-app.js';

let http: HttpFn;

const ENVELOPE = /^cv1\.k[0-9a-f]{12}\.[A-Za-z0-9_-]{16}\.[A-Za-z0-9_-]*\.[A-Za-z0-9_-]{22}$/;

describe('PHI at rest', () => {
  let testApp: TestApp;
  let dataSource: DataSource;
  let fhir: string;
  let peer: MllpTestPeer;
  let restoreEnv: () => void;
  let database: ScratchDatabase;
  const known = {
    family: 'Quaternion',
    given: 'Wilhelmina',
    ssn: '987-65-4321',
    line: '742 Evergreen Terrace',
    city: 'Springfieldia',
    phone: '+1 555 867 5309',
    // Identifiers under another search parameter than `identifier`: PHI as an MRN is.
    accession: 'ACC-77-31415',
    requisition: 'REQ-27-18281',
    mrn: 'MRN-31-41592',
    // Free text names whoever its writer named: a lab comment, a list's note.
    comment: 'Sample brought in by Ottoline Quarrington',
    listNote: 'Ask Bartholomew Fennimore before discharge',
    // Text and numbers that are PHI on these types only (a ValueSet's title is not).
    docDescription: 'Letter from Evangeline Thistlewood',
    compositionTitle: 'Discharge of Montgomery Scarborough',
    dependent: 'DEP-55-27182',
    classValue: 'GRP-88-16180',
    disposition: 'Not covered for Gwendolyn Abernathy',
    udiDi: 'UDI-08848-31415',
    udiCarrier: 'HRF-92653-58979',
  };
  const ids: Record<string, string> = {};
  let observationId: string;
  let breakGlass: (patient: string) => ReturnType<HttpFn>;
  let specimenId: string;
  let orderId: string;

  beforeAll(async () => {
    // Patient changes go to an HL7 destination: the outbox holds each message, encrypted.
    peer = await MllpTestPeer.start();
    // A database of its own: the tests below corrupt ciphertexts on purpose, and another
    // suite's search that met those rows would get a 500.
    database = await createScratchDatabase();
    restoreEnv = withEnv({ HL7_OUTBOUND: `127.0.0.1:${peer.port}`, DATABASE_URL: database.url });
    testApp = await createTestApp();
    http = authorizedHttp(await tokenFor(testApp, 'doctor'));
    dataSource = testApp.app.get(DataSource);
    fhir = `${testApp.url}/fhir`;
    const created = await http('POST', `${fhir}/Patient`, { body: buildPatient(known) });
    expect(created.status).toBe(201);
    // A TOTP secret is PHI-grade, and a break-glass reason may name the patient: both encrypted.
    const nurse = await createUser(testApp, ['nurse']);
    const secret = await enableMfa(testApp, nurse);
    const { access_token: nurseToken } = await loginWithMfa(testApp, nurse, secret);
    breakGlass = (patient: string) =>
      authorizedHttp(nurseToken)('POST', `${testApp.url}/auth/break-glass`, {
        body: { patient, reason: `Unresponsive; family says ${known.family}` },
        headers: { 'content-type': 'application/json' },
      });
    expect((await breakGlass(created.body.id)).status).toBe(201);
    const updated = await http('PUT', `${fhir}/Patient/${created.body.id}`, {
      body: { ...created.body, active: false },
    });
    expect(updated.status).toBe(200);
    const subject = { reference: `Patient/${created.body.id}` };
    const specimen = await http('POST', `${fhir}/Specimen`, {
      body: {
        resourceType: 'Specimen',
        subject,
        accessionIdentifier: { system: 'urn:oid:1.2.3.9', value: known.accession },
      },
    });
    expect(specimen.status).toBe(201);
    specimenId = specimen.body.id;
    const order = await http('POST', `${fhir}/ServiceRequest`, {
      body: {
        resourceType: 'ServiceRequest',
        status: 'active',
        intent: 'order',
        subject,
        requisition: { system: 'urn:oid:1.2.3.8', value: known.requisition },
      },
    });
    expect(order.status).toBe(201);
    orderId = order.body.id;
    const observation = await http('POST', `${fhir}/Observation`, {
      body: {
        resourceType: 'Observation',
        status: 'final',
        code: { coding: [{ system: 'http://loinc.org', code: '8251-1' }] },
        subject,
        valueString: known.comment,
      },
    });
    expect(observation.status).toBe(201);
    observationId = observation.body.id;
    const list = await http('POST', `${fhir}/List`, {
      body: {
        resourceType: 'List',
        status: 'current',
        mode: 'working',
        subject,
        note: [{ text: known.listNote }],
      },
    });
    expect(list.status).toBe(201);
    const insurer = await http('POST', `${fhir}/Organization`, {
      body: { resourceType: 'Organization', name: 'Acme Health Plan' },
    });
    expect(insurer.status).toBe(201);
    const payer = { reference: `Organization/${insurer.body.id}` };
    for (const body of [
      {
        resourceType: 'DocumentReference',
        status: 'current',
        subject,
        description: known.docDescription,
        content: [{ attachment: { contentType: 'text/plain', data: 'bm90ZQ==' } }],
      },
      {
        resourceType: 'Composition',
        status: 'final',
        type: { coding: [{ system: 'http://loinc.org', code: '18842-5' }] },
        subject,
        date: '2024-01-01',
        author: [subject],
        title: known.compositionTitle,
      },
      {
        resourceType: 'Coverage',
        status: 'active',
        beneficiary: subject,
        payor: [payer],
        dependent: known.dependent,
        class: [
          {
            type: {
              coding: [
                { system: 'http://terminology.hl7.org/CodeSystem/coverage-class', code: 'group' },
              ],
            },
            value: known.classValue,
          },
        ],
      },
      {
        resourceType: 'ClaimResponse',
        status: 'active',
        type: {
          coding: [
            { system: 'http://terminology.hl7.org/CodeSystem/claim-type', code: 'professional' },
          ],
        },
        use: 'claim',
        patient: subject,
        created: '2024-01-02',
        insurer: payer,
        outcome: 'error',
        disposition: known.disposition,
      },
      {
        resourceType: 'Device',
        patient: subject,
        udiCarrier: [{ deviceIdentifier: known.udiDi, carrierHRF: known.udiCarrier }],
      },
    ]) {
      const stored = await http('POST', `${fhir}/${body.resourceType}`, { body });
      expect({ type: body.resourceType, status: stored.status }).toEqual({
        type: body.resourceType,
        status: 201,
      });
      ids[body.resourceType] = stored.body.id;
    }
    await http(
      'DELETE',
      `${fhir}/Patient/${(await http('POST', `${fhir}/Patient`, { body: buildPatient(known) })).body.id}`,
    );
    // A stored HL7 message is PHI as a whole.
    const pid = ['PID', '1', '', `${known.ssn}^^^SSA&2.16.840.1.113883.4.1&ISO^SS`, ''];
    pid.push(`${known.family}^${known.given}`, '', '', '', '', '', `${known.line}^^${known.city}`);
    pid.push('', known.phone);
    const ack = await testApp.app
      .get(Hl7InboundService)
      .receive(
        Buffer.from(`MSH|^~\\&|LAB|HOSP|CV|CV|20240101||ADT^A28|PHI-1|P|2.5\r${pid.join('|')}`),
        { channel: 'mllp', peer: null },
      );
    expect(ack.toString()).toContain('MSA|AA|PHI-1');
  });

  afterAll(async () => {
    await testApp.close();
    await peer.down();
    restoreEnv();
    await database.drop();
  });

  it('stores every PHI column of every row as an envelope', async () => {
    let checked = 0;
    for (const metadata of dataSource.entityMetadatas) {
      for (const phi of phiColumnsOf(metadata.target)) {
        const column = metadata.findColumnWithPropertyName(phi.property)!.databaseName;
        const rows: { value: string }[] = await dataSource.query(
          `SELECT "${column}" AS value FROM "${metadata.tableName}" WHERE "${column}" IS NOT NULL`,
        );
        expect(rows.length).toBeGreaterThan(0);
        for (const row of rows) {
          expect(row.value).toMatch(ENVELOPE);
        }
        checked += rows.length;
      }
    }
    expect(checked).toBeGreaterThan(2);
  });

  it('has the known plaintext in no text, json or bytea column of any table', async () => {
    const columns: { table_name: string; column_name: string; data_type: string }[] =
      await dataSource.query(
        `SELECT table_name, column_name, data_type FROM information_schema.columns
       WHERE table_schema = 'public' AND data_type IN ('text', 'character varying', 'character', 'json', 'jsonb', 'bytea', 'ARRAY')`,
      );
    expect(columns.length).toBeGreaterThan(5);
    for (const { table_name, column_name, data_type } of columns) {
      const asText =
        data_type === 'bytea' ? `encode("${column_name}", 'escape')` : `"${column_name}"::text`;
      for (const value of Object.values(known)) {
        const [{ count }] = await dataSource.query(
          `SELECT count(*)::int AS count FROM "${table_name}" WHERE ${asText} ILIKE $1`,
          [`%${value}%`],
        );
        expect({ table_name, column_name, value, count }).toEqual({
          table_name,
          column_name,
          value,
          count: 0,
        });
      }
    }
  });

  const found = async (path: string): Promise<string[]> => {
    const response = await http('GET', `${fhir}/${path}`);
    expect({ path, status: response.status }).toEqual({ path, status: 200 });
    return (response.body.entry ?? []).map((entry: any) => entry.resource.id);
  };

  it('finds a specimen by accession number and an order by requisition through their hashes', async () => {
    expect(await found(`Specimen?accession=urn:oid:1.2.3.9|${known.accession}`)).toEqual([
      specimenId,
    ]);
    expect(await found(`Specimen?accession=${known.accession}`)).toEqual([specimenId]);
    expect(await found(`ServiceRequest?requisition=${known.requisition}`)).toEqual([orderId]);
    expect(await found(`Specimen?accession=ACC-77-00000`)).toEqual([]);
  });

  it('finds free text by its start through hashes, on its own and with its code', async () => {
    expect(await found('Observation?value-string=sample%20brought')).toEqual([observationId]);
    expect(await found('Observation?value-string=brought')).toEqual([]);
    const byCode = 'Observation?code-value-string=http://loinc.org|8251-1$SAMPLE';
    expect(await found(byCode)).toEqual([observationId]);
    expect(await found('Observation?code-value-string=8251-1$sample')).toEqual([observationId]);
    expect(await found('Observation?code-value-string=8251-1$specimen')).toEqual([]);
    const contains = await http('GET', `${fhir}/Observation?value-string:contains=ottoline`);
    expect(contains.status).toBe(400);
  });

  it('finds document texts, coverage numbers and UDIs through their hashes', async () => {
    expect(await found('DocumentReference?description=letter%20from')).toEqual([
      ids['DocumentReference'],
    ]);
    expect(
      await found('Composition?title:exact=discharge%20of%20montgomery%20scarborough'),
    ).toEqual([ids['Composition']]);
    expect(await found(`Coverage?dependent=${known.dependent}`)).toEqual([ids['Coverage']]);
    expect(await found('Coverage?class-value=GRP-88')).toEqual([ids['Coverage']]);
    expect(await found('ClaimResponse?disposition=not%20covered')).toEqual([ids['ClaimResponse']]);
    expect(await found(`Device?udi-di=${known.udiDi}`)).toEqual([ids['Device']]);
    expect(await found(`Device?udi-carrier=${known.udiCarrier}`)).toEqual([ids['Device']]);
    const contains = await http('GET', `${fhir}/DocumentReference?description:contains=thistle`);
    expect(contains.status).toBe(400);
  });

  it('refuses break-glass for an MRN given in place of the patient id, keeping no trace of it', async () => {
    const byMrn = await breakGlass(known.mrn);
    expect(byMrn.status).toBe(404);
    expect(JSON.stringify(byMrn.body)).not.toContain(known.mrn);
    const kept: { count: number }[] = await dataSource.query(
      `SELECT count(*)::int AS count FROM break_glass_grant WHERE patient_id = $1`,
      [known.mrn],
    );
    const audited: { count: number }[] = await dataSource.query(
      `SELECT count(*)::int AS count FROM audit_event WHERE $1 = ANY(patient_ids)`,
      [known.mrn],
    );
    expect({ kept: kept[0]!.count, audited: audited[0]!.count }).toEqual({ kept: 0, audited: 0 });
  });

  it('rejects plaintext written around the subscriber with the CHECK constraint', async () => {
    const insert = dataSource.query(
      `INSERT INTO resource (resource_type, id, version_id, last_updated, deleted, content)
       VALUES ('Patient', 'raw-sql', 1, now(), false, $1)`,
      [JSON.stringify(buildPatient(known))],
    );
    await expect(insert).rejects.toThrow(QueryFailedError);
    await expect(insert).rejects.toThrow(/chk_resource_content_envelope/);
  });

  it('refuses a QueryBuilder update of a PHI column that cannot name its row', async () => {
    const update = dataSource
      .createQueryBuilder()
      .update(ResourceEntity)
      .set({ content: JSON.stringify(buildPatient(known)) })
      .where('resource_type = :type', { type: 'Patient' })
      .execute();
    await expect(update).rejects.toThrow(PhiWriteError);
  });

  it('fails to decrypt a ciphertext swapped between two rows, with a clear error and a 500 without detail', async () => {
    const a = (await http('POST', `${fhir}/Patient`, { body: buildPatient() })).body.id as string;
    const b = (await http('POST', `${fhir}/Patient`, { body: buildPatient() })).body.id as string;
    await dataSource.query(
      `UPDATE resource r SET content = o.content FROM resource o
       WHERE r.resource_type = 'Patient' AND o.resource_type = 'Patient'
         AND ((r.id = $1 AND o.id = $2) OR (r.id = $2 AND o.id = $1))`,
      [a, b],
    );
    await expect(
      dataSource.manager.findOneBy(ResourceEntity, { resourceType: 'Patient', id: a }),
    ).rejects.toThrow(
      new PhiDecryptionError(
        'Value in resource.content failed authentication: it was altered or belongs to another row or column',
      ),
    );
    const read = await http('GET', `${fhir}/Patient/${a}`, {
      headers: { 'x-request-id': 'c0ffee00-0b0e-4c0d-8e0f-000000000008' },
    });
    expect(read.status).toBe(500);
    expect(read.body.issue).toEqual([
      {
        severity: 'fatal',
        code: 'exception',
        diagnostics: 'Internal error (request id c0ffee00-0b0e-4c0d-8e0f-000000000008)',
      },
    ]);
    // The version history still holds the untouched ciphertexts.
    expect((await http('GET', `${fhir}/Patient/${a}/_history/1`)).status).toBe(200);
  });

  it("fails to decrypt an earlier version's ciphertext put back in the current row (a rollback)", async () => {
    // The same row and column, another version: someone with write access to the table
    // restores a saved copy of the row's content to undo a correction (an allergy added).
    const created = await http('POST', `${fhir}/Patient`, { body: buildPatient() });
    const id = created.body.id as string;
    const [saved]: { content: string }[] = await dataSource.query(
      `SELECT content FROM resource WHERE resource_type = 'Patient' AND id = $1`,
      [id],
    );
    const updated = await http('PUT', `${fhir}/Patient/${id}`, {
      body: { ...created.body, active: false },
    });
    expect(updated.status).toBe(200);
    await dataSource.query(
      `UPDATE resource SET content = $2 WHERE resource_type = 'Patient' AND id = $1`,
      [id, saved!.content],
    );
    await expect(
      dataSource.manager.findOneBy(ResourceEntity, { resourceType: 'Patient', id }),
    ).rejects.toThrow(PhiDecryptionError);
    expect((await http('GET', `${fhir}/Patient/${id}`)).status).toBe(500);
  });

  it('fails to decrypt a ciphertext with one flipped byte', async () => {
    const id = (await http('POST', `${fhir}/Patient`, { body: buildPatient() })).body.id as string;
    await dataSource.query(
      `UPDATE resource SET content = overlay(content placing
         (CASE WHEN substr(content, 60, 1) = 'A' THEN 'B' ELSE 'A' END) from 60 for 1)
       WHERE resource_type = 'Patient' AND id = $1`,
      [id],
    );
    await expect(
      dataSource.manager.findOneBy(ResourceEntity, { resourceType: 'Patient', id }),
    ).rejects.toThrow(PhiDecryptionError);
  });
});
