import { randomUUID } from 'node:crypto';
import { DataSource } from 'typeorm';
import { buildPatient } from '../support/factories.js';
import type { HttpFn } from '../support/http.js';
import { doctorApp } from '../support/doctor-app.js';
import type { TestApp } from '../support/test-app.js';
import { queriesWhere } from '../support/queries.js';

const MRN = 'urn:oid:1.2.36.146.595.217.0.1';

/**
 * A transaction's conditional creates of one type, once written, are checked twice: each
 * against its own criteria (it must be what they find) and against the others' (two entries
 * must not make one patient twice). What each check answers, and which error a Bundle failing
 * both gets, and how many searches they cost.
 */
describe('transaction Bundles: conditional creates checked once written', () => {
  let testApp: TestApp;
  let http: HttpFn;
  let fhir: string;
  let db: DataSource;

  beforeAll(async () => {
    ({ testApp, http, fhir } = await doctorApp());
    db = testApp.app.get(DataSource);
  });

  afterAll(async () => {
    await testApp.close();
  });

  const total = async (query: string): Promise<number> =>
    (await http('GET', `${fhir}/${query}&_total=accurate`)).body.total as number;

  const create = (mrn: string, ifNoneExist: string) => ({
    fullUrl: `urn:uuid:${randomUUID()}`,
    resource: buildPatient({ mrn }),
    request: { method: 'POST', url: 'Patient', ifNoneExist },
  });
  const transaction = (entry: unknown[]) => ({
    resourceType: 'Bundle',
    type: 'transaction',
    entry,
  });

  /**
   * Counts the searches of conditional criteria (SearchRepository.ids, with or without its
   * candidates) that `work` sends, at node-postgres's client, where prepared statements go.
   */
  const criteriaSearches = async (work: () => Promise<void>): Promise<number> =>
    (
      await queriesWhere(
        db,
        (text) =>
          /^SELECT (m\.id FROM|r\.id FROM resource r WHERE)/.test(text) &&
          /ORDER BY [mr]\.id LIMIT [1-9]\d*$/.test(text),
        work,
      )
    ).length;

  it('searches the criteria of each of several conditional creates of a type twice: before and once written', async () => {
    const mrns = [0, 1, 2].map((n) => `CC${n}-${randomUUID()}`);
    let status = 0;
    const searches = await criteriaSearches(async () => {
      const res = await http('POST', fhir, {
        body: transaction(mrns.map((mrn) => create(mrn, `identifier=${MRN}|${mrn}`))),
      });
      status = res.status;
    });
    expect(status).toBe(200);
    // Before any write (is there a match?), then once written (the entry's own, which also
    // tells whether another entry made what its criteria describe).
    expect(searches).toBe(2 * mrns.length);
    for (const mrn of mrns) expect(await total(`Patient?identifier=${MRN}|${mrn}`)).toBe(1);
  });

  it('answers 400 for an entry its own criteria do not find, even when another entry matches them too', async () => {
    // Entry A stores MRN a under criteria for b; entry B stores a too, under criteria for a, so
    // B's criteria also find A's record: both checks fail, and the entry's own error wins.
    for (const order of [0, 1]) {
      const a = `OWN${order}-${randomUUID()}`;
      const b = `OTHER${order}-${randomUUID()}`;
      const entries = [create(a, `identifier=${MRN}|${b}`), create(a, `identifier=${a}`)];
      if (order === 1) entries.reverse();
      const res = await http('POST', fhir, { body: transaction(entries) });
      expect(res.status).toBe(400);
      const diagnostics = res.body.issue[0].diagnostics as string;
      expect(diagnostics).toMatch(
        new RegExp(
          `^Bundle\\.entry\\[${order}\\]: The Patient sent does not match its own conditional criteria \\(identifier\\)`,
        ),
      );
      expect(res.text).not.toContain(a);
      expect(res.text).not.toContain(b);
      expect(await total(`Patient?identifier=${MRN}|${a}`)).toBe(0);
    }
  });

  it('answers 412 naming both entries when each matches its own criteria and one also the other', async () => {
    const mrn = `BOTH-${randomUUID()}`;
    const res = await http('POST', fhir, {
      body: transaction([
        create(mrn, `identifier=${MRN}|${mrn}`),
        create(mrn, `identifier=${mrn}`),
      ]),
    });
    expect(res.status).toBe(412);
    expect(res.body.issue[0].diagnostics).toMatch(
      /^Bundle\.entry\[0\]: its conditional criteria also match the Patient that Bundle\.entry\[1\] creates/,
    );
    expect(res.text).not.toContain(mrn);
    expect(await total(`Patient?identifier=${MRN}|${mrn}`)).toBe(0);
  });

  it('creates what its criteria find when updates in the Bundle make more records match than the search takes', async () => {
    // Three records updated to the MRN sort before any created id: a search of the MRN taking
    // three (the Bundle creates two Patients, and the search takes one more) may not hold the
    // created one, which must not be taken for a record its criteria do not find.
    const mrn = `MANY-${randomUUID()}`;
    const ids = [0, 1, 2].map((n) => `0000000${n}-${randomUUID()}`);
    for (const id of ids) {
      const res = await http('PUT', `${fhir}/Patient/${id}`, { body: { ...buildPatient(), id } });
      expect(res.status).toBe(201);
    }
    const res = await http('POST', fhir, {
      body: transaction([
        create(mrn, `identifier=${MRN}|${mrn}`),
        create(`${mrn}-B`, `identifier=${MRN}|${mrn}-B`),
        ...ids.map((id) => ({
          resource: { ...buildPatient({ mrn }), id },
          request: { method: 'PUT', url: `Patient/${id}` },
        })),
      ]),
    });
    expect(res.status).toBe(200);
    expect(
      (res.body.entry as { response: { status: string } }[]).map((e) =>
        e.response.status.slice(0, 3),
      ),
    ).toEqual(['201', '201', '200', '200', '200']);
    expect(await total(`Patient?identifier=${MRN}|${mrn}`)).toBe(4);
  });
});
