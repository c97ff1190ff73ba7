import { jest } from '@jest/globals';
import { scopedHttp, tokenFor } from '../support/auth.js';
import {
  buildPatient,
  heartRateObservation as observation,
  patientBinary as binary,
  restrictedLetter,
} from '../support/factories.js';
import { authorizedHttp, type HttpFn, createMany, createResource } from '../support/http.js';
import { createTestApp, type TestApp } from '../support/test-app.js';
import { rowsReadOf, type PlanNode } from '../support/plans.js';
import { DataSource, SelectQueryBuilder } from 'typeorm';
import { ResourceRepository } from '../../src/fhir/resource.repository.js';

/** Versions newer than the patient's own that are all another patient's. */
const OTHERS = 1100;

/**
 * Type and system history for a patient-scoped token: its patient's versions are few among
 * many others', and the SQL leaves the others' out, so that a page is full in one read. Filtered
 * only once read and decrypted, a page read up to 10 times (~900 rows) and still came back
 * short, or empty with a next link.
 */
describe('history for a patient-scoped token', () => {
  let testApp: TestApp;
  let fhir: string;
  let doctor: HttpFn;
  let app: HttpFn;
  const started = new Date(Date.now() - 1000).toISOString();
  const mine: string[] = [];
  let a = '';
  let practitioner = '';

  const create = (body: Record<string, unknown>) => createResource(doctor, fhir, body);

  beforeAll(async () => {
    testApp = await createTestApp();
    fhir = `${testApp.url}/fhir`;
    const doctorToken = await tokenFor(testApp, 'doctor');
    doctor = authorizedHttp(doctorToken);
    a = await create(buildPatient());
    const b = await create(buildPatient());
    for (let i = 0; i < 3; i++) {
      mine.push(await create(observation(a)));
      // A shared record among A's: listed by the system history, as every token sees it.
      if (i === 1) practitioner = await create({ resourceType: 'Practitioner', active: true });
    }
    // A record of A's deleted: none of its versions is listed.
    const deleted = await create(observation(a));
    expect((await doctor('DELETE', `${fhir}/Observation/${deleted}`)).status).toBe(204);
    // A record of A's restricted, and one of A's moved to B: neither is listed.
    const restricted = await create(observation(a));
    const current = (await doctor('GET', `${fhir}/Observation/${restricted}`)).body;
    const labelled = {
      ...current,
      meta: {
        security: [
          { system: 'http://terminology.hl7.org/CodeSystem/v3-Confidentiality', code: 'R' },
        ],
      },
    };
    expect(
      (await doctor('PUT', `${fhir}/Observation/${restricted}`, { body: labelled })).status,
    ).toBe(200);
    const moved = await create(observation(a));
    const body = {
      ...(await doctor('GET', `${fhir}/Observation/${moved}`)).body,
      subject: { reference: `Patient/${b}` },
    };
    expect((await doctor('PUT', `${fhir}/Observation/${moved}`, { body })).status).toBe(200);
    await createMany(doctor, fhir, observation(b), OTHERS);
    app = await scopedHttp(testApp, doctorToken, 'patient/*.rs', a);
  }, 600_000);

  afterAll(async () => {
    await testApp.close();
  });

  it.each([
    ['Observation/_history', '', () => [[mine[2], mine[1]], [mine[0]]]],
    ['_history', '', () => [[mine[2], practitioner], [mine[1], mine[0]], [a]]],
    // Each of A's records is current since `started`: the same pages.
    ['Observation/_history', `&_at=ge${started}`, () => [[mine[2], mine[1]], [mine[0]]]],
  ])('fills each page of %s%s in one read', async (path, also, expected) => {
    const repository = testApp.app.get(ResourceRepository);
    const reads = jest.spyOn(repository, 'historyOfTypes');
    try {
      const pages: (string | undefined)[][] = [];
      let url: string | undefined = `${fhir}/${path}?_since=${started}&_count=2${also}`;
      for (let i = 0; url && i < 5; i++) {
        const res = (await app('GET', url)) as { status: number; body: Record<string, unknown> };
        expect(res.status).toBe(200);
        const entries = (res.body.entry ?? []) as { resource?: { id: string } }[];
        pages.push(entries.map((e) => e.resource?.id));
        url = (res.body.link as { relation: string; url: string }[]).find(
          (l) => l.relation === 'next',
        )?.url;
      }
      expect(url).toBeUndefined();
      expect(pages).toEqual(expected());
      expect(reads).toHaveBeenCalledTimes(pages.length);
    } finally {
      reads.mockRestore();
    }
  });

  it.each(['Observation/_history', '_history'])(
    "reads A's records for %s, not the versions of B's",
    async (path) => {
      // A scan of the versions by time read each of B's, 1,100 and more, before it found A's.
      const rows = await rowsReadByPage(testApp, app, `${fhir}/${path}?_count=2`);
      expect(rows.resource_history).toBeLessThan(100);
    },
  );

  it('fills every page of $everything past what the index placed wrongly', async () => {
    // An index that disagrees with the content (as before a search:reindex) places 50 of B's
    // records in A's compartment: they are read, found not A's, and skipped.
    const db = testApp.app.get(DataSource);
    const misplaced = await db.query<{ id: string }[]>(
      `INSERT INTO search_reference (resource_type, resource_id, param, target_type, target_id)
       SELECT 'Observation', r.id, 'subject', 'Patient', $1 FROM resource r
        WHERE r.resource_type = 'Observation' AND r.last_updated >= $2 AND r.id <> ALL($3)
          AND NOT EXISTS (SELECT 1 FROM search_reference s WHERE s.resource_type = 'Observation'
                           AND s.resource_id = r.id AND s.target_id = $1)
        ORDER BY r.id LIMIT 50
       RETURNING resource_id AS id`,
      [a, started, mine],
    );
    expect(misplaced).toHaveLength(50);
    try {
      const listed: string[] = [];
      const sizes: number[] = [];
      let url: string | undefined = `${fhir}/Patient/${a}/$everything?_count=2`;
      for (let i = 0; url && i < 20; i++) {
        const res = (await app('GET', url)) as { status: number; body: Record<string, unknown> };
        expect(res.status).toBe(200);
        const ids = ((res.body.entry ?? []) as { resource: { id: string } }[]).map(
          (e) => e.resource.id,
        );
        listed.push(...ids);
        sizes.push(ids.length);
        url = (res.body.link as { relation: string; url: string }[]).find(
          (l) => l.relation === 'next',
        )?.url;
      }
      expect(url).toBeUndefined();
      expect([...listed].sort()).toEqual([a, ...mine].sort());
      expect(sizes).toEqual([2, 2]);
    } finally {
      await db.query(
        `DELETE FROM search_reference WHERE target_id = $1 AND resource_id = ANY($2)`,
        [a, misplaced.map((row) => row.id)],
      );
    }
  });
});

/**
 * Rows of each table that the SQL of a history page (historyOfTypes' read, the one that selects
 * each row's cursor) reads, as the repository sent it, run again under EXPLAIN ANALYZE.
 */
async function rowsReadByPage(
  testApp: TestApp,
  as: HttpFn,
  url: string,
): Promise<{ resource_history: number; search_reference: number }> {
  const spy = jest.spyOn(SelectQueryBuilder.prototype, 'getRawAndEntities');
  let builders: SelectQueryBuilder<object>[];
  try {
    expect((await as('GET', url)).status).toBe(200);
    builders = spy.mock.contexts as SelectQueryBuilder<object>[];
  } finally {
    spy.mockRestore();
  }
  const read = builders.filter((builder) =>
    builder.expressionMap.selects.some((select) => select.aliasName === 'h_key'),
  );
  expect(read).toHaveLength(1);
  const [sql, parameters] = read[0]!.getQueryAndParameters();
  const [plan] = await testApp.app
    .get(DataSource)
    .query<{ 'QUERY PLAN': PlanNode[] }[]>(`EXPLAIN (ANALYZE, FORMAT JSON) ${sql}`, parameters);
  const top = plan!['QUERY PLAN'][0]!.Plan;
  return {
    resource_history: rowsReadOf(top, 'resource_history'),
    search_reference: rowsReadOf(top, 'search_reference'),
  };
}

/** The entries' ids and versions of a history page, and its next link. */
async function historyPage(
  as: HttpFn,
  url: string,
): Promise<{ listed: string[]; next: string | undefined }> {
  const res = await as('GET', url);
  expect(res.status).toBe(200);
  const entries = (res.body.entry ?? []) as {
    resource: { id: string; meta: { versionId: string } };
  }[];
  return {
    listed: entries.map((e) => `${e.resource.id}/${e.resource.meta.versionId}`),
    next: (res.body.link as { relation: string; url: string }[]).find((l) => l.relation === 'next')
      ?.url,
  };
}

/** Records of the patient's, many times more than a page (an ICU stay's vital signs). */
const MANY = 1500;

/**
 * Type and system history for a patient-scoped token whose patient has many records: a page
 * reads in proportion to the page, not to the patient's records. It read every record's
 * versions (each of the patient's index rows, then each record's versions by its key) for
 * every page until 2026-12-07: a patient with 60,000 Observations read 60,000 versions and
 * 120,000 index rows for a page of 50 (1.2 s), and 120,000 versions for the page after it.
 */
describe('history for a patient-scoped token of a patient with many records', () => {
  let testApp: TestApp;
  let fhir: string;
  let app: HttpFn;
  let a = '';
  let amended = '';

  beforeAll(async () => {
    testApp = await createTestApp();
    fhir = `${testApp.url}/fhir`;
    const doctorToken = await tokenFor(testApp, 'doctor');
    const doctor = authorizedHttp(doctorToken);
    a = await createResource(doctor, fhir, buildPatient());
    // A result amended twice, its first version among the oldest of A's records.
    amended = await createResource(doctor, fhir, observation(a));
    await createMany(doctor, fhir, observation(a), MANY);
    for (const value of [73, 74]) {
      const current = (await doctor('GET', `${fhir}/Observation/${amended}`)).body;
      const body = { ...current, valueQuantity: { value, unit: '/min' } };
      expect((await doctor('PUT', `${fhir}/Observation/${amended}`, { body })).status).toBe(200);
    }
    app = await scopedHttp(testApp, doctorToken, 'patient/*.rs', a);
  }, 600_000);

  afterAll(async () => {
    await testApp.close();
  });

  // The system history lists Binaries too, found by the records their securityContext names:
  // it still reads the patient's index rows (not their versions) to find them.
  it.each([
    ['Observation/_history', 100],
    ['_history', 2 * MANY + 100],
  ])(
    'reads in proportion to the page for %s, its first page and the next',
    async (path, indexRows) => {
      const first = await historyPage(app, `${fhir}/${path}?_count=2`);
      expect(first.listed).toEqual([`${amended}/3`, `${amended}/2`]);
      for (const url of [`${fhir}/${path}?_count=2`, first.next!]) {
        const rows = await rowsReadByPage(testApp, app, url);
        expect(rows.resource_history).toBeLessThan(100);
        expect(rows.search_reference).toBeLessThan(indexRows);
      }
    },
  );

  it('lists every version of the records once, newest first, paged', async () => {
    const listed: string[] = [];
    let url: string | undefined = `${fhir}/Observation/_history?_count=400`;
    for (let i = 0; url && i < 10; i++) {
      const page = await historyPage(app, url);
      listed.push(...page.listed);
      url = page.next;
    }
    expect(url).toBeUndefined();
    expect(listed).toHaveLength(MANY + 3);
    expect(new Set(listed).size).toBe(MANY + 3);
    expect(listed.slice(0, 2)).toEqual([`${amended}/3`, `${amended}/2`]);
    expect(listed.at(-1)).toBe(`${amended}/1`);
  });
});

/**
 * Paging back through a search whose hidden rows (the patient's Binaries of a restricted letter,
 * which the SQL selects by their context and only the check of each row read leaves out)
 * outnumber what one page reads: a page that stops at the bound empty still leads forward. Its
 * next link was left out (until 2026-12-07), and the client lost its way back to the page it
 * came from.
 */
describe('a search paged backwards past many hidden rows', () => {
  let testApp: TestApp;
  let fhir: string;
  let app: HttpFn;
  const started = new Date(Date.now() - 1000).toISOString();
  const mine: string[] = [];

  beforeAll(async () => {
    testApp = await createTestApp();
    fhir = `${testApp.url}/fhir`;
    const doctorToken = await tokenFor(testApp, 'doctor');
    const doctor = authorizedHttp(doctorToken);
    const create = (body: Record<string, unknown>) => createResource(doctor, fhir, body);
    const a = await create(buildPatient());
    mine.push(await create(binary(a)));
    const letter = await create(restrictedLetter(a));
    const hidden = { ...binary(a), securityContext: { reference: `DocumentReference/${letter}` } };
    await createMany(doctor, fhir, hidden, 1000);
    mine.push(await create(binary(a)));
    app = await scopedHttp(testApp, doctorToken, 'patient/*.rs', a);
  }, 600_000);

  afterAll(async () => {
    await testApp.close();
  });

  const pageAt = async (url: string) => {
    const res = await app('GET', url);
    expect(res.status).toBe(200);
    const link = (relation: string): string | undefined =>
      (res.body.link as { relation: string; url: string }[]).find((l) => l.relation === relation)
        ?.url;
    const listed = ((res.body.entry ?? []) as { resource: { id: string } }[]).map(
      (e) => e.resource.id,
    );
    return { listed, next: link('next'), previous: link('previous') };
  };

  it('leads forward again from a page that stopped empty at the bound', async () => {
    let page = await pageAt(`${fhir}/Binary?_lastUpdated=ge${started}&_sort=_lastUpdated&_count=1`);
    const forward = [page];
    for (let i = 0; page.next && i < 10; i++) {
      page = await pageAt(page.next);
      forward.push(page);
    }
    const last = forward.at(-1)!;
    expect(forward.flatMap((p) => p.listed)).toHaveLength(2);
    expect(last.listed).toHaveLength(1);
    expect(last.previous).toBeDefined();
    const back = await pageAt(last.previous!);
    expect(back.listed).toEqual([]);
    expect(back.previous).toBeDefined();
    expect(back.next).toBeDefined();
    // Forward from it, the client comes back to the record it paged back from, and no other.
    let ahead = await pageAt(back.next!);
    const seen = [...ahead.listed];
    for (let i = 0; ahead.listed.length === 0 && ahead.next && i < 10; i++) {
      ahead = await pageAt(ahead.next);
      seen.push(...ahead.listed);
    }
    expect(seen).toEqual(last.listed);
  });
});
