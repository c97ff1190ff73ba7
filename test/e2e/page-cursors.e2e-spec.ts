import { jest } from '@jest/globals';
import {
  buildPatient,
  heartRateObservation as observation,
  patientBinary as binary,
  restrictedLetter,
} from '../support/factories.js';
import type { AuthenticatedUser } from '../../src/auth/authenticated-user.js';
import { CURSOR_TTL_MS, PageCursors } from '../../src/fhir/cursor.js';
import { createUser, login, scopedHttp, tokenFor } from '../support/auth.js';
import { authorizedHttp, type HttpFn, createResource } from '../support/http.js';
import { createTestApp, type TestApp } from '../support/test-app.js';

/**
 * What a page's links tell: a next link's `_cursor` holds the keys of the last row read, which
 * the caller may not have been shown (another patient's, a restricted record). It is sealed:
 * nothing in it is readable, and it opens only for the user it was issued to.
 */
describe('page cursors', () => {
  let testApp: TestApp;
  let fhir: string;
  let doctor: HttpFn;
  let app: HttpFn;
  const started = new Date(Date.now() - 1000).toISOString();
  const ids = { a: '', b: '', mine: [] as string[], theirs: [] as string[] };

  const create = (body: Record<string, unknown>) => createResource(doctor, fhir, body);
  const nextOf = (body: { link?: { relation: string; url: string }[] }) =>
    body.link?.find((link) => link.relation === 'next')?.url;
  /** Every page from `path` on: the ids listed and the `_cursor` of each next link. */
  const pages = async (as: HttpFn, path: string) => {
    const listed: string[] = [];
    const cursors: string[] = [];
    let url: string | undefined = `${fhir}/${path}`;
    for (let page = 0; url && page < 50; page++) {
      const res = await as('GET', url);
      expect(res.status).toBe(200);
      for (const entry of (res.body.entry ?? []) as { fullUrl?: string }[]) {
        if (entry.fullUrl) listed.push(entry.fullUrl.split('/').pop()!);
      }
      url = nextOf(res.body);
      if (url) cursors.push(new URL(url).searchParams.get('_cursor')!);
    }
    return { listed, cursors };
  };
  /** The cursor as text, and as the base64url it was until 2026-12-07. */
  const readings = (cursor: string) => [cursor, Buffer.from(cursor, 'base64url').toString()];

  beforeAll(async () => {
    testApp = await createTestApp();
    fhir = `${testApp.url}/fhir`;
    const doctorToken = await tokenFor(testApp, 'doctor');
    doctor = authorizedHttp(doctorToken);
    ids.a = await create(buildPatient());
    ids.b = await create(buildPatient());
    ids.mine.push(await create(observation(ids.a)));
    ids.theirs.push(await create(observation(ids.b)));
    ids.theirs.push(await create(observation(ids.b)));
    ids.mine.push(await create(binary(ids.a)));
    // Hidden Binaries: they name a restricted letter of A's, which the SQL selects them by and the
    // check of each row read leaves out (no break-glass).
    const letter = await create(restrictedLetter(ids.a));
    const hiddenBinary = {
      ...binary(ids.a),
      securityContext: { reference: `DocumentReference/${letter}` },
    };
    ids.theirs.push(await create(hiddenBinary));
    ids.theirs.push(await create(hiddenBinary));
    // One more of each after theirs: pages of one have next links past them.
    ids.mine.push(await create(observation(ids.a)));
    ids.mine.push(await create(binary(ids.a)));
    app = await scopedHttp(testApp, doctorToken, 'patient/*.rs', ids.a);
  });

  afterAll(async () => {
    await testApp.close();
  });

  it.each([
    `Observation/_history?_since=${started}&_count=1`,
    `_history?_since=${started}&_count=1`,
    `Binary/_history?_since=${started}&_count=1`,
    `Binary?_lastUpdated=ge${started}&_count=1`,
  ])("names none of another patient's records in the cursors of %s", async (path) => {
    const { listed, cursors } = await pages(app, path);
    for (const id of ids.theirs) expect(listed).not.toContain(id);
    expect(cursors.length).toBeGreaterThan(0);
    for (const cursor of cursors) {
      for (const text of readings(cursor)) {
        for (const id of ids.theirs) expect(text).not.toContain(id);
        expect(text).not.toMatch(/versionId|lastUpdated|"k"/);
      }
    }
    // Paged one by one, the list is the one a single page gives.
    const whole = await pages(app, path.replace('_count=1', '_count=500'));
    expect(listed).toEqual(whole.listed);
  });

  it('opens a cursor only for the user it was issued to', async () => {
    const colleague = authorizedHttp(await tokenFor(testApp, 'doctor'));
    for (const path of [
      `Observation/_history?_since=${started}&_count=1`,
      `Observation?_count=1`,
    ]) {
      const next = nextOf((await doctor('GET', `${fhir}/${path}`)).body)!;
      expect((await doctor('GET', next)).status).toBe(200);
      const res = await colleague('GET', next);
      expect(res.status).toBe(400);
      expect(res.body.issue[0].diagnostics).toContain('follow the Bundle links');
    }
  });

  it('opens a cursor only in the sign-in session it was issued in', async () => {
    const user = await createUser(testApp, ['doctor']);
    const first = authorizedHttp((await login(testApp, user)).access_token);
    const second = authorizedHttp((await login(testApp, user)).access_token);
    for (const path of [
      `Observation/_history?_since=${started}&_count=1`,
      `Observation?_count=1`,
    ]) {
      const next = nextOf((await first('GET', `${fhir}/${path}`)).body)!;
      expect((await first('GET', next)).status).toBe(200);
      const res = await second('GET', next);
      expect({ path, status: res.status }).toEqual({ path, status: 400 });
      expect(res.body.issue[0].diagnostics).toContain('follow the Bundle links');
    }
  });

  it('answers 410 to a cursor past its lifetime, naming what to do', async () => {
    const token = await tokenFor(testApp, 'doctor');
    const claims = JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString()) as {
      sub: string;
      sid?: string;
    };
    const user = { id: claims.sub, ...(claims.sid ? { sessionId: claims.sid } : {}) };
    const sealedAt = (at: number, list: string, cursor: unknown): string => {
      const clock = jest.spyOn(Date, 'now').mockReturnValue(at);
      try {
        return testApp.app
          .get(PageCursors)
          .for(user as AuthenticatedUser, list)
          .seal(cursor);
      } finally {
        clock.mockRestore();
      }
    };
    const as = authorizedHttp(token);
    // A next link as the server made it, of a search and of a history.
    const search = nextOf((await as('GET', `${fhir}/Observation?_count=1`)).body)!;
    const history = nextOf(
      (await as('GET', `${fhir}/Observation/_history?_since=${started}&_count=1`)).body,
    )!;
    const open = (url: string) =>
      testApp.app
        .get(PageCursors)
        .for(user as AuthenticatedUser, url.includes('_history') ? 'history' : 'search')
        .open(new URL(url).searchParams.get('_cursor')!);
    for (const url of [search, history]) {
      const list = url.includes('_history') ? 'history' : 'search';
      const cursor = open(url);
      const fresh = new URL(url);
      fresh.searchParams.set('_cursor', sealedAt(Date.now() - 60_000, list, cursor));
      expect((await as('GET', fresh.toString())).status).toBe(200);
      const stale = new URL(url);
      stale.searchParams.set('_cursor', sealedAt(Date.now() - CURSOR_TTL_MS - 1000, list, cursor));
      const res = await as('GET', stale.toString());
      expect({ list, status: res.status }).toEqual({ list, status: 410 });
      expect(res.body.resourceType).toBe('OperationOutcome');
      expect(res.body.issue[0].diagnostics).toMatch(/expired.*first page/i);
    }
  });

  it('refuses a cursor of the earlier kind, JSON in base64url, with a 400', async () => {
    const plain = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');
    const observationId = ids.theirs[0]!;
    for (const path of [
      `Observation/_history?_cursor=${plain({ lastUpdated: started, type: 'Observation', id: observationId, versionId: 1 })}`,
      `Observation/${observationId}/_history?_cursor=${plain({ type: 'Observation', id: observationId, versionId: 2 })}`,
      `Observation?_cursor=${plain({ d: 'n', k: [started, observationId] })}`,
    ]) {
      const res = await doctor('GET', `${fhir}/${path}`);
      expect({ path, status: res.status }).toEqual({ path, status: 400 });
      expect(res.body.issue[0].diagnostics).toContain('follow the Bundle links');
    }
  });
  it('says on every page of a _lastUpdated poll the instant its first page was complete up to', async () => {
    // Three Observations of a code of their own, paged one by one in id order.
    const code = `poll-${Date.now()}`;
    const body = { ...observation(ids.a), code: { coding: [{ system: 'urn:test', code }] } };
    const made = [await create(body), await create(body), await create(body)].sort();
    const first = await doctor(
      'GET',
      `${fhir}/Observation?code=urn:test|${code}&_lastUpdated=ge${started}&_sort=_id&_count=1`,
    );
    expect(first.status).toBe(200);
    expect(first.body.entry[0].resource.id).toBe(made[0]);
    // The first one changes while the client pages: behind its cursor, on no later page.
    const current = (await doctor('GET', `${fhir}/Observation/${made[0]}`)).body;
    const updated = await doctor('PUT', `${fhir}/Observation/${made[0]}`, {
      body: { ...current, status: 'amended' },
    });
    expect(updated.status).toBe(200);
    let page = first;
    const seen = [made[0]];
    while (nextOf(page.body)) {
      page = await doctor('GET', nextOf(page.body)!);
      expect(page.status).toBe(200);
      seen.push(...(page.body.entry ?? []).map((e: { resource: { id: string } }) => e.resource.id));
      expect(page.body.meta.lastUpdated).toBe(first.body.meta.lastUpdated);
    }
    expect(seen).toEqual(made);
    // The next poll, from the last page's lastUpdated, finds the change.
    const poll = await doctor(
      'GET',
      `${fhir}/Observation?code=urn:test|${code}&_lastUpdated=ge${page.body.meta.lastUpdated}`,
    );
    expect(poll.body.entry.map((e: { resource: { id: string } }) => e.resource.id)).toContain(
      made[0],
    );
  });
});
