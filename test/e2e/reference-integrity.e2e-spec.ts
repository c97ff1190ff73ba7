import { randomUUID } from 'node:crypto';
import { getDataSourceToken } from '@nestjs/typeorm';
import { DataSource } from 'typeorm';
import { buildPatient } from '../support/factories.js';
import { tokenFor } from '../support/auth.js';
import { withEnv } from '../support/env.js';
import { authorizedHttp, type HttpFn } from '../support/http.js';
import { neverTheDeadlockVictim, untilWaitingForLock } from '../support/locks.js';
import { createTestApp, type TestApp } from '../support/test-app.js';

/** The audit rows of one request, sent with its own request id. */
async function auditedSend(
  testApp: TestApp,
  http: HttpFn,
  url: string,
  options: Parameters<HttpFn>[2],
): Promise<{ status: number; rows: { patient_ids: string[]; entities: string[] }[] }> {
  const requestId = randomUUID();
  const res = await http('POST', url, {
    ...options,
    headers: { ...options?.headers, 'x-request-id': requestId },
  });
  const rows = await testApp.app
    .get<DataSource>(getDataSourceToken())
    .query<{ patient_ids: string[]; entities: string[] }[]>(
      'SELECT patient_ids, entities FROM audit_event WHERE request_id = $1',
      [requestId],
    );
  return { status: res.status, rows };
}

/** A Binary whose securityContext is `context`: raw bytes with the header, or as JSON. */
const binaries = (context: string): Parameters<HttpFn>[2][] => [
  {
    raw: new Uint8Array([0x25, 0x50, 0x44, 0x46, 0x2d]),
    headers: { 'content-type': 'application/pdf', 'x-security-context': context },
  },
  {
    body: {
      resourceType: 'Binary',
      contentType: 'text/plain',
      securityContext: { reference: context },
      data: 'aGk=',
    },
  },
];

const observation = (patient: string, extra: Record<string, unknown> = {}) => ({
  resourceType: 'Observation',
  status: 'final',
  code: { text: 'Heart rate' },
  subject: { reference: patient },
  ...extra,
});

describe('referential integrity', () => {
  let testApp: TestApp;
  let fhir: string;
  let http: HttpFn;

  beforeAll(async () => {
    testApp = await createTestApp();
    fhir = `${testApp.url}/fhir`;
    http = authorizedHttp(await tokenFor(testApp, 'doctor'));
  });

  afterAll(async () => {
    await testApp.close();
  });

  const createPatient = async (): Promise<string> => {
    const created = await http('POST', `${fhir}/Patient`, { body: buildPatient() });
    expect(created.status).toBe(201);
    return `Patient/${String(created.body.id)}`;
  };
  const referring = async (patient: string): Promise<number> =>
    (await http('GET', `${fhir}/Observation?subject=${patient}&_total=accurate`)).body
      .total as number;

  it('refuses a relative reference to a resource that does not exist, and stores nothing', async () => {
    const missing = `Patient/${randomUUID()}`;
    const res = await http('POST', `${fhir}/Observation`, { body: observation(missing) });
    expect(res.status).toBe(400);
    expect(res.body.resourceType).toBe('OperationOutcome');
    expect(res.body.issue[0].code).toBe('not-found');
    expect(res.body.issue[0].diagnostics).toBe(
      `A reference names a resource that does not exist or was deleted: ${missing}, referred to by Observation (patient, subject). ` +
        'Create it first (in a transaction Bundle, in the same Bundle)',
    );
    expect(await referring(missing)).toBe(0);

    const update = await http('PUT', `${fhir}/Observation/integrity-put`, {
      body: { ...observation(missing), id: 'integrity-put' },
    });
    expect(update.status).toBe(400);
    expect((await http('GET', `${fhir}/Observation/integrity-put`)).status).toBe(404);
  });

  it('refuses a Binary whose securityContext names nothing stored, and names it in no audit row', async () => {
    for (const context of ['Patient/CANMRN778899', 'Patient/Zqx.Name']) {
      for (const options of binaries(context)) {
        const res = await auditedSend(testApp, http, `${fhir}/Binary`, options);
        expect([context, res.status]).toEqual([context, 400]);
        expect(JSON.stringify(res.rows)).not.toContain(context.slice(8));
      }
    }
    const patient = await createPatient();
    for (const options of binaries(patient)) {
      const res = await auditedSend(testApp, http, `${fhir}/Binary`, options);
      expect(res.status).toBe(201);
      expect(res.rows[0]!.patient_ids).toEqual([patient.slice(8)]);
    }
  });

  it('takes references to existing resources, versioned ones, and absolute URLs of other servers', async () => {
    const patient = await createPatient();
    for (const reference of [
      patient,
      `${patient}/_history/1`,
      'https://other.example.org/fhir/Patient/not-here',
    ]) {
      const res = await http('POST', `${fhir}/Observation`, { body: observation(reference) });
      expect(res.status).toBe(201);
    }
    // The same target written both ways in one resource: one index row, still checked.
    const both = {
      ...observation(patient),
      performer: [
        { reference: patient },
        { reference: `https://other.example.org/fhir/${patient}` },
      ],
    };
    expect((await http('POST', `${fhir}/Observation`, { body: both })).status).toBe(201);
    const missing = `Patient/${randomUUID()}`;
    const dangling = {
      ...observation(patient),
      performer: [
        { reference: `https://other.example.org/fhir/${missing}` },
        { reference: missing },
      ],
    };
    expect((await http('POST', `${fhir}/Observation`, { body: dangling })).status).toBe(400);
  });

  it('refuses a versioned reference to a version the resource never had, or its deletion', async () => {
    const patient = await createPatient();
    const id = patient.slice('Patient/'.length);
    const update = { ...buildPatient(), id };
    expect((await http('PUT', `${fhir}/${patient}`, { body: update })).status).toBe(200);
    for (const version of ['3', '9', '0', 'abc']) {
      const reference = `${patient}/_history/${version}`;
      const res = await http('POST', `${fhir}/Observation`, { body: observation(reference) });
      expect([version, res.status, res.body.issue?.[0]?.code]).toEqual([version, 400, 'not-found']);
      expect(res.body.issue[0].diagnostics).toContain(`${reference}, referred to by Observation`);
    }
    for (const version of ['1', '2']) {
      const body = observation(`${patient}/_history/${version}`);
      expect((await http('POST', `${fhir}/Observation`, { body })).status).toBe(201);
    }
    // A Binary's securityContext, which no search parameter indexes, is checked alike.
    for (const [version, status] of [
      ['9', 400],
      ['2', 201],
    ] as const) {
      for (const options of binaries(`${patient}/_history/${version}`)) {
        const res = await http('POST', `${fhir}/Binary`, options);
        expect([version, res.status]).toEqual([version, status]);
      }
    }
    // A version that is a deletion holds no resource: the recreated Group's version 2.
    const group = `group-${randomUUID()}`;
    const groupBody = { resourceType: 'Group', id: group, type: 'person', actual: true };
    expect((await http('PUT', `${fhir}/Group/${group}`, { body: groupBody })).status).toBe(201);
    expect((await http('DELETE', `${fhir}/Group/${group}`)).status).toBe(204);
    expect((await http('PUT', `${fhir}/Group/${group}`, { body: groupBody })).status).toBe(201);
    for (const [version, status] of [
      ['2', 400],
      ['1', 201],
      ['3', 201],
    ] as const) {
      const body = observation(`Group/${group}/_history/${version}`);
      const res = await http('POST', `${fhir}/Observation`, { body });
      expect([version, res.status]).toEqual([version, status]);
    }
  });

  it('refuses a reference to a deleted resource, and a patch that adds a missing one', async () => {
    const patient = await createPatient();
    expect((await http('DELETE', `${fhir}/${patient}`)).status).toBe(204);
    const res = await http('POST', `${fhir}/Observation`, { body: observation(patient) });
    expect(res.status).toBe(400);
    expect(res.body.issue[0].diagnostics).toContain(`${patient}, referred to by`);

    const live = await createPatient();
    const created = await http('POST', `${fhir}/Observation`, { body: observation(live) });
    const patched = await http('PATCH', `${fhir}/Observation/${String(created.body.id)}`, {
      headers: { 'content-type': 'application/json-patch+json' },
      body: [{ op: 'add', path: '/performer', value: [{ reference: 'Practitioner/nobody' }] }],
    });
    expect(patched.status).toBe(400);
    expect(patched.body.issue[0].diagnostics).toContain('Practitioner/nobody');
    const read = await http('GET', `${fhir}/Observation/${String(created.body.id)}`);
    expect(read.body.meta.versionId).toBe('1');
  });

  it('refuses to delete a resource others refer to, and says by what, with no PHI', async () => {
    const patient = await createPatient();
    for (let i = 0; i < 2; i++) {
      await http('POST', `${fhir}/Observation`, { body: observation(patient) });
    }
    const res = await http('DELETE', `${fhir}/${patient}`);
    expect(res.status).toBe(409);
    expect(res.body.issue[0].code).toBe('conflict');
    expect(res.body.issue[0].diagnostics).toBe(
      `${patient} cannot be deleted: 2 resources refer to it (2 Observation by patient, subject). ` +
        'Delete or change those first, or in the same transaction Bundle',
    );
    expect((await http('GET', `${fhir}/${patient}`)).status).toBe(200);

    const [, id] = patient.split('/');
    const conditional = await http('DELETE', `${fhir}/Patient?_id=${id!}`);
    expect(conditional.status).toBe(409);
  });

  it('deletes a resource once what referred to it is gone, or changed', async () => {
    const patient = await createPatient();
    const other = await createPatient();
    const first = await http('POST', `${fhir}/Observation`, { body: observation(patient) });
    const second = await http('POST', `${fhir}/Observation`, { body: observation(patient) });
    expect((await http('DELETE', `${fhir}/Observation/${String(first.body.id)}`)).status).toBe(204);
    const moved = await http('PUT', `${fhir}/Observation/${String(second.body.id)}`, {
      body: { ...second.body, subject: { reference: other } },
    });
    expect(moved.status).toBe(200);
    expect((await http('DELETE', `${fhir}/${patient}`)).status).toBe(204);
  });

  it('checks a transaction as a whole: entries may refer to what a later entry writes', async () => {
    const id = `later-${randomUUID()}`;
    const bundle = {
      resourceType: 'Bundle',
      type: 'transaction',
      entry: [
        // POSTs are written before PUTs: the Observation's target exists only at commit.
        {
          resource: observation(`Patient/${id}`),
          request: { method: 'POST', url: 'Observation' },
        },
        {
          resource: { ...buildPatient(), id },
          request: { method: 'PUT', url: `Patient/${id}` },
        },
      ],
    };
    const res = await http('POST', fhir, { body: bundle });
    expect(res.status).toBe(200);
    expect(res.body.entry.map((e: any) => e.response.status)).toEqual([
      '201 Created',
      '201 Created',
    ]);

    // Deleting the patient and what refers to it together is fine.
    const deleteBoth = await http('POST', fhir, {
      body: {
        resourceType: 'Bundle',
        type: 'transaction',
        entry: [
          { request: { method: 'DELETE', url: `Patient/${id}` } },
          {
            request: {
              method: 'DELETE',
              url: `Observation/${String(res.body.entry[0].resource.id)}`,
            },
          },
        ],
      },
    });
    expect(deleteBoth.status).toBe(200);
  });

  it('rolls back a whole transaction for one dangling reference; a batch fails that entry only', async () => {
    const family = `Dangling${randomUUID().slice(0, 8)}`;
    const missing = `Patient/${randomUUID()}`;
    const entries = [
      {
        fullUrl: 'urn:uuid:7c0b5a5e-9a53-4f55-9a4c-1f2d5b1c0a01',
        resource: buildPatient({ family }),
        request: { method: 'POST', url: 'Patient' },
      },
      { resource: observation(missing), request: { method: 'POST', url: 'Observation' } },
    ];
    const transaction = await http('POST', fhir, {
      body: { resourceType: 'Bundle', type: 'transaction', entry: entries },
    });
    expect(transaction.status).toBe(400);
    expect(transaction.body.issue[0].diagnostics).toContain(missing);
    const found = await http('GET', `${fhir}/Patient?family:exact=${family}&_total=accurate`);
    expect(found.body.total).toBe(0);

    const batch = await http('POST', fhir, {
      body: { resourceType: 'Bundle', type: 'batch', entry: entries },
    });
    expect(batch.status).toBe(200);
    expect(batch.body.entry.map((e: any) => e.response.status)).toEqual(['201 Created', '400']);
  });

  it('never leaves a reference to a resource deleted while others were written', async () => {
    for (let round = 0; round < 18; round++) {
      const patient = await createPatient();
      const creates: Promise<{ status: number }>[] = [];
      let deletion: Promise<{ status: number }> | undefined;
      // The delete goes out at a different point among the creates in each round, or last.
      for (let i = 0; i <= 8; i++) {
        if (i === round % 9) deletion = http('DELETE', `${fhir}/${patient}`);
        if (i < 8)
          creates.push(http('POST', `${fhir}/Observation`, { body: observation(patient) }));
      }
      const statuses = (await Promise.all(creates)).map((r) => r.status);
      const deleted = (await deletion!).status;
      const created = statuses.filter((status) => status === 201).length;
      expect(statuses.every((status) => status === 201 || status === 400)).toBe(true);
      expect([204, 409]).toContain(deleted);
      // Either the delete came first and every create after it was refused, or it came after
      // a create and was refused itself: never a deletion and a reference to it both.
      expect(await referring(patient)).toBe(deleted === 204 ? 0 : created);
      if (deleted === 409) expect(created).toBeGreaterThan(0);
    }
  });

  it('updates a resource that a transaction still open refers to; only a delete waits for it', async () => {
    const [p, q] = [await createPatient(), await createPatient()];
    const row = (reference: string, lock: string) => {
      const [type, id] = reference.split('/');
      return `SELECT 1 FROM resource WHERE resource_type = '${type!}' AND id = '${id!}' ${lock}`;
    };
    // What a transaction Bundle updating P and referring to Q holds until it commits.
    const data = testApp.app.get(DataSource);
    const other = data.createQueryRunner();
    await other.connect();
    // A write that waits for the other session's locks would wait until it commits: give up
    // on it after 15 s rather than hang.
    const within = async <T>(work: Promise<T>): Promise<T | 'still waiting'> => {
      let timer: NodeJS.Timeout | undefined;
      const waiting = new Promise<'still waiting'>((resolve) => {
        timer = setTimeout(resolve, 15_000, 'still waiting');
      });
      try {
        return await Promise.race([work, waiting]);
      } finally {
        clearTimeout(timer);
      }
    };
    try {
      await other.startTransaction();
      await other.query(row(p, 'FOR NO KEY UPDATE'));
      await other.query(row(q, 'FOR KEY SHARE'));
      // Until 2026-12-06 an update locked Q FOR UPDATE and waited for the other to commit;
      // crosswise, two such Bundles deadlocked.
      const current = await http('GET', `${fhir}/${q}`);
      const put = await within(
        http('PUT', `${fhir}/${q}`, { body: { ...current.body, active: false } }),
      );
      expect(put).not.toBe('still waiting');
      expect((put as { status: number }).status).toBe(200);
      const bundle = await within(
        http('POST', fhir, {
          body: {
            resourceType: 'Bundle',
            type: 'transaction',
            entry: [
              { resource: observation(p), request: { method: 'POST', url: 'Observation' } },
              {
                resource: { ...current.body, active: true },
                request: { method: 'PUT', url: q },
              },
            ],
          },
        }),
      );
      expect(bundle).not.toBe('still waiting');
      expect((bundle as { status: number }).status).toBe(200);
      const patched = await within(
        http('PATCH', `${fhir}/${q}`, {
          headers: { 'content-type': 'application/json-patch+json' },
          body: [{ op: 'replace', path: '/active', value: false }],
        }),
      );
      expect((patched as { status: number }).status).toBe(200);

      // A delete of Q still waits for the referrer to commit (it might have referred to Q).
      const observations = await http('GET', `${fhir}/Observation?subject=${p}`);
      for (const entry of observations.body.entry as { resource: { id: string } }[]) {
        expect((await http('DELETE', `${fhir}/Observation/${entry.resource.id}`)).status).toBe(204);
      }
      const deleting = http('DELETE', `${fhir}/${q}`);
      await untilWaitingForLock(data, 'The delete', '%FOR UPDATE%');
      await other.commitTransaction();
      expect((await deleting).status).toBe(204);
    } finally {
      if (other.isTransactionActive) await other.rollbackTransaction();
      await other.release();
    }
  });

  it('answers a deadlock with a 503 to retry, having written nothing', async () => {
    // P is a Group: a reference to a Patient is locked as the write is checked (RetiredPatients),
    // before the Bundle updates Q, so it would wait there, holding nothing this session wants.
    const group = await http('POST', `${fhir}/Group`, {
      body: { resourceType: 'Group', type: 'person', actual: true },
    });
    expect(group.status).toBe(201);
    const [p, q] = [`Group/${String(group.body.id)}`, await createPatient()];
    const row = (reference: string) => {
      const [type, id] = reference.split('/');
      return `SELECT 1 FROM resource WHERE resource_type = '${type!}' AND id = '${id!}' FOR UPDATE`;
    };
    const data = testApp.app.get(DataSource);
    const other = data.createQueryRunner();
    await other.connect();
    try {
      await other.startTransaction();
      await neverTheDeadlockVictim(other);
      await other.query(row(p));
      // The Bundle updates Q, then waits at commit for P (a reference it checks)...
      const before = await http('GET', `${fhir}/${q}`);
      const response = http('POST', fhir, {
        body: {
          resourceType: 'Bundle',
          type: 'transaction',
          entry: [
            { resource: observation(p), request: { method: 'POST', url: 'Observation' } },
            {
              resource: { ...before.body, active: false },
              request: { method: 'PUT', url: q },
            },
          ],
        },
      });
      await untilWaitingForLock(data, 'The Bundle', '%FOR KEY SHARE%');
      // ...while this session, holding P, asks for Q: PostgreSQL ends the Bundle's transaction,
      // which waited first, once its deadlock_timeout (1 s) passes.
      const blocked = other.query(row(q));
      const res = await response;
      await blocked;
      expect(res.status).toBe(503);
      expect(res.headers.get('retry-after')).toBe('5');
      expect(res.body.issue[0]).toMatchObject({ code: 'transient' });
      expect(res.body.issue[0].diagnostics).toContain('deadlock');
      expect((await http('GET', `${fhir}/${q}`)).body.meta.versionId).toBe('1');
      expect(await referring(p)).toBe(0);
    } finally {
      await other.rollbackTransaction();
      await other.release();
    }
  });
});

describe('referential integrity switched off (FHIR_REFERENTIAL_INTEGRITY=false)', () => {
  let testApp: TestApp;
  let restoreEnv: () => void;

  beforeAll(async () => {
    restoreEnv = withEnv({ FHIR_REFERENTIAL_INTEGRITY: 'false' });
    testApp = await createTestApp();
  });

  afterAll(async () => {
    await testApp.close();
    restoreEnv();
  });

  it('stores dangling references and deletes what others refer to, and says so in metadata', async () => {
    const http = authorizedHttp(await tokenFor(testApp, 'doctor'));
    const fhir = `${testApp.url}/fhir`;
    const later = `Patient/${randomUUID()}`;
    expect((await http('POST', `${fhir}/Observation`, { body: observation(later) })).status).toBe(
      201,
    );
    const patient = await http('POST', `${fhir}/Patient`, { body: buildPatient() });
    await http('POST', `${fhir}/Observation`, {
      body: observation(`Patient/${String(patient.body.id)}`),
    });
    expect((await http('DELETE', `${fhir}/Patient/${String(patient.body.id)}`)).status).toBe(204);
    const metadata = await http('GET', `${fhir}/metadata`);
    expect(metadata.body.rest[0].resource[0].referencePolicy).toEqual(['literal', 'logical']);
  });

  it('stores a Binary whose securityContext names nothing stored, naming no patient in its row', async () => {
    const http = authorizedHttp(await tokenFor(testApp, 'doctor'));
    for (const options of binaries('Patient/CANMRN778899')) {
      const res = await auditedSend(testApp, http, `${testApp.url}/fhir/Binary`, options);
      expect(res.status).toBe(201);
      expect(res.rows).toMatchObject([{ patient_ids: [] }]);
      expect(JSON.stringify(res.rows)).not.toContain('CANMRN778899');
    }
    // A context never stored opens to no one rather than to all.
    const [raw] = binaries(`DocumentReference/${randomUUID()}`);
    const stored = await http('POST', `${testApp.url}/fhir/Binary`, raw);
    expect(stored.status).toBe(201);
    const read = await http('GET', `${testApp.url}/fhir/Binary/${String(stored.body.id)}`, {
      headers: { accept: 'application/fhir+json' },
    });
    expect(read.status).toBe(403);
  });
});
