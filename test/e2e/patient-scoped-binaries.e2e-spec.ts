import { jest } from '@jest/globals';
import { DataSource, SelectQueryBuilder } from 'typeorm';
import { scopedHttp, tokenFor } from '../support/auth.js';
import { buildPatient, patientBinary as binary } from '../support/factories.js';
import { authorizedHttp, type HttpFn, createMany, createResource } from '../support/http.js';
import { createTestApp, type TestApp } from '../support/test-app.js';
import { rowsReadOf, type PlanNode } from '../support/plans.js';
import { ReindexService } from '../../src/fhir/search/reindex.service.js';
import { SearchRepository } from '../../src/fhir/search/search.repository.js';

/** Binaries of another patient's, newer than the patient's own. */
const OTHERS = 300;

const documentReference = (patient: string) => ({
  resourceType: 'DocumentReference',
  status: 'current',
  subject: { reference: `Patient/${patient}` },
  content: [{ attachment: { contentType: 'application/pdf', title: 'Discharge letter' } }],
});

const withContext = (reference: string) => ({
  resourceType: 'Binary',
  contentType: 'text/plain',
  securityContext: { reference },
  data: Buffer.from('a letter').toString('base64'),
});

/**
 * A patient-scoped token's searches and histories of Binaries: a Binary is the patient's
 * through its securityContext (the patient, or a record of theirs), which the SQL follows, so
 * that the other patients' Binaries are never read. Filtered only once read and decrypted,
 * every Binary on the server was read for a page (and past ~900 of them a page came back short).
 */
describe('Binaries for a patient-scoped token', () => {
  let testApp: TestApp;
  let fhir: string;
  let doctor: HttpFn;
  let app: HttpFn;
  const started = new Date(Date.now() - 1000).toISOString();
  const mine: string[] = [];
  let ofDeletedLetter: string;

  const create = (body: Record<string, unknown>) => createResource(doctor, fhir, body);

  beforeAll(async () => {
    testApp = await createTestApp();
    fhir = `${testApp.url}/fhir`;
    const doctorToken = await tokenFor(testApp, 'doctor');
    doctor = authorizedHttp(doctorToken);
    const a = await create(buildPatient());
    const b = await create(buildPatient());
    // A's: one naming A, one naming A's letter; and one naming a letter of A's deleted since,
    // which opens as it was before its deletion but is listed no more, as the letter is not.
    mine.push(await create(binary(a)));
    mine.push(await create(withContext(`DocumentReference/${await create(documentReference(a))}`)));
    const deleted = await create(documentReference(a));
    ofDeletedLetter = await create(withContext(`DocumentReference/${deleted}`));
    expect((await doctor('DELETE', `${fhir}/DocumentReference/${deleted}`)).status).toBe(204);
    // Not A's: one naming a letter filed to A and moved to B since, one naming B's letter.
    const moved = await create(documentReference(a));
    await create(withContext(`DocumentReference/${moved}`));
    const body = {
      ...(await doctor('GET', `${fhir}/DocumentReference/${moved}`)).body,
      subject: { reference: `Patient/${b}` },
    };
    expect((await doctor('PUT', `${fhir}/DocumentReference/${moved}`, { body })).status).toBe(200);
    await create(withContext(`DocumentReference/${await create(documentReference(b))}`));
    // B's documents whose letters were deleted since: never read for A (until 2026-12-07 every
    // one on the server was, for each page).
    for (let i = 0; i < 20; i++) {
      const letter = await create(documentReference(b));
      await create(withContext(`DocumentReference/${letter}`));
      expect((await doctor('DELETE', `${fhir}/DocumentReference/${letter}`)).status).toBe(204);
    }
    await createMany(doctor, fhir, binary(b), OTHERS, 150);
    app = await scopedHttp(testApp, doctorToken, 'patient/*.rs', a);
  }, 600_000);

  afterAll(async () => {
    await testApp.close();
  });

  /** The ids of every page, following next links, and the rows the pages' SQL returned. */
  const pagesOf = async (url: string) => {
    const pages: string[][] = [];
    let next: string | undefined = url;
    for (let i = 0; next && i < 10; i++) {
      const res = (await app('GET', next)) as { status: number; body: Record<string, unknown> };
      expect(res.status).toBe(200);
      const entries = (res.body.entry ?? []) as {
        resource: { resourceType: string; id: string };
      }[];
      pages.push(entries.map((e) => e.resource.id));
      next = (res.body.link as { relation: string; url: string }[]).find(
        (l) => l.relation === 'next',
      )?.url;
    }
    expect(next).toBeUndefined();
    return pages;
  };

  it("lists the patient's Binaries, reading no other patient's", async () => {
    const reads = jest.spyOn(testApp.app.get(SearchRepository), 'page');
    try {
      const pages = await pagesOf(`${fhir}/Binary?_count=1`);
      expect(pages.flat().sort()).toEqual([...mine].sort());
      expect(pages.map((page) => page.length)).toEqual([1, 1]);
      const rows = await Promise.all(reads.mock.results.map((result) => result.value));
      expect(rows.flat().length).toBeLessThan(10);
    } finally {
      reads.mockRestore();
    }
  });

  it('opens a Binary whose context was deleted since, though no list shows it', async () => {
    expect((await app('GET', `${fhir}/Binary/${ofDeletedLetter}`)).status).toBe(200);
    const listed = await pagesOf(`${fhir}/Binary?_count=10`);
    expect(listed.flat()).not.toContain(ofDeletedLetter);
  });

  it('lists every Binary to a token of no patient, as before', async () => {
    const res = await doctor('GET', `${fhir}/Binary?_lastUpdated=ge${started}&_count=1000`);
    expect(res.status).toBe(200);
    expect(((res.body.entry ?? []) as unknown[]).length).toBe(mine.length + 3 + 20 + OTHERS);
  });

  it.each(['Binary/_history', '_history'])(
    "lists the patient's Binaries' versions in %s, reading no other patient's",
    async (path) => {
      const pages = await pagesOf(`${fhir}/${path}?_since=${started}&_count=2`);
      const binaries = new Set(mine);
      const listed = pages.flat().filter((id) => binaries.has(id));
      expect(listed.sort()).toEqual([...mine].sort());
      // The first page's SQL, as the repository sent it, run again under EXPLAIN ANALYZE.
      const spy = jest.spyOn(SelectQueryBuilder.prototype, 'getRawAndEntities');
      let builders: SelectQueryBuilder<object>[];
      try {
        expect((await app('GET', `${fhir}/${path}?_since=${started}&_count=2`)).status).toBe(200);
        builders = spy.mock.contexts as SelectQueryBuilder<object>[];
      } finally {
        spy.mockRestore();
      }
      const read = builders.filter((builder) =>
        builder.expressionMap.selects.some((select) => select.aliasName === 'h_key'),
      );
      const [sql, parameters] = read[0]!.getQueryAndParameters();
      const [plan] = await testApp.app
        .get(DataSource)
        .query<{ 'QUERY PLAN': PlanNode[] }[]>(`EXPLAIN (ANALYZE, FORMAT JSON) ${sql}`, parameters);
      // One read fills the page (a page that read every Binary read 5 times here).
      expect(read).toHaveLength(1);
      expect(rowsReadOf(plan!['QUERY PLAN'][0]!.Plan, 'resource_history')).toBeLessThan(50);
    },
  );

  it('lists a Binary stored before its context was indexed once search:reindex ran', async () => {
    // As stored before index version 4: no row for its securityContext.
    const db = testApp.app.get(DataSource);
    await db.query(
      `DELETE FROM search_reference WHERE resource_type = 'Binary' AND resource_id = $1`,
      [mine[0]],
    );
    const listed = async () =>
      ((await app('GET', `${fhir}/Binary?_count=10`)).body.entry as { resource: { id: string } }[])
        .map((e) => e.resource.id)
        .sort();
    expect(await listed()).toEqual(mine.slice(1).sort());
    await testApp.app.get(ReindexService).reindexAll(() => undefined);
    expect(await listed()).toEqual([...mine].sort());
  });
});
