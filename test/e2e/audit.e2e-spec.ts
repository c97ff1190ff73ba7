import { randomUUID } from 'node:crypto';
import { connect } from 'node:net';
import { jest } from '@jest/globals';
import { DataSource } from 'typeorm';
import { getDataSourceToken } from '@nestjs/typeorm';
import { AuditVerifier } from '../../src/audit/audit-verifier.js';
import {
  AuditRepository,
  agentNameCondition,
  clientCondition,
} from '../../src/audit/audit.repository.js';
import { AppConfig } from '../../src/config/config.js';
import { FhirDefinitions } from '../../src/fhir/fhir-definitions.js';
import { FhirService } from '../../src/fhir/fhir.service.js';
import { createUser, enableMfa, login, loginWithMfa, tokenFor } from '../support/auth.js';
import { buildPatient } from '../support/factories.js';
import { eventually } from '../support/faults.js';
import { authorizedHttp, http, type HttpFn, type HttpResult } from '../support/http.js';
import { BUILT, childEnv, runNode } from '../support/process.js';
import { createTestApp, type TestApp } from '../support/test-app.js';

interface AuditRow {
  id: string;
  action: string;
  subtype: string | null;
  outcome: string;
  status_code: number | null;
  actor_user_id: string | null;
  actor_name: string | null;
  resource_type: string | null;
  resource_id: string | null;
  resource_version: string | null;
  patient_ids: string[];
  entities: string[];
  query_params: string[];
  route: string | null;
  break_glass: boolean;
}

describe('audit trail: one row per request, no PHI, fail closed, AuditEvent access', () => {
  let testApp: TestApp;
  let fhir: string;
  let db: DataSource;
  let doctor: HttpFn;
  let doctorId: string;
  let auditor: HttpFn;

  /** Sends a request with its own X-Request-Id and returns the audit rows carrying that id. */
  async function audited(
    as: HttpFn,
    method: string,
    url: string,
    options: Parameters<HttpFn>[2] = {},
  ): Promise<{ status: number; body: any; rows: AuditRow[] }> {
    const requestId = randomUUID();
    const res = await as(method, url, {
      ...options,
      headers: { ...options?.headers, 'x-request-id': requestId },
    });
    // In the trail's order: without ORDER BY, PostgreSQL's was the heap's, now and then not it.
    const rows = await db.query<AuditRow[]>(
      `SELECT * FROM audit_event WHERE request_id = $1 ORDER BY chain_seq`,
      [requestId],
    );
    return { status: res.status, body: res.body, rows };
  }

  /** `audit:patient-report` run by the admin CLI, on this app's database and keys. */
  const patientReport = (patient: string) =>
    runNode(
      BUILT.cli,
      ['audit:patient-report', patient],
      childEnv({
        DATABASE_URL: process.env['DATABASE_URL']!,
        PHI_MASTER_KEY: process.env['PHI_MASTER_KEY']!,
        DATA_DIR: process.env['DATA_DIR']!,
        NODE_ENV: 'test',
      }),
    );

  /** Writes raw bytes on a new connection and returns all that comes back. */
  function rawRequest(request: string): Promise<string> {
    const { port } = new URL(testApp.url);
    return new Promise<string>((resolve, reject) => {
      const socket = connect(Number(port), '127.0.0.1', () => socket.write(Buffer.from(request)));
      let received = '';
      socket.setEncoding('utf8');
      socket.on('data', (chunk: string) => (received += chunk));
      socket.on('close', () => resolve(received));
      socket.on('error', reject);
    });
  }

  beforeAll(async () => {
    testApp = await createTestApp();
    fhir = `${testApp.url}/fhir`;
    db = testApp.app.get<DataSource>(getDataSourceToken());
    const user = await createUser(testApp, ['doctor']);
    doctorId = user.id;
    doctor = authorizedHttp((await login(testApp, user)).access_token);
    auditor = authorizedHttp(await tokenFor(testApp, 'auditor'));
  });

  afterAll(async () => {
    await testApp.close();
  });

  it('writes exactly one row for each outcome: 200, 201, 304, 400, 401, 403, 404, 406, 410, 412, 500', async () => {
    const created = await audited(doctor, 'POST', `${fhir}/Patient`, { body: buildPatient() });
    expect(created.status).toBe(201);
    const id = created.body.id as string;
    expect(created.rows).toHaveLength(1);
    expect(created.rows[0]).toMatchObject({
      action: 'create',
      outcome: 'success',
      status_code: 201,
      actor_user_id: doctorId,
      resource_type: 'Patient',
      resource_id: id,
      resource_version: '1',
      patient_ids: [id],
    });

    const read = await audited(doctor, 'GET', `${fhir}/Patient/${id}`);
    expect(read.status).toBe(200);
    expect(read.rows).toMatchObject([{ action: 'read', status_code: 200, patient_ids: [id] }]);

    const unchanged = await audited(doctor, 'GET', `${fhir}/Patient/${id}`, {
      headers: { 'if-none-match': 'W/"1"' },
    });
    expect(unchanged.status).toBe(304);
    expect(unchanged.rows).toMatchObject([
      { action: 'read', outcome: 'success', status_code: 304, patient_ids: [id] },
    ]);

    const xml = await audited(doctor, 'GET', `${fhir}/Patient/${id}`, {
      headers: { accept: 'application/fhir+xml' },
    });
    expect(xml.status).toBe(406);
    expect(xml.body.issue[0].code).toBe('not-supported');
    expect(xml.rows).toMatchObject([{ outcome: 'failure', status_code: 406 }]);

    const invalid = await audited(doctor, 'POST', `${fhir}/Patient`, {
      body: { resourceType: 'Patient', birthDate: 'not-a-date' },
    });
    expect(invalid.status).toBe(400);
    expect(invalid.rows).toMatchObject([
      { action: 'create', outcome: 'failure', status_code: 400 },
    ]);

    const anonymous = await audited(http, 'GET', `${fhir}/Patient/${id}`);
    expect(anonymous.status).toBe(401);
    expect(anonymous.rows).toMatchObject([
      { action: 'read', status_code: 401, actor_user_id: null, resource_id: id },
    ]);

    const nurse = authorizedHttp(await tokenFor(testApp, 'nurse'));
    const denied = await audited(nurse, 'DELETE', `${fhir}/Patient/${id}`);
    expect(denied.status).toBe(403);
    expect(denied.rows).toMatchObject([{ action: 'delete', outcome: 'failure', status_code: 403 }]);

    const unknownRoute = await audited(doctor, 'GET', `${testApp.url}/no/such/route`);
    expect(unknownRoute.status).toBe(404);
    expect(unknownRoute.rows).toMatchObject([{ status_code: 404, route: null }]);

    const stale = await audited(doctor, 'PUT', `${fhir}/Patient/${id}`, {
      body: { ...buildPatient(), id },
      headers: { 'if-match': 'W/"7"' },
    });
    expect(stale.status).toBe(412);
    expect(stale.rows).toMatchObject([{ action: 'update', status_code: 412, patient_ids: [id] }]);

    expect((await doctor('DELETE', `${fhir}/Patient/${id}`)).status).toBe(204);
    const gone = await audited(doctor, 'GET', `${fhir}/Patient/${id}`);
    expect(gone.status).toBe(410);
    expect(gone.rows).toMatchObject([{ action: 'read', status_code: 410 }]);

    const service = testApp.app.get(FhirService);
    const spy = jest.spyOn(service, 'read').mockRejectedValueOnce(new Error('disk on fire'));
    try {
      const failed = await audited(doctor, 'GET', `${fhir}/Patient/${id}`);
      expect(failed.status).toBe(500);
      expect(failed.rows).toMatchObject([{ action: 'read', status_code: 500, outcome: 'failure' }]);
    } finally {
      spy.mockRestore();
    }
  });

  it('records a URL the router refuses once, without its route', async () => {
    const refused = await audited(
      doctor,
      'GET',
      `${fhir}/Patient/John%20Smith%20123-45-6789%FF?name=Jane%20Doe`,
    );
    expect(refused.status).toBe(400);
    expect(refused.rows).toMatchObject([
      {
        outcome: 'failure',
        status_code: 400,
        route: null,
        resource_id: null,
        query_params: [],
        detail: 'structure',
      },
    ]);
  });

  it('names the sender of a request refused before authentication, when its token is valid', async () => {
    const user = await createUser(testApp, ['doctor']);
    // A token no request has used yet: its first use is a refusal, so nothing is remembered.
    const token = (await login(testApp, user)).access_token;
    const sender = authorizedHttp(token);
    const unknownRoute = await audited(sender, 'GET', `${testApp.url}/no/such/route`);
    expect(unknownRoute.status).toBe(404);
    const unparsable = await audited(sender, 'POST', `${fhir}/Patient`, {
      raw: '{"resourceType": "Patient",',
      headers: { 'content-type': 'application/fhir+json' },
    });
    expect(unparsable.status).toBe(400);
    const refusedUrl = await audited(sender, 'GET', `${fhir}/Patient/x%FF`);
    expect(refusedUrl.status).toBe(400);
    for (const { rows } of [unknownRoute, unparsable, refusedUrl]) {
      expect(rows).toMatchObject([
        { outcome: 'failure', actor_user_id: user.id, actor_name: user.username },
      ]);
    }

    const [header, payload, signature] = token.split('.');
    const forged = `${header}.${payload}.${signature!.startsWith('A') ? 'B' : 'A'}${signature!.slice(1)}`;
    const unsigned = await audited(authorizedHttp(forged), 'GET', `${testApp.url}/no/such/route`);
    expect(unsigned.status).toBe(404);
    expect(unsigned.rows).toMatchObject([{ actor_user_id: null, actor_name: null }]);
  });

  it.each([
    ['a raw non-ASCII byte in the query', 'GET /fhir/Patient?name=Müller', 400, 'structure'],
    [
      'a URL too long for the headers',
      `GET /fhir/Patient?name=${'x'.repeat(20_000)}`,
      431,
      'too-long',
    ],
  ])(
    'records a request Node refuses (%s) once, after answering it',
    async (_what, requestLine, status, code) => {
      const answer = await rawRequest(`${requestLine} HTTP/1.1\r\nHost: localhost\r\n\r\n`);
      expect(answer).toMatch(new RegExp(`^HTTP/1\\.1 ${status} `));
      const requestId = /\r\nX-Request-Id: ([\w-]+)\r\n/i.exec(answer)?.[1];
      expect(requestId).toBeDefined();
      await eventually('the refused request is recorded', async () => {
        const rows = await db.query<AuditRow[]>(`SELECT * FROM audit_event WHERE request_id = $1`, [
          requestId,
        ]);
        return rows.length > 0;
      });
      const rows = await db.query<AuditRow[]>(`SELECT * FROM audit_event WHERE request_id = $1`, [
        requestId,
      ]);
      expect(rows).toMatchObject([
        { outcome: 'failure', status_code: status, route: null, query_params: [], detail: code },
      ]);
    },
  );

  it('records a request whose client hangs up mid-body once, as incomplete, not as a database failure', async () => {
    // Node reports the hang-up twice: to the parser (which answered and recorded a refusal of
    // its own) and to the request, whose ECONNRESET read as a lost database connection (503).
    const token = (await login(testApp, await createUser(testApp, ['doctor']))).access_token;
    const [{ seq }] = await db.query<[{ seq: string }]>(
      `SELECT coalesce(max(chain_seq), 0) AS seq FROM audit_event`,
    );
    const requestId = randomUUID();
    const { port } = new URL(testApp.url);
    await new Promise<void>((resolve, reject) => {
      const socket = connect(Number(port), '127.0.0.1', () => {
        socket.write(
          `POST /fhir/Patient HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer ${token}\r\n` +
            `Content-Type: application/fhir+json\r\nContent-Length: 1000\r\n` +
            `X-Request-Id: ${requestId}\r\n\r\n{"resourceType":`,
        );
        setTimeout(() => socket.destroy(), 200);
      });
      socket.on('close', () => resolve());
      socket.on('error', reject);
    });
    const since = async () =>
      db.query<(AuditRow & { request_id: string })[]>(
        `SELECT * FROM audit_event WHERE chain_seq > $1 AND source = 'http' ORDER BY chain_seq`,
        [seq],
      );
    await eventually('the hung-up request is recorded', async () =>
      (await since()).some((row) => row.request_id === requestId),
    );
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(await since()).toMatchObject([
      {
        request_id: requestId,
        action: 'create',
        outcome: 'failure',
        status_code: 400,
        actor_user_id: expect.any(String),
        detail: 'incomplete',
      },
    ]);
  });

  it('records the version a write leaves current, and no new one for an unchanged update', async () => {
    const created = (await doctor('POST', `${fhir}/Patient`, { body: buildPatient() })).body;
    const id = created.id as string;
    const changed = { ...created, gender: created.gender === 'male' ? 'female' : 'male' };
    const updated = await audited(doctor, 'PUT', `${fhir}/Patient/${id}`, { body: changed });
    expect(updated.status).toBe(200);
    expect(updated.body.meta.versionId).toBe('2');
    expect(updated.rows).toMatchObject([{ action: 'update', resource_version: '2' }]);

    // Sent back as read (its meta naming version 2): stored as it is, so version 2 stays.
    const again = await audited(doctor, 'PUT', `${fhir}/Patient/${id}`, { body: updated.body });
    expect(again.status).toBe(200);
    expect(again.body.meta).toEqual(updated.body.meta);
    expect(again.rows).toMatchObject([{ action: 'update', resource_version: '2' }]);

    const patched = await audited(doctor, 'PATCH', `${fhir}/Patient/${id}`, {
      body: [{ op: 'replace', path: '/gender', value: created.gender }],
      headers: { 'content-type': 'application/json-patch+json' },
    });
    expect(patched.status).toBe(200);
    expect(patched.rows).toMatchObject([{ action: 'patch', resource_version: '3' }]);
  });

  it('records searches with every patient in the results and parameter names only', async () => {
    const family = `Zyx${randomUUID().slice(0, 6)}`;
    const first = (await doctor('POST', `${fhir}/Patient`, { body: buildPatient({ family }) })).body
      .id as string;
    const second = (await doctor('POST', `${fhir}/Patient`, { body: buildPatient({ family }) }))
      .body.id as string;
    const search = await audited(doctor, 'GET', `${fhir}/Patient?family=${family}&_count=10`);
    expect(search.status).toBe(200);
    expect(search.body.entry).toHaveLength(2);
    expect(search.rows).toHaveLength(1);
    expect(search.rows[0]!.action).toBe('search');
    expect(search.rows[0]!.patient_ids.sort()).toEqual([first, second].sort());
    expect(search.rows[0]!.query_params).toEqual(['_count', 'family']);

    const posted = await audited(doctor, 'POST', `${fhir}/Patient/_search`, {
      raw: `family=${family}`,
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
    });
    expect(posted.status).toBe(200);
    expect(posted.rows[0]!.query_params).toEqual(['family']);
    expect(posted.rows[0]!.patient_ids).toHaveLength(2);
  });

  it('records the patients a count covered, which it lists none of', async () => {
    // `_summary=count` by a name and a diagnosis answered "1" and named no patient: nothing in
    // the patient's accounting showed that someone had checked (until 2026-12-06).
    const family = `Cnt${randomUUID().slice(0, 6)}`;
    const id = (await doctor('POST', `${fhir}/Patient`, { body: buildPatient({ family }) })).body
      .id as string;
    const code = `cnt-${randomUUID().slice(0, 8)}`;
    const observation = await doctor('POST', `${fhir}/Observation`, {
      body: {
        resourceType: 'Observation',
        status: 'final',
        code: { coding: [{ system: 'http://loinc.org', code }] },
        subject: { reference: `Patient/${id}` },
        effectiveDateTime: '2026-01-02T03:04:05Z',
      },
    });
    expect(observation.status).toBe(201);
    for (const query of [
      `Patient?family=${family}&_summary=count`,
      `Patient?family=${family}&_count=0&_total=accurate`,
      `Observation?subject=Patient/${id}&code=${code}&_summary=count`,
      `Observation?patient.family=${family}&code=${code}&_count=0&_total=accurate`,
      `Patient/${id}/Observation?code=${code}&_summary=count`,
      `Observation/$lastn?patient=${id}&code=${code}&_summary=count`,
    ]) {
      const counted = await audited(doctor, 'GET', `${fhir}/${query}`);
      expect([query, counted.status, counted.body.total]).toEqual([query, 200, 1]);
      expect([query, counted.rows[0]!.patient_ids]).toEqual([query, [id]]);
      // No resource was listed (a compartment search's own entity aside).
      if (!query.startsWith('Patient/'))
        expect([query, counted.rows[0]!.entities]).toEqual([query, []]);
    }
    const none = await audited(doctor, 'GET', `${fhir}/Observation?code=${code}x&_summary=count`);
    expect([none.body.total, none.rows[0]!.patient_ids]).toEqual([0, []]);
  });

  it('keeps only FHIR parameter names and resource types, recording others as unknown', async () => {
    // A name or a type is what the client typed: rows kept `Quixoticson`, `MRNX77777`,
    // `name:Zebulon` and the type `Quixoticson` until 2026-12-06.
    const sent: [string, string, Parameters<HttpFn>[2]?][] = [
      ['GET', `${fhir}/Patient?Quixoticson=1`],
      ['GET', `${fhir}/Patient?name=Zeb&MRNX77777`],
      ['GET', `${fhir}/Patient?name:Zebulon=Quixoticson`],
      ['GET', `${fhir}/Patient?name:exact=Zeb&_count=1&_has:Observation:patient:code=x`],
      [
        'POST',
        `${fhir}/Patient/_search`,
        {
          raw: 'Quixoticson=MRNX77777',
          headers: { 'content-type': 'application/x-www-form-urlencoded' },
        },
      ],
      ['GET', `${fhir}/Quixoticson/px`],
      ['GET', `${fhir}/Patient/px/Quixoticson`],
    ];
    const rows: AuditRow[] = [];
    for (const [method, url, options] of sent) {
      const result = await audited(doctor, method, url, options);
      expect(result.rows).toHaveLength(1);
      rows.push(result.rows[0]!);
    }
    expect(rows.map((row) => row.query_params)).toEqual([
      ['unknown'],
      ['name', 'unknown'],
      ['unknown'],
      ['_count', '_has:Observation:patient:code', 'name:exact'],
      ['unknown'],
      [],
      [],
    ]);
    expect(rows.map((row) => row.resource_type)).toEqual([
      'Patient',
      'Patient',
      'Patient',
      'Patient',
      'Patient',
      'unknown',
      'Patient',
    ]);
    expect(rows[5]).toMatchObject({ resource_id: null, entities: [] });
    const batch = await audited(doctor, 'POST', fhir, {
      body: {
        resourceType: 'Bundle',
        type: 'batch',
        entry: [{ request: { method: 'GET', url: 'Quixoticson/1961-07-13' } }],
      },
    });
    expect(batch.status).toBe(200);
    expect(JSON.stringify(batch.rows)).not.toMatch(/Quixoticson|1961-07-13|Zeb|MRNX/);
    expect(JSON.stringify(rows)).not.toMatch(/Quixoticson|Zeb|MRNX/);
  });

  it('answers and records a parameter whose name holds a NUL, as U+FFFD', async () => {
    // The name reached the row's jsonb, which cannot hold NUL: the audit write failed (503).
    const search = await audited(doctor, 'GET', `${fhir}/Patient?fam%00ily=x&_count=1`);
    expect(search.status).toBe(400);
    expect(search.body.resourceType).toBe('OperationOutcome');
    expect(search.rows).toMatchObject([
      { outcome: 'failure', status_code: 400, query_params: ['_count', 'unknown'] },
    ]);
    const posted = await audited(doctor, 'POST', `${fhir}/Patient/_search`, {
      raw: 'fam%00ily=x&gender=male',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
    });
    expect(posted.status).toBe(400);
    expect(posted.rows).toMatchObject([
      { outcome: 'failure', status_code: 400, query_params: ['gender', 'unknown'] },
    ]);
  });

  it('keeps PHI out of every audit column', async () => {
    const phi = {
      family: `Quasimodo${randomUUID().slice(0, 6)}`,
      given: 'Esmeraldine',
      mrn: `MRN-${randomUUID().slice(0, 10)}`,
      ssn: '987-65-4329',
      birthDate: '1931-07-04',
      phone: '+1 555 867 5309',
      city: 'Notredameville',
      line: '17 Bellringer Lane',
    };
    const id = (await doctor('POST', `${fhir}/Patient`, { body: buildPatient(phi) })).body
      .id as string;
    await doctor('GET', `${fhir}/Patient?family=${phi.family}&birthdate=${phi.birthDate}`);
    await doctor('GET', `${fhir}/Patient?identifier=${encodeURIComponent(phi.mrn)}`);
    await doctor('POST', `${fhir}/Patient/_search`, {
      raw: `phone=${encodeURIComponent(phi.phone)}&address-city=${phi.city}`,
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
    });
    await doctor('PUT', `${fhir}/Patient/${id}`, { body: { ...buildPatient(phi), id } });
    await http('POST', `${testApp.url}/auth/login`, {
      body: { username: phi.family, password: phi.ssn },
      headers: { 'content-type': 'application/json' },
    });
    const rows = await db.query<{ text: string }[]>(
      `SELECT row_to_json(a)::text AS text FROM audit_event a`,
    );
    const all = rows.map((row) => row.text).join('\n');
    expect(all).toContain(id);
    for (const value of Object.values(phi)) {
      expect(all).not.toContain(value);
    }
    expect(all).not.toContain('Bearer');
  });

  it('keeps an id that names nothing stored (an MRN typed in its place) out of the row', async () => {
    const typed = `MRN-${randomUUID().slice(0, 10)}`;
    const read = await audited(doctor, 'GET', `${fhir}/Patient/${typed}`);
    expect(read.status).toBe(404);
    expect(read.rows).toHaveLength(1);
    expect(read.rows[0]).toMatchObject({ resource_id: null, entities: [], patient_ids: [] });
    // Refused before the service looked (by the guards: no token, no permission), the same.
    for (const [as, status] of [
      [http, 401],
      [auditor, 403],
    ] as const) {
      const refused = await audited(as, 'GET', `${fhir}/Patient/${typed}`);
      expect(refused.status).toBe(status);
      expect(refused.rows[0]).toMatchObject({ resource_id: null, entities: [], patient_ids: [] });
    }
    const named = `Quortzenbacher-${randomUUID().slice(0, 6)}`;
    const write = await audited(doctor, 'POST', `${fhir}/Observation`, {
      body: {
        resourceType: 'Observation',
        status: 'final',
        code: { text: 'x' },
        subject: { reference: `Patient/${named}` },
      },
    });
    expect(write.status).toBe(400);
    expect(write.rows).toHaveLength(1);
    expect(JSON.stringify(write.rows[0])).not.toContain(named);
    // A stored one stays named, refused or not.
    const stored = (await doctor('POST', `${fhir}/Patient`, { body: buildPatient() })).body.id;
    const gone = await audited(doctor, 'GET', `${fhir}/Patient/${String(stored)}/_history/99`);
    expect(gone.status).toBe(404);
    expect(gone.rows[0]!.entities).toEqual([`Patient/${String(stored)}`]);
    const denied = await audited(auditor, 'GET', `${fhir}/Patient/${String(stored)}`);
    expect(denied.status).toBe(403);
    expect(denied.rows[0]).toMatchObject({
      resource_id: String(stored),
      entities: [`Patient/${String(stored)}`],
      patient_ids: [String(stored)],
    });
  });

  it('keeps an id that names no Patient out of compartment searches, $audit-trail and the CLI report', async () => {
    const typed = `MRN-${randomUUID().slice(0, 10)}`;
    const unnamed = { resource_id: null, entities: [], patient_ids: [] };
    const calls: [HttpFn, string, string, Parameters<HttpFn>[2]][] = [
      [doctor, 'GET', `${fhir}/Patient/${typed}/Observation`, {}],
      [
        doctor,
        'POST',
        `${fhir}/Patient/${typed}/Observation/_search`,
        { raw: '', headers: { 'content-type': 'application/x-www-form-urlencoded' } },
      ],
      [auditor, 'GET', `${fhir}/Patient/${typed}/$audit-trail`, {}],
    ];
    for (const [as, method, url, options] of calls) {
      const call = await audited(as, method, url, options);
      expect([url, call.status, call.rows]).toMatchObject([url, 200, [unnamed]]);
    }
    // A stored patient's compartment search is still recorded against it.
    const id = (await doctor('POST', `${fhir}/Patient`, { body: buildPatient() })).body
      .id as string;
    const stored = await audited(doctor, 'GET', `${fhir}/Patient/${id}/Observation`);
    expect(stored.rows).toMatchObject([{ resource_id: id, entities: [`Patient/${id}`] }]);
    // Outside /fhir an id is one the server made (a UUID): anything else was typed there.
    const reprocess = await audited(
      doctor,
      'POST',
      `${testApp.url}/hl7/messages/${typed}/reprocess`,
    );
    expect(reprocess.status).toBe(403);
    expect(reprocess.rows).toMatchObject([unnamed]);
    const message = randomUUID();
    const uuid = await audited(doctor, 'POST', `${testApp.url}/hl7/messages/${message}/reprocess`);
    expect(uuid.rows).toMatchObject([{ resource_id: message }]);
    const report = await patientReport(typed);
    expect(report.code).toBe(0);
    const cli = await db.query<AuditRow[]>(
      `SELECT * FROM audit_event WHERE source = 'cli' AND subtype = 'audit:patient-report'
      ORDER BY chain_seq DESC LIMIT 1`,
    );
    expect(cli).toMatchObject([{ resource_type: 'Patient', ...unnamed }]);
  });

  it('records a request whose parameter names hold a NUL, and fails no other request with it', async () => {
    // PostgreSQL cannot store U+0000 in text or jsonb: such a name used to fail the whole group
    // commit, so the request left no row at all and every read committed with it answered 503.
    const id = (await doctor('POST', `${fhir}/Patient`, { body: buildPatient() })).body
      .id as string;
    const poisoned = Array.from({ length: 20 }, () =>
      audited(http, 'GET', `${testApp.url}/no-such-route?a%00b=1`),
    );
    const reads = Array.from({ length: 20 }, () => audited(doctor, 'GET', `${fhir}/Patient/${id}`));
    for (const read of await Promise.all(reads)) {
      expect(read.status).toBe(200);
      expect(read.rows).toMatchObject([{ action: 'read', status_code: 200, patient_ids: [id] }]);
    }
    for (const refused of await Promise.all(poisoned)) {
      expect(refused.status).toBe(404);
      expect(refused.rows).toMatchObject([{ status_code: 404, query_params: ['unknown'] }]);
    }
    const user = await createUser(testApp, ['nurse']);
    const failed = await audited(http, 'POST', `${testApp.url}/auth/login?%00=1`, {
      body: { username: user.username, password: 'wrong password' },
      headers: { 'content-type': 'application/json' },
    });
    expect(failed.status).toBe(401);
    expect(failed.rows).toMatchObject([
      { action: 'login', outcome: 'failure', actor_user_id: user.id, query_params: ['unknown'] },
    ]);
    const form = await audited(doctor, 'POST', `${fhir}/Patient/_search`, {
      raw: `_id=${id}&x%00=1`,
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
    });
    expect(form.rows).toHaveLength(1);
    expect(form.rows[0]!.query_params).toEqual(['_id', 'unknown']);
    const verifier = testApp.app.get(AuditVerifier);
    expect((await verifier.verify(await verifier.databaseSource())).problem).toBeUndefined();
  });

  it('fails only the request whose row is refused, not every request committed with it', async () => {
    // Rows of concurrent reads are committed together (group commit): one row PostgreSQL
    // refused (here, by a constraint that matches its user agent) failed the whole group, so
    // every read that happened to share the commit answered 503 too.
    const id = (await doctor('POST', `${fhir}/Patient`, { body: buildPatient() })).body
      .id as string;
    const poison = `poison-${randomUUID()}`;
    await db.query(
      `ALTER TABLE audit_event ADD CONSTRAINT chk_test_refused
         CHECK (user_agent IS DISTINCT FROM '${poison}') NOT VALID`,
    );
    // The table is held for a moment, so that the rows queue up and go in one commit.
    const lock = db.createQueryRunner();
    await lock.connect();
    await lock.startTransaction();
    let reads: Awaited<ReturnType<typeof audited>>[];
    let refused: HttpResult[];
    try {
      await lock.query('LOCK TABLE audit_event IN ACCESS EXCLUSIVE MODE');
      const sent = Promise.all([
        Promise.all(
          Array.from({ length: 30 }, () => audited(doctor, 'GET', `${fhir}/Patient/${id}`)),
        ),
        Promise.all(
          Array.from({ length: 10 }, () =>
            doctor('GET', `${fhir}/Patient/${id}`, { headers: { 'user-agent': poison } }),
          ),
        ),
      ]);
      await new Promise((resolve) => setTimeout(resolve, 1500));
      await lock.rollbackTransaction();
      [reads, refused] = await sent;
    } finally {
      if (lock.isTransactionActive) await lock.rollbackTransaction();
      await lock.release();
      await db.query(`ALTER TABLE audit_event DROP CONSTRAINT chk_test_refused`);
    }
    expect(refused.map((result) => result.status)).toEqual(Array(10).fill(503));
    expect(reads.map((read) => read.status)).toEqual(Array(30).fill(200));
    for (const read of reads) {
      expect(read.rows).toMatchObject([{ action: 'read', status_code: 200, patient_ids: [id] }]);
    }
    const verifier = testApp.app.get(AuditVerifier);
    expect((await verifier.verify(await verifier.databaseSource())).problem).toBeUndefined();
  });

  it('names the patient a refused request was for, so a search by patient finds the attempt', async () => {
    // Refused by a guard, a request never opens the record: the patient it named was missing
    // from patient_ids, and neither AuditEvent?patient= nor the accounting listed the attempt.
    const id = (await doctor('POST', `${fhir}/Patient`, { body: buildPatient() })).body
      .id as string;
    const attempts = [
      await audited(auditor, 'GET', `${fhir}/Patient/${id}`),
      await audited(http, 'GET', `${fhir}/Patient/${id}/$everything`),
      await audited(
        authorizedHttp(await tokenFor(testApp, 'nurse')),
        'DELETE',
        `${fhir}/Patient/${id}`,
      ),
    ];
    expect(attempts.map((attempt) => attempt.status)).toEqual([403, 401, 403]);
    for (const attempt of attempts) {
      expect(attempt.rows).toMatchObject([{ outcome: 'failure', patient_ids: [id] }]);
    }
    const search = await auditor('GET', `${fhir}/AuditEvent?patient=${id}&outcome=4`);
    expect(search.body.entry).toHaveLength(3);
    // A Patient that is not there (an MRN typed in place of the id) is named by no row.
    const missing = await audited(doctor, 'GET', `${fhir}/Patient/MRN-404-27`);
    expect(missing.status).toBe(404);
    expect(missing.rows).toMatchObject([{ outcome: 'failure', patient_ids: [] }]);
  });

  it('names the resource a refused request was for, so a search by entity finds the attempt', async () => {
    // resource_type and resource_id are in no AuditEvent element: a read refused by a guard
    // had no entity at all, and AuditEvent?entity= could not find it.
    const patient = (await doctor('POST', `${fhir}/Patient`, { body: buildPatient() })).body
      .id as string;
    const observation = (
      await doctor('POST', `${fhir}/Observation`, {
        body: {
          resourceType: 'Observation',
          status: 'final',
          code: { text: 'heart rate' },
          subject: { reference: `Patient/${patient}` },
        },
      })
    ).body.id as string;
    const billing = authorizedHttp(await tokenFor(testApp, 'billing'));
    const refused = await audited(billing, 'GET', `${fhir}/Observation/${observation}`);
    expect(refused.status).toBe(403);
    expect(refused.rows).toMatchObject([{ entities: [`Observation/${observation}`] }]);
    const search = await auditor(
      'GET',
      `${fhir}/AuditEvent?entity=Observation/${observation}&outcome=4`,
    );
    expect(search.body.entry).toHaveLength(1);
    expect(
      (search.body.entry[0].resource.entity as { what?: { reference?: string } }[]).map(
        (entity) => entity.what?.reference,
      ),
    ).toContain(`Observation/${observation}`);
  });

  it('records a compartment search against the patient whose compartment it searched', async () => {
    // The row named `Observation/<the patient's id>` (the searched type with the patient's id),
    // a resource that need not exist, and AuditEvent?entity=Patient/<id> could not find it.
    const patient = (await doctor('POST', `${fhir}/Patient`, { body: buildPatient() })).body
      .id as string;
    const search = await audited(doctor, 'GET', `${fhir}/Patient/${patient}/Observation`);
    expect(search.status).toBe(200);
    expect(search.rows).toMatchObject([
      { action: 'search', resource_type: 'Patient', resource_id: patient },
    ]);
    expect(search.rows[0]!.entities[0]).toBe(`Patient/${patient}`);
    expect(search.rows[0]!.entities).not.toContain(`Observation/${patient}`);
    const found = await auditor('GET', `${fhir}/AuditEvent?entity=Patient/${patient}`);
    expect(found.status).toBe(200);
    expect(
      (found.body.entry as { resource: { id: string } }[]).map((entry) => entry.resource.id),
    ).toContain(search.rows[0]!.id);
  });

  it('records logins, failed logins and the account they were for', async () => {
    const user = await createUser(testApp, ['nurse']);
    const failed = await audited(http, 'POST', `${testApp.url}/auth/login`, {
      body: { username: user.username, password: 'wrong password' },
      headers: { 'content-type': 'application/json' },
    });
    expect(failed.status).toBe(401);
    expect(failed.rows).toMatchObject([
      { action: 'login', outcome: 'failure', status_code: 401, actor_user_id: user.id },
    ]);
    const ok = await audited(http, 'POST', `${testApp.url}/auth/login`, {
      body: { username: user.username, password: user.password },
      headers: { 'content-type': 'application/json' },
    });
    expect(ok.rows).toMatchObject([
      { action: 'login', outcome: 'success', actor_user_id: user.id, actor_name: user.username },
    ]);
  });

  it('names the account of a logout and of a refresh token replayed after rotation', async () => {
    // Both routes take no access token: the rows had no user, so a replayed (stolen) refresh
    // token, which ends the session, was a failure no one could attribute.
    const user = await createUser(testApp, ['nurse']);
    const first = await login(testApp, user);
    const json = { 'content-type': 'application/json' };
    const rotated = await audited(http, 'POST', `${testApp.url}/auth/refresh`, {
      body: { refresh_token: first.refresh_token },
      headers: json,
    });
    expect(rotated.rows).toMatchObject([{ outcome: 'success', actor_user_id: user.id }]);
    const replayed = await audited(http, 'POST', `${testApp.url}/auth/refresh`, {
      body: { refresh_token: first.refresh_token },
      headers: json,
    });
    expect(replayed.status).toBe(401);
    expect(replayed.rows).toMatchObject([
      { action: 'login', outcome: 'failure', actor_user_id: user.id, actor_name: user.username },
    ]);
    const second = await login(testApp, user);
    const logout = await audited(http, 'POST', `${testApp.url}/auth/logout`, {
      body: { refresh_token: second.refresh_token },
      headers: json,
    });
    expect(logout.status).toBe(204);
    expect(logout.rows).toMatchObject([
      { action: 'logout', outcome: 'success', actor_user_id: user.id, actor_name: user.username },
    ]);
    const unknown = await audited(http, 'POST', `${testApp.url}/auth/logout`, {
      body: { refresh_token: 'x'.repeat(43) },
      headers: json,
    });
    expect(unknown.rows).toMatchObject([{ action: 'logout', actor_user_id: null }]);
  });

  it('fails closed: when the audit row cannot be written, a read answers 503 and a write is undone', async () => {
    const repository = testApp.app.get(AuditRepository);
    const id = (await doctor('POST', `${fhir}/Patient`, { body: buildPatient() })).body
      .id as string;
    const spy = jest.spyOn(repository, 'append').mockRejectedValue(new Error('audit disk full'));
    try {
      const read = await doctor('GET', `${fhir}/Patient/${id}`);
      expect(read.status).toBe(503);
      expect(read.body.resourceType).toBe('OperationOutcome');
      expect(read.text).not.toContain('"name"');
      const chosen = `audit-${randomUUID()}`;
      const write = await doctor('PUT', `${fhir}/Patient/${chosen}`, {
        body: { ...buildPatient(), id: chosen },
      });
      expect(write.status).toBe(503);
    } finally {
      spy.mockRestore();
    }
    const rows = await db.query<unknown[]>(`SELECT 1 FROM resource WHERE id = $1`, [id]);
    expect(rows).toHaveLength(1);
    const undone = await db.query(`SELECT 1 FROM resource WHERE id LIKE 'audit-%'`);
    expect(undone).toHaveLength(0);
  });

  it('fails closed on refusals and errors too: unaudited, a 403 or a 404 is a 503', async () => {
    // A request that fails (refused by a guard, nothing there) gets its row from the exception
    // filter: when that row cannot be written, the attempt must not be answered as if it had.
    const repository = testApp.app.get(AuditRepository);
    const nurse = authorizedHttp(await tokenFor(testApp, 'nurse'));
    const spy = jest.spyOn(repository, 'append').mockRejectedValue(new Error('audit disk full'));
    try {
      for (const [as, path] of [
        [nurse, `${fhir}/AuditEvent`],
        [doctor, `${fhir}/Patient/missing-${randomUUID()}`],
      ] as const) {
        const res = await as('GET', path);
        expect({ path, status: res.status }).toEqual({ path, status: 503 });
      }
    } finally {
      spy.mockRestore();
    }
  });

  it("fails closed when a trigger in the database drops a user's audit rows", async () => {
    // audit_append only queues the rows (a deferred trigger links them): a BEFORE INSERT trigger
    // a DBA added on audit_pending dropped one user's rows, and their requests still succeeded.
    const id = (await doctor('POST', `${fhir}/Patient`, { body: buildPatient() })).body
      .id as string;
    const snoop = await createUser(testApp, ['doctor']);
    const snooping = authorizedHttp((await login(testApp, snoop)).access_token);
    await db.query(`
      CREATE FUNCTION test_drop_snoop() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        IF NEW.entries::text LIKE '%${snoop.username}%' THEN RETURN NULL; END IF;
        RETURN NEW;
      END $$`);
    await db.query(`CREATE TRIGGER trg_test_drop_snoop BEFORE INSERT ON audit_pending
      FOR EACH ROW EXECUTE FUNCTION test_drop_snoop()`);
    let results: [HttpResult[], Awaited<ReturnType<typeof audited>>[], HttpResult];
    try {
      results = await Promise.all([
        Promise.all(Array.from({ length: 5 }, () => snooping('GET', `${fhir}/Patient/${id}`))),
        Promise.all(
          Array.from({ length: 10 }, () => audited(doctor, 'GET', `${fhir}/Patient/${id}`)),
        ),
        snooping('PUT', `${fhir}/Patient/${id}`, { body: { ...buildPatient(), id } }),
      ]);
    } finally {
      await db.query('DROP TRIGGER trg_test_drop_snoop ON audit_pending');
      await db.query('DROP FUNCTION test_drop_snoop()');
    }
    const [snooped, reads, write] = results;
    expect(snooped.map((result) => result.status)).toEqual(Array(5).fill(503));
    expect(write.status).toBe(503);
    expect(reads.map((read) => read.status)).toEqual(Array(10).fill(200));
    const versions = await db.query<{ version_id: number }[]>(
      `SELECT version_id FROM resource WHERE resource_type = 'Patient' AND id = $1`,
      [id],
    );
    expect(versions).toEqual([{ version_id: 1 }]);
  });

  it('fails closed within AUDIT_WRITE_TIMEOUT_MS when the audit table stays locked', async () => {
    // A lock on audit_event (an operator's LOCK TABLE, a stuck transaction holding the chain)
    // held every request until it was released: statement_timeout does not reach the link
    // made at COMMIT, so nothing bounded the wait.
    const id = (await doctor('POST', `${fhir}/Patient`, { body: buildPatient() })).body
      .id as string;
    const bound = jest
      .spyOn(testApp.app.get(AppConfig), 'auditWriteTimeoutMs', 'get')
      .mockReturnValue(1000);
    const lock = db.createQueryRunner();
    await lock.connect();
    await lock.startTransaction();
    // Released in any case, so that a server without the bound fails this test, not the suite.
    const release = setTimeout(() => void lock.rollbackTransaction(), 10_000);
    const readId = randomUUID();
    const writeId = randomUUID();
    const chosen = `locked-${randomUUID()}`;
    let results: HttpResult[];
    const started = Date.now();
    try {
      await lock.query('LOCK TABLE audit_event IN ACCESS EXCLUSIVE MODE');
      results = await Promise.all([
        doctor('GET', `${fhir}/Patient/${id}`, { headers: { 'x-request-id': readId } }),
        doctor('PUT', `${fhir}/Patient/${chosen}`, {
          body: { ...buildPatient(), id: chosen },
          headers: { 'x-request-id': writeId },
        }),
      ]);
    } finally {
      clearTimeout(release);
      if (lock.isTransactionActive) await lock.rollbackTransaction();
      await lock.release();
      bound.mockRestore();
    }
    const elapsed = Date.now() - started;
    expect(results.map((result) => result.status)).toEqual([503, 503]);
    expect(elapsed).toBeLessThan(6000);
    for (const result of results) {
      expect(result.body.resourceType).toBe('OperationOutcome');
      expect(result.headers.get('retry-after')).toBe('5');
    }
    expect(results[0]!.text).not.toContain('"name"');
    expect(await db.query(`SELECT 1 FROM resource WHERE id = $1`, [chosen])).toHaveLength(0);
    const rows = await db.query<{ status_code: number }[]>(
      `SELECT status_code FROM audit_event WHERE request_id = ANY($1)`,
      [[readId, writeId]],
    );
    expect(rows.filter((row) => row.status_code < 400)).toHaveLength(0);
    const verifier = testApp.app.get(AuditVerifier);
    expect((await verifier.verify(await verifier.databaseSource())).problem).toBeUndefined();
  });

  it('records a method a known path does not take once, as a 405 without its route', async () => {
    const wrongMethod = await audited(doctor, 'PUT', `${testApp.url}/health`);
    expect(wrongMethod.status).toBe(405);
    expect(wrongMethod.rows).toMatchObject([
      { status_code: 405, route: null, detail: 'not-supported' },
    ]);
  });

  it('gives each write of a batch a row committed with it, so none is kept unnamed', async () => {
    const existing = (await doctor('POST', `${fhir}/Patient`, { body: buildPatient() })).body
      .id as string;
    const chosen = `batch-${randomUUID()}`;
    const batch = (entry: unknown[]) => ({ resourceType: 'Bundle', type: 'batch', entry });
    const put = {
      resource: { ...buildPatient(), id: chosen },
      request: { method: 'PUT', url: `Patient/${chosen}` },
    };
    const stale = {
      resource: { ...buildPatient(), id: existing },
      request: { method: 'PUT', url: `Patient/${existing}`, ifMatch: 'W/"9"' },
    };
    const read = { request: { method: 'GET', url: `Patient/${existing}` } };

    const done = await audited(doctor, 'POST', fhir, { body: batch([put, stale, read]) });
    expect(done.body.entry.map((e: any) => e.response.status)).toEqual([
      '201 Created',
      '412',
      '200 OK',
    ]);
    const byAction = (action: string) => done.rows.filter((row) => row.action === action);
    expect(done.rows).toHaveLength(3);
    expect(byAction('update')).toMatchObject([
      {
        subtype: 'update',
        route: '/fhir',
        outcome: 'success',
        status_code: 201,
        resource_type: 'Patient',
        resource_id: chosen,
        resource_version: '1',
        entities: [`Patient/${chosen}`],
        patient_ids: [chosen],
      },
      // The entry that failed has a failure row of its own.
      {
        subtype: 'update',
        outcome: 'failure',
        status_code: 412,
        resource_id: existing,
        entities: [`Patient/${existing}`],
      },
    ]);
    // The request's row names what the entries read, not what another row names.
    expect(byAction('execute')).toMatchObject([
      { subtype: 'batch', status_code: 200, entities: [`Patient/${existing}`] },
    ]);

    // The entry's row fails: the entry is undone, and recorded as a failure once the row can be.
    const again = `batch-${randomUUID()}`;
    const spy = jest
      .spyOn(testApp.app.get(AuditRepository), 'append')
      .mockRejectedValueOnce(new Error('audit disk full'));
    let refused: Awaited<ReturnType<typeof audited>>;
    try {
      refused = await audited(doctor, 'POST', fhir, {
        body: batch([
          {
            ...put,
            resource: { ...put.resource, id: again },
            request: { method: 'PUT', url: `Patient/${again}` },
          },
        ]),
      });
    } finally {
      spy.mockRestore();
    }
    expect(refused.body.entry[0].response.status).toBe('503');
    expect(await db.query(`SELECT 1 FROM resource WHERE id = $1`, [again])).toHaveLength(0);
    expect(refused.rows).toMatchObject([
      { action: 'update', outcome: 'failure', status_code: 503, entities: [`Patient/${again}`] },
      { action: 'execute', subtype: 'batch', entities: [] },
    ]);
  });

  it("records a batch entry that failed as a failure, never in the request's success row", async () => {
    // A patient-scoped token's batch of reads of another patient: each entry was refused (404),
    // yet the request's row said success and named them, so B's accounting of disclosures
    // listed a successful access. The same read on its own is audited as a failure.
    const [a, b] = [
      (await doctor('POST', `${fhir}/Patient`, { body: buildPatient() })).body.id as string,
      (await doctor('POST', `${fhir}/Patient`, { body: buildPatient() })).body.id as string,
    ];
    const [observation, own] = await Promise.all(
      [b, a].map(
        async (patient) =>
          (
            await doctor('POST', `${fhir}/Observation`, {
              body: {
                resourceType: 'Observation',
                status: 'final',
                code: { text: 'heart rate' },
                subject: { reference: `Patient/${patient}` },
              },
            })
          ).body.id as string,
      ),
    );
    const exchanged = await http('POST', `${testApp.url}/auth/token/scoped`, {
      body: { scope: 'patient/*.read', patient: a },
      headers: {
        authorization: `Bearer ${await tokenFor(testApp, 'doctor')}`,
        'content-type': 'application/json',
      },
    });
    expect(exchanged.status).toBe(200);
    const app = authorizedHttp(exchanged.body.access_token as string);
    const batch = await audited(app, 'POST', fhir, {
      body: {
        resourceType: 'Bundle',
        type: 'batch',
        entry: [
          `Observation/${observation}`,
          `Patient/${b}/$everything`,
          `Observation/${observation}/_history`,
          `Observation/${own}`,
        ].map((url) => ({ request: { method: 'GET', url } })),
      },
    });
    expect(batch.status).toBe(200);
    expect(batch.body.entry.map((e: any) => e.response.status)).toEqual([
      '404',
      '404',
      '404',
      '200 OK',
    ]);
    const request = batch.rows.filter((row) => row.subtype === 'batch');
    expect(request).toMatchObject([
      { outcome: 'success', entities: [`Observation/${own}`], patient_ids: [a] },
    ]);
    const refused = batch.rows.filter((row) => row.subtype !== 'batch');
    expect(refused).toHaveLength(3);
    for (const row of refused) {
      expect(row).toMatchObject({ outcome: 'failure', status_code: 404, route: '/fhir' });
      expect(row.entities).not.toContain(`Observation/${own}`);
    }
    expect(refused.map((row) => row.action).sort()).toEqual(['history', 'read', 'read']);
    // The attempts stay in B's accounting, as failures, like the same reads sent on their own.
    expect(refused.flatMap((row) => row.entities)).toContain(`Observation/${observation}`);
    const succeeded = await db.query(
      `SELECT 1 FROM audit_event WHERE $1 = ANY(patient_ids) AND outcome = 'success'
         AND (action <> 'create' OR actor_scope IS NOT NULL)`,
      [b],
    );
    expect(succeeded).toEqual([]);
    const verifier = testApp.app.get(AuditVerifier);
    expect((await verifier.verify(await verifier.databaseSource())).problem).toBeUndefined();
  });

  it("never names a Bundle request's row after the one resource its entries touched", async () => {
    // The row's resource is the Bundle, which has no id: the id of the only resource touched
    // made it "Bundle/<patient id>", a resource that does not exist.
    const id = (await doctor('POST', `${fhir}/Patient`, { body: buildPatient() })).body
      .id as string;
    for (const type of ['batch', 'transaction']) {
      const bundle = await audited(doctor, 'POST', fhir, {
        body: {
          resourceType: 'Bundle',
          type,
          entry: [{ request: { method: 'GET', url: `Patient/${id}` } }],
        },
      });
      expect(bundle.status).toBe(200);
      expect(bundle.rows).toMatchObject([
        {
          subtype: type,
          resource_type: 'Bundle',
          resource_id: null,
          resource_version: null,
          entities: [`Patient/${id}`],
          patient_ids: [id],
        },
      ]);
    }
  });

  it('flags break-glass access, and a grant whose audit row fails is not kept', async () => {
    const restricted = (
      await doctor('POST', `${fhir}/Patient`, {
        body: {
          ...buildPatient(),
          meta: {
            security: [
              { system: 'http://terminology.hl7.org/CodeSystem/v3-Confidentiality', code: 'R' },
            ],
          },
        },
      })
    ).body.id as string;
    const nurse = await createUser(testApp, ['nurse']);
    const secret = await enableMfa(testApp, nurse);
    const asNurse = authorizedHttp((await loginWithMfa(testApp, nurse, secret)).access_token);
    const body = { patient: restricted, reason: 'Unresponsive in ED, allergy check' };
    const json = { 'content-type': 'application/json' };

    const spy = jest
      .spyOn(testApp.app.get(AuditRepository), 'append')
      .mockRejectedValue(new Error('audit disk full'));
    try {
      const refused = await asNurse('POST', `${testApp.url}/auth/break-glass`, {
        body,
        headers: json,
      });
      expect(refused.status).toBe(503);
    } finally {
      spy.mockRestore();
    }
    const kept = await db.query(`SELECT 1 FROM break_glass_grant WHERE patient_id = $1`, [
      restricted,
    ]);
    expect(kept).toHaveLength(0);

    const granted = await audited(asNurse, 'POST', `${testApp.url}/auth/break-glass`, {
      body,
      headers: json,
    });
    expect(granted.status).toBe(201);
    expect(granted.rows).toMatchObject([
      { action: 'execute', subtype: 'break-glass', break_glass: true, patient_ids: [restricted] },
    ]);
    const opened = await audited(asNurse, 'GET', `${fhir}/Patient/${restricted}`);
    expect(opened.status).toBe(200);
    expect(opened.rows).toMatchObject([
      { action: 'read', break_glass: true, patient_ids: [restricted] },
    ]);
    const events = await auditor('GET', `${fhir}/AuditEvent?patient=${restricted}&action=R`);
    expect(events.body.entry[0].resource.purposeOfEvent[0].coding[0].code).toBe('BTG');
    // The reason is free text and may hold PHI: it is not in the audit trail.
    const all = await db.query<{ text: string }[]>(
      `SELECT row_to_json(a)::text AS text FROM audit_event a WHERE $1 = ANY(patient_ids)`,
      [restricted],
    );
    expect(all.map((row) => row.text).join('')).not.toContain('Unresponsive');
  });

  it('names the patient of a refused break-glass request when it is a stored Patient, never an MRN', async () => {
    // A refused break-glass (no recent MFA, no right to it, a reason too short) is an attempt
    // on that patient's records: its row named no patient, so their accounting missed it.
    const id = (await doctor('POST', `${fhir}/Patient`, { body: buildPatient() })).body
      .id as string;
    const nurse = await createUser(testApp, ['nurse']);
    const withoutMfa = authorizedHttp((await login(testApp, nurse)).access_token);
    const secret = await enableMfa(testApp, nurse);
    const withMfa = authorizedHttp((await loginWithMfa(testApp, nurse, secret)).access_token);
    const json = { 'content-type': 'application/json' };
    const reason = 'Unresponsive in ED, allergy check';
    const attempt = (as: HttpFn, body: unknown) =>
      audited(as, 'POST', `${testApp.url}/auth/break-glass`, { body, headers: json });
    const refused = [
      await attempt(withoutMfa, { patient: id, reason }),
      await attempt(auditor, { patient: id, reason }),
      await attempt(withMfa, { patient: id, reason: 'short' }),
    ];
    expect(refused.map((r) => r.status)).toEqual([403, 403, 400]);
    for (const r of refused) {
      expect(r.rows).toMatchObject([
        { subtype: 'break-glass', outcome: 'failure', patient_ids: [id] },
      ]);
    }
    // An MRN typed in place of the id is named by no row, whatever refused it.
    const mrn = 'MRN-55-1234';
    const notPatients = [
      await attempt(withMfa, { patient: mrn, reason }),
      await attempt(withoutMfa, { patient: mrn, reason }),
      await attempt(withMfa, { patient: mrn, reason: 'short' }),
    ];
    expect(notPatients.map((r) => r.status)).toEqual([404, 403, 400]);
    for (const r of notPatients) {
      expect(r.rows).toMatchObject([{ outcome: 'failure', patient_ids: [] }]);
    }
    const trail = await auditor('GET', `${fhir}/AuditEvent?patient=${id}&subtype=break-glass`);
    expect(trail.body.entry).toHaveLength(3);
  });

  it('keeps the chain valid with 200 requests in parallel', async () => {
    const id = (await doctor('POST', `${fhir}/Patient`, { body: buildPatient() })).body
      .id as string;
    const before = (await db.query(`SELECT count(*)::int AS n FROM audit_event`))[0].n as number;
    const results = await Promise.all(
      Array.from({ length: 200 }, (_, i) =>
        i % 10 === 0
          ? doctor('POST', `${fhir}/Patient`, { body: buildPatient() })
          : doctor('GET', `${fhir}/Patient/${id}`),
      ),
    );
    expect(results.filter((r) => r.status >= 300)).toHaveLength(0);
    const after = (await db.query(`SELECT count(*)::int AS n FROM audit_event`))[0].n as number;
    expect(after - before).toBeGreaterThanOrEqual(200);
    const verifier = testApp.app.get(AuditVerifier);
    const report = await verifier.verify(await verifier.databaseSource());
    expect(report.problem).toBeUndefined();
    expect(report.ok).toBe(true);
  });

  it('names the patient of an AuditEvent search by patient, and never an id that is no Patient', async () => {
    // Reading a patient's audit trail discloses who treated them: that search is recorded
    // against the patient, as a search of their records is, and $audit-trail already was.
    const id = (await doctor('POST', `${fhir}/Patient`, { body: buildPatient() })).body
      .id as string;
    for (const query of [`patient=${id}`, `patient=Patient/${id}&action=C`]) {
      const search = await audited(auditor, 'GET', `${fhir}/AuditEvent?${query}`);
      expect([query, search.status]).toEqual([query, 200]);
      expect(search.rows).toMatchObject([{ action: 'search', patient_ids: [id] }]);
    }
    const searched = await auditor('GET', `${fhir}/AuditEvent?patient=${id}&action=E`);
    expect(searched.body.entry).toHaveLength(2);
    // An MRN typed in place of the id is named by no row, here or in the accounting.
    for (const path of ['AuditEvent?patient=MRN-77-1234', 'Patient/MRN-77-1234/$audit-trail']) {
      const missing = await audited(auditor, 'GET', `${fhir}/${path}`);
      expect([path, missing.status, missing.rows]).toMatchObject([
        path,
        200,
        [{ patient_ids: [] }],
      ]);
    }
  });

  it('refuses every interaction AuditEvent does not offer with a 405, to anyone signed in', async () => {
    const admin = authorizedHttp(await tokenFor(testApp, 'admin'));
    const event = (await admin('GET', `${fhir}/AuditEvent?_count=1`)).body.entry[0].resource;
    const body = { body: { ...event, id: undefined } };
    const refused: [string, string, Parameters<HttpFn>[2]][] = [
      ['POST', 'AuditEvent', body],
      ['PUT', `AuditEvent/${String(event.id)}`, { body: event }],
      [
        'PATCH',
        `AuditEvent/${String(event.id)}`,
        { body: [], headers: { 'content-type': 'application/json-patch+json' } },
      ],
      ['DELETE', `AuditEvent/${String(event.id)}`, {}],
      ['PUT', 'AuditEvent?action=R', body],
      ['DELETE', 'AuditEvent?action=R', {}],
      ['POST', 'AuditEvent/$validate', { body: { resourceType: 'Parameters' } }],
    ];
    for (const as of [admin, doctor]) {
      for (const [method, path, options] of refused) {
        const res = await as(method, `${fhir}/${path}`, options);
        expect([method, path, res.status, res.headers.get('allow')]).toEqual([
          method,
          path,
          405,
          'GET, HEAD',
        ]);
      }
      const history = await as('GET', `${fhir}/AuditEvent/_history`);
      expect([history.status, history.headers.get('allow')]).toEqual([405, '']);
    }
    // Without a token, the 401 any other request gets: what the type offers is not told.
    const typeHistory: (typeof refused)[number] = ['GET', 'AuditEvent/_history', {}];
    for (const [method, path, options] of [...refused, typeHistory]) {
      const res = await http(method, `${fhir}/${path}`, options);
      expect([method, path, res.status, res.headers.get('allow')]).toEqual([
        method,
        path,
        401,
        null,
      ]);
    }
    // The same as entries of a batch (they were a 403, as a permission refused).
    const batch = await admin('POST', fhir, {
      body: {
        resourceType: 'Bundle',
        type: 'batch',
        entry: [
          { resource: { ...event, id: undefined }, request: { method: 'POST', url: 'AuditEvent' } },
          { request: { method: 'DELETE', url: `AuditEvent/${String(event.id)}` } },
          // The type's history, offered by no method (it was answered in a Bundle).
          { request: { method: 'GET', url: 'AuditEvent/_history' } },
        ],
      },
    });
    const direct = await admin('POST', `${fhir}/AuditEvent`, body);
    type Answer = { response: { status: string; outcome: { issue: { diagnostics: string }[] } } };
    expect(
      batch.body.entry.map(({ response }: Answer) => [
        response.status,
        response.outcome.issue[0]!.diagnostics,
      ]),
    ).toEqual(
      [0, 1, 2].map((index) => [
        '405',
        `Bundle.entry[${index}]: ${String(direct.body.issue[0].diagnostics)}`,
      ]),
    );
    // What it offers still answers, and its row names the AuditEvent read.
    const read = await audited(admin, 'GET', `${fhir}/AuditEvent/${String(event.id)}`);
    expect([read.status, read.rows.map((row) => [row.resource_type, row.resource_id])]).toEqual([
      200,
      [['AuditEvent', String(event.id)]],
    ]);
    expect((await admin('GET', `${fhir}/AuditEvent?_count=1`)).status).toBe(200);
  });

  it('takes _format and _pretty, and reads AuditEvents with version headers and a 304', async () => {
    for (const query of [
      '_format=json',
      '_pretty=true',
      '_format=application/fhir%2Bjson&_count=2',
    ]) {
      const res = await auditor('GET', `${fhir}/AuditEvent?${query}`);
      expect([query, res.status, res.body.resourceType]).toEqual([query, 200, 'Bundle']);
    }
    const pretty = await auditor('GET', `${fhir}/AuditEvent?_count=1&_pretty=true`);
    expect(pretty.text).toContain('\n  "resourceType"');
    const event = pretty.body.entry[0].resource;
    for (const path of [
      `AuditEvent/${String(event.id)}`,
      `AuditEvent/${String(event.id)}/_history/1`,
    ]) {
      const read = await auditor('GET', `${fhir}/${path}`);
      expect([path, read.status, read.headers.get('etag')]).toEqual([path, 200, 'W/"1"']);
      expect(Date.parse(read.headers.get('last-modified')!)).toBe(
        Math.floor(Date.parse(String(event.meta.lastUpdated)) / 1000) * 1000,
      );
      const current = await auditor('GET', `${fhir}/${path}`, {
        headers: { 'if-none-match': 'W/"1"' },
      });
      expect([path, current.status, current.text]).toEqual([path, 304, '']);
      const stale = await auditor('GET', `${fhir}/${path}`, {
        headers: { 'if-none-match': 'W/"2"' },
      });
      expect([path, stale.status]).toEqual([path, 200]);
    }
  });

  it('finds a username (agent-name) through an index on the name, not a scan of the whole trail', async () => {
    // The trail is newest first: without an index, a name with few rows (or none) read every row.
    // The trail here is small enough to read whole, so the plan is asked of a large one's terms.
    const indexesUsed = (exact: boolean): Promise<string[]> =>
      db.transaction(async (manager) => {
        await manager.query('SET LOCAL enable_seqscan = off');
        const [row] = await manager.query<{ 'QUERY PLAN': unknown }[]>(
          `EXPLAIN (FORMAT JSON) SELECT "chain_seq" FROM "audit_event"
            WHERE ${agentNameCondition(exact, '$1')} ORDER BY "chain_seq" DESC LIMIT 51`,
          [`Rarely-${randomUUID()}`],
        );
        const plan: unknown = row!['QUERY PLAN'];
        const text = typeof plan === 'string' ? plan : JSON.stringify(plan);
        return [...text.matchAll(/"Index Name":\s*"([^"]+)"/g)].map((match) => match[1]!);
      });
    expect(await indexesUsed(true)).toEqual(['idx_audit_event_actor_name']);
    expect(await indexesUsed(false)).toEqual(['idx_audit_event_actor_name_lower']);
  });

  it('finds a SMART client (agent=urn:carevault:client|id) through an index, not a scan of the whole trail', async () => {
    // As for agent-name: a client with few rows, or none, read the trail newest first to its end.
    const indexesUsed = (): Promise<string[]> =>
      db.transaction(async (manager) => {
        await manager.query('SET LOCAL enable_seqscan = off');
        const [row] = await manager.query<{ 'QUERY PLAN': unknown }[]>(
          `EXPLAIN (FORMAT JSON) SELECT "chain_seq" FROM "audit_event"
            WHERE ${clientCondition('$1')} ORDER BY "chain_seq" DESC LIMIT 51`,
          [randomUUID()],
        );
        const plan: unknown = row!['QUERY PLAN'];
        const text = typeof plan === 'string' ? plan : JSON.stringify(plan);
        return [...text.matchAll(/"Index Name":\s*"([^"]+)"/g)].map((match) => match[1]!);
      });
    expect(await indexesUsed()).toEqual(['idx_audit_event_client']);
  });

  it('finds what a user did by their username (agent-name), and refuses an agent it cannot match', async () => {
    // The investigator knows the clinician by username: the user id is nowhere they may look.
    const user = await createUser(testApp, ['doctor'], `dr-${randomUUID().slice(0, 8)}`);
    const as = authorizedHttp((await login(testApp, user)).access_token);
    const id = (await as('POST', `${fhir}/Patient`, { body: buildPatient() })).body.id as string;
    await as('GET', `${fhir}/Patient/${id}`);
    // A name that merely begins as theirs is someone else's: exact, as FHIR's :exact.
    const byName = await auditor(
      'GET',
      `${fhir}/AuditEvent?agent-name:exact=${user.username}&patient=${id}`,
    );
    expect(byName.status).toBe(200);
    expect(byName.body.entry.map((e: any) => e.resource.action)).toEqual(['R', 'C']);
    expect(byName.body.entry[0].resource.agent[0]).toMatchObject({
      who: { identifier: { value: user.id } },
      name: user.username,
    });
    // FHIR's string search: the start of the name, in any case.
    const byStart = await auditor(
      'GET',
      `${fhir}/AuditEvent?agent-name=${user.username.slice(0, 6).toUpperCase()}&patient=${id}`,
    );
    expect(byStart.body.entry).toHaveLength(2);
    const other = await auditor(
      'GET',
      `${fhir}/AuditEvent?agent-name:exact=${user.username.slice(0, 6)}&patient=${id}`,
    );
    expect(other.body.entry ?? []).toHaveLength(0);
    // A Practitioner (the clinician's fhirUser) names no row: an empty answer would read as
    // "never touched the record", so it is refused, saying what the trail records.
    const typed = await auditor('GET', `${fhir}/AuditEvent?agent=Practitioner/${user.id}`);
    expect(typed.status).toBe(400);
    expect(typed.body.issue[0].diagnostics).toMatch(/user id/);
  });

  it('serves AuditEvent search and the accounting of disclosures to auditors only', async () => {
    const id = (await doctor('POST', `${fhir}/Patient`, { body: buildPatient() })).body
      .id as string;
    await doctor('GET', `${fhir}/Patient/${id}`);
    expect((await doctor('GET', `${fhir}/AuditEvent?patient=${id}`)).status).toBe(403);

    const bundle = (await auditor('GET', `${fhir}/AuditEvent?patient=Patient/${id}`)).body;
    expect(bundle.resourceType).toBe('Bundle');
    expect(bundle.entry).toHaveLength(2);
    const [readEvent, createEvent] = bundle.entry.map((e: any) => e.resource);
    expect(readEvent).toMatchObject({
      resourceType: 'AuditEvent',
      action: 'R',
      outcome: '0',
      agent: [{ who: { identifier: { value: doctorId } }, requestor: true }],
    });
    expect(createEvent.action).toBe('C');
    // Valid R4 AuditEvents, by the same validator that checks resources written to the store.
    const definitions = testApp.app.get(FhirDefinitions);
    for (const event of bundle.entry.map((e: any) => e.resource)) {
      expect(() => definitions.validate(event)).not.toThrow();
    }
    expect(readEvent.entity).toEqual(
      expect.arrayContaining([expect.objectContaining({ what: { reference: `Patient/${id}` } })]),
    );
    const created = await auditor('GET', `${fhir}/AuditEvent?patient=${id}&action=C`);
    expect(created.body.entry).toHaveLength(1);
    const byAgent = await auditor(
      'GET',
      `${fhir}/AuditEvent?agent=${doctorId}&entity=Patient/${id}&date=ge${new Date(Date.now() - 60_000).toISOString()}`,
    );
    expect(byAgent.body.entry.length).toBeGreaterThanOrEqual(2);
    const failures = await auditor('GET', `${fhir}/AuditEvent?outcome=4&_count=5`);
    expect(failures.body.entry.every((e: any) => e.resource.outcome === '4')).toBe(true);
    expect((await auditor('GET', `${fhir}/AuditEvent?name=x`)).status).toBe(400);

    const admin = authorizedHttp(await tokenFor(testApp, 'admin'));
    const trail = await admin('GET', `${fhir}/Patient/${id}/$audit-trail`);
    expect(trail.status).toBe(200);
    // The auditor's two searches by this patient read their trail: they are in it.
    expect(trail.body.entry.map((e: any) => e.resource.action)).toEqual(['E', 'E', 'R', 'C']);
    // A UTC offset's + sent unencoded (as curl users write it) arrives as a space: read as +.
    const offsetSince = new Date(Date.now() - 60_000 + 14 * 3_600_000).toISOString().slice(0, 19);
    const byOffset = await auditor(
      'GET',
      `${fhir}/AuditEvent?agent=${doctorId}&date=ge${offsetSince}+14:00`,
    );
    expect(byOffset.status).toBe(200);
    expect(byOffset.body.entry.length).toBeGreaterThanOrEqual(2);
    const one = await auditor('GET', `${fhir}/AuditEvent/${readEvent.id}`);
    expect(one.body.id).toBe(readEvent.id);
    expect((await doctor('POST', `${fhir}/AuditEvent`, { body: readEvent })).status).toBe(405);

    // An AuditEvent is never changed: its history is its one version, which vread reads.
    const history = await auditor('GET', `${fhir}/AuditEvent/${readEvent.id}/_history`);
    expect(history.status).toBe(200);
    expect(history.body).toMatchObject({ resourceType: 'Bundle', type: 'history', total: 1 });
    expect(history.body.entry).toEqual([
      expect.objectContaining({
        fullUrl: `${fhir}/AuditEvent/${readEvent.id}`,
        resource: readEvent,
        response: expect.objectContaining({ etag: 'W/"1"', lastModified: readEvent.recorded }),
      }),
    ]);
    expect(() => definitions.validate(history.body)).not.toThrow();
    const later = new Date(Date.parse(readEvent.recorded) + 1000).toISOString();
    const since = await auditor(
      'GET',
      `${fhir}/AuditEvent/${readEvent.id}/_history?_since=${later}`,
    );
    expect([since.status, since.body.total, since.body.entry]).toEqual([200, 0, undefined]);
    const vread = await auditor('GET', `${fhir}/AuditEvent/${readEvent.id}/_history/1`);
    expect([vread.status, vread.body]).toEqual([200, readEvent]);
    for (const path of [`${readEvent.id}/_history/2`, `${randomUUID()}/_history`]) {
      expect([path, (await auditor('GET', `${fhir}/AuditEvent/${path}`)).status]).toEqual([
        path,
        404,
      ]);
    }
    // The rights of reading the event: an admin may, a doctor may not.
    expect((await admin('GET', `${fhir}/AuditEvent/${readEvent.id}/_history`)).status).toBe(200);
    expect((await admin('GET', `${fhir}/AuditEvent/${readEvent.id}/_history/1`)).status).toBe(200);
    expect((await doctor('GET', `${fhir}/AuditEvent/${readEvent.id}/_history`)).status).toBe(403);
    expect((await doctor('GET', `${fhir}/AuditEvent/${readEvent.id}/_history/1`)).status).toBe(403);
    // A type history is not offered, and /metadata does not declare one.
    for (const as of [auditor, doctor]) {
      const typeHistory = await as('GET', `${fhir}/AuditEvent/_history`);
      expect(typeHistory.status).toBe(405);
      expect(typeHistory.body.issue[0]).toMatchObject({
        code: 'not-supported',
        diagnostics: expect.stringContaining('GET /fhir/AuditEvent'),
      });
    }
    const metadata = await doctor('GET', `${fhir}/metadata`);
    const declared = metadata.body.rest[0].resource.find((r: any) => r.type === 'AuditEvent');
    expect(declared.interaction.map((i: { code: string }) => i.code)).toEqual([
      'read',
      'vread',
      'history-instance',
      'search-type',
    ]);

    // The same accounting from the admin CLI, which records its own access to the patient.
    const report = await patientReport(id);
    expect(report.code).toBe(0);
    const lines = report.stdout.trim().split('\n');
    expect(lines[0]).toBe(
      'recorded_at\tuser\troles\taction\tresource\toutcome\tstatus\tsource_ip\tbreak_glass',
    );
    expect(lines.slice(1).map((line) => line.split('\t').slice(2, 6))).toEqual([
      ['doctor', 'create:create', `Patient/${id}`, 'success'],
      ['doctor', 'read:read', `Patient/${id}`, 'success'],
      ['auditor', 'search:search-type', 'AuditEvent', 'success'],
      ['auditor', 'search:search-type', 'AuditEvent', 'success'],
      ['admin', 'execute:$audit-trail', `Patient/${id}`, 'success'],
    ]);
    const cliRows = await db.query<{ actor_name: string; subtype: string }[]>(
      `SELECT actor_name, subtype FROM audit_event WHERE source = 'cli' AND $1 = ANY(patient_ids)`,
      [id],
    );
    expect(cliRows).toEqual([
      { actor_name: expect.stringMatching(/^os:/), subtype: 'audit:patient-report' },
    ]);
  });
});
