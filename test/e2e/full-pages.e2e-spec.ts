import {
  buildPatient,
  heartRateObservation as observation,
  patientBinary as binary,
  restrictedLetter,
} from '../support/factories.js';
import { scopedHttp, tokenFor } from '../support/auth.js';
import { authorizedHttp, type HttpFn, createResource } from '../support/http.js';
import { createTestApp, type TestApp } from '../support/test-app.js';

interface Page {
  listed: string[];
  next?: string;
  previous?: string;
  total?: number;
}

/**
 * A page a client pages through is full: what the caller may not see (another patient's Binary
 * or versions, filtered once read) is skipped while reading, so a page with a next link holds
 * `_count` entries. A short or empty page with a next link stopped clients that end at an empty
 * page, and told how many hidden records there were (`_count` minus the entries).
 */
describe('full pages', () => {
  let testApp: TestApp;
  let fhir: string;
  let doctor: HttpFn;
  let app: HttpFn;
  const started = new Date(Date.now() - 1000).toISOString();
  const ids = { a: '', b: '', mine: [] as string[], misfiled: '' };

  const create = (body: Record<string, unknown>) => createResource(doctor, fhir, body);
  const fileUnder = async (id: string, patient: string): Promise<void> => {
    const current = (await doctor('GET', `${fhir}/Observation/${id}`)).body;
    const body = { ...current, subject: { reference: `Patient/${patient}` } };
    expect((await doctor('PUT', `${fhir}/Observation/${id}`, { body })).status).toBe(200);
  };
  const pageAt = async (as: HttpFn, url: string): Promise<Page> => {
    const res = await as('GET', url);
    expect(res.status).toBe(200);
    const link = (relation: string): string | undefined =>
      (res.body.link as { relation: string; url: string }[] | undefined)?.find(
        (l) => l.relation === relation,
      )?.url;
    const entries = (res.body.entry ?? []) as {
      fullUrl?: string;
      search?: { mode: string };
      response?: { etag: string };
    }[];
    return {
      listed: entries
        .filter((e) => e.search === undefined || e.search.mode === 'match')
        .map((e) => `${e.fullUrl!.split('/').pop()!}${e.response ? `@${e.response.etag}` : ''}`),
      ...(link('next') ? { next: link('next') } : {}),
      ...(link('previous') ? { previous: link('previous') } : {}),
      ...(typeof res.body.total === 'number' ? { total: res.body.total as number } : {}),
    };
  };
  /** Every page following `relation` links from `path`. */
  const follow = async (as: HttpFn, url: string, relation: 'next' | 'previous') => {
    const pages: Page[] = [];
    let at: string | undefined = url;
    for (let i = 0; at && i < 50; i++) {
      const page = await pageAt(as, at);
      pages.push(page);
      at = page[relation];
    }
    return pages;
  };
  const sizes = (pages: Page[]) => pages.map((page) => page.listed.length);

  beforeAll(async () => {
    testApp = await createTestApp();
    fhir = `${testApp.url}/fhir`;
    const doctorToken = await tokenFor(testApp, 'doctor');
    doctor = authorizedHttp(doctorToken);
    ids.a = await create(buildPatient());
    ids.b = await create(buildPatient());
    // Three of patient A's, each behind two hidden ones, in every order a page reads. The
    // hidden Binaries name a restricted letter of A's: the SQL selects them, the read does not.
    const letter = await create(restrictedLetter(ids.a));
    const hiddenBinary = {
      ...binary(ids.a),
      securityContext: { reference: `DocumentReference/${letter}` },
    };
    for (let i = 0; i < 3; i++) {
      await create(hiddenBinary);
      await create(hiddenBinary);
      ids.mine.push(await create(binary(ids.a)));
      await create(observation(ids.b));
      await create(observation(ids.b));
      ids.mine.push(await create(observation(ids.a)));
    }
    // A result filed under B twice, then back under A: versions 2 and 3 are not A's.
    ids.misfiled = await create(observation(ids.a));
    await fileUnder(ids.misfiled, ids.b);
    const current = (await doctor('GET', `${fhir}/Observation/${ids.misfiled}`)).body;
    expect(
      (
        await doctor('PUT', `${fhir}/Observation/${ids.misfiled}`, {
          body: { ...current, status: 'amended' },
        })
      ).status,
    ).toBe(200);
    await fileUnder(ids.misfiled, ids.a);
    app = await scopedHttp(testApp, doctorToken, 'patient/*.rs', ids.a);
  });

  afterAll(async () => {
    await testApp.close();
  });

  it.each([
    `Binary?_lastUpdated=ge${started}&_count=2`,
    `Binary?_lastUpdated=ge${started}&_count=1&_sort=-_lastUpdated`,
    `Observation/_history?_since=${started}&_count=2`,
    `_history?_since=${started}&_count=2`,
    `Binary/_history?_since=${started}&_count=1`,
  ])('fills every page of %s that has a next link', async (path) => {
    const count = Number(new URL(`${fhir}/${path}`).searchParams.get('_count'));
    const pages = await follow(app, `${fhir}/${path}`, 'next');
    const whole = await pageAt(app, `${fhir}/${path.replace(/_count=\d/, '_count=500')}`);
    expect(whole.listed.length).toBeGreaterThanOrEqual(3);
    expect(pages.flatMap((page) => page.listed)).toEqual(whole.listed);
    // Full pages, the last one not empty: no page but the last is short.
    const expected = pages.map((_, i) =>
      i < pages.length - 1 ? count : whole.listed.length - count * (pages.length - 1),
    );
    expect(sizes(pages)).toEqual(expected);
    expect(sizes(pages).at(-1)).toBeGreaterThan(0);
  });

  it('fills every page back along previous links', async () => {
    const path = `${fhir}/Binary?_lastUpdated=ge${started}&_count=1`;
    const forward = await follow(app, path, 'next');
    const last = forward.at(-1)!;
    expect(last.previous).toBeDefined();
    const backwards = await follow(app, last.previous!, 'previous');
    expect(backwards.flatMap((page) => page.listed).reverse()).toEqual(
      forward.slice(0, -1).flatMap((page) => page.listed),
    );
    expect(sizes(backwards).every((size) => size === 1)).toBe(true);
  });

  it("fills a record's history paged past versions filed under another patient, and counts only those shown", async () => {
    const path = `${fhir}/Observation/${ids.misfiled}/_history?_count=1`;
    const pages = await follow(app, path, 'next');
    const listed = pages.flatMap((page) => page.listed);
    expect(listed).toEqual([`${ids.misfiled}@W/"4"`, `${ids.misfiled}@W/"1"`]);
    expect(sizes(pages)).toEqual([1, 1]);
    // Four versions, two of them shown: a total of 4 told of the two hidden.
    for (const page of pages) expect([undefined, 2]).toContain(page.total);
    // A clinician sees the four.
    const all = await follow(doctor, path, 'next');
    expect(all.flatMap((page) => page.listed)).toHaveLength(4);
    expect(all[0]!.total).toBe(4);
  });
});
