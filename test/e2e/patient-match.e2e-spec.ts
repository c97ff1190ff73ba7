import { randomUUID } from 'node:crypto';
import { getDataSourceToken } from '@nestjs/typeorm';
import type { DataSource } from 'typeorm';
import { tokenFor } from '../support/auth.js';
import { authorizedHttp, type HttpFn } from '../support/http.js';
import { createTestApp, type TestApp } from '../support/test-app.js';

const MRN = 'urn:oid:2.16.840.1.113883.19.5';
const MATCH_GRADE = 'http://hl7.org/fhir/StructureDefinition/match-grade';

describe('Patient/$match', () => {
  let testApp: TestApp;
  let db: DataSource;
  let doctor: HttpFn;
  let fhir: string;
  const run = randomUUID().slice(0, 8);
  const family = `Álvarez-${run}`;
  const mrn = `M-${run}`;
  const ids: Record<string, string> = {};

  const parameters = (patient: Record<string, unknown>, extra: Record<string, unknown>[] = []) => ({
    resourceType: 'Parameters',
    parameter: [{ name: 'resource', resource: { resourceType: 'Patient', ...patient } }, ...extra],
  });
  const match = (body: unknown, as: HttpFn = doctor) =>
    as('POST', `${fhir}/Patient/$match`, {
      body,
      headers: { 'x-request-id': randomUUID() },
    });
  const graded = (bundle: {
    entry?: {
      resource: { id: string };
      search: { score: number; extension: { valueCode: string }[] };
    }[];
  }) =>
    (bundle.entry ?? []).map((entry) => [
      Object.keys(ids).find((key) => ids[key] === entry.resource.id),
      entry.search.score,
      entry.search.extension[0]!.valueCode,
    ]);
  const create = async (patient: Record<string, unknown>): Promise<string> => {
    const res = await doctor('POST', `${fhir}/Patient`, {
      body: { resourceType: 'Patient', ...patient },
    });
    expect(res.status).toBe(201);
    return res.body.id as string;
  };

  beforeAll(async () => {
    testApp = await createTestApp();
    fhir = `${testApp.url}/fhir`;
    db = testApp.app.get<DataSource>(getDataSourceToken());
    doctor = authorizedHttp(await tokenFor(testApp, 'doctor'));
    const ana = { name: [{ family, given: ['Ana'] }], birthDate: '1980-04-02', gender: 'female' };
    ids['registered'] = await create({ ...ana, identifier: [{ system: MRN, value: mrn }] });
    // The same person registered again elsewhere, without the MRN: a duplicate to find.
    ids['duplicate'] = await create({
      ...ana,
      telecom: [{ system: 'phone', value: '555-010-7788' }],
    });
    // Another Ana of that name and birth date, with an MRN of her own: not her.
    ids['namesake'] = await create({ ...ana, identifier: [{ system: MRN, value: `${mrn}-2` }] });
    ids['restricted'] = await create({
      ...ana,
      meta: {
        security: [
          { system: 'http://terminology.hl7.org/CodeSystem/v3-Confidentiality', code: 'R' },
        ],
      },
    });
  });

  afterAll(async () => {
    await testApp.close();
  });

  it('finds the patient by identifier as certain, and likely duplicates by name and birth date', async () => {
    const res = await match(
      parameters({
        identifier: [{ system: MRN, value: mrn }],
        name: [{ family: family.toUpperCase().replace('Á', 'A'), given: ['ana'] }],
        birthDate: '1980-04-02',
        gender: 'female',
      }),
    );
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ resourceType: 'Bundle', type: 'searchset', total: 2 });
    expect(res.body.entry[0].search.extension[0].url).toBe(MATCH_GRADE);
    // The namesake with another MRN of the same system is not offered; the restricted one never is.
    expect(graded(res.body)).toEqual([
      ['registered', 1, 'certain'],
      ['duplicate', 0.85, 'probable'],
    ]);
    expect(res.body.entry[0].search.mode).toBe('match');

    // Only what was returned is recorded as disclosed.
    const [row] = await db.query<{ patient_ids: string[]; subtype: string }[]>(
      `SELECT patient_ids, subtype FROM audit_event WHERE request_id = $1`,
      [res.headers.get('x-request-id')],
    );
    expect(row!.subtype).toBe('$match');
    expect([...row!.patient_ids].sort()).toEqual([ids['registered'], ids['duplicate']].sort());
  });

  it('takes onlyCertainMatches and count, and a phone as a way in', async () => {
    const certain = await match(
      parameters(
        { identifier: [{ system: MRN, value: mrn }], name: [{ family }], birthDate: '1980-04-02' },
        [{ name: 'onlyCertainMatches', valueBoolean: true }],
      ),
    );
    expect(graded(certain.body)).toEqual([['registered', 1, 'certain']]);
    const byPhone = await match(
      parameters(
        {
          name: [{ given: ['Ana'] }],
          birthDate: '1980-04-02',
          telecom: [{ system: 'phone', value: '(555) 010 7788' }],
        },
        [{ name: 'count', valueInteger: 1 }],
      ),
    );
    expect(graded(byPhone.body)).toEqual([['duplicate', 0.6, 'possible']]);
  });

  it('answers with the survivor of a merge, never the record it replaced', async () => {
    const bea = { birthDate: '1975-09-30', gender: 'female' };
    ids['survivor'] = await create({
      ...bea,
      name: [{ family: `Berg-${run}`, given: ['Bea'] }],
      identifier: [{ system: MRN, value: `${mrn}-S` }],
    });
    // The duplicate, misspelt as duplicates often are, merged into the survivor.
    ids['merged'] = await create({
      ...bea,
      name: [{ family: `Burg-${run}`, given: ['Bea'] }],
      active: false,
      link: [{ other: { reference: `Patient/${ids['survivor']}` }, type: 'replaced-by' }],
    });
    const described = (family: string) =>
      parameters({ ...bea, name: [{ family, given: ['Bea'] }] });
    // Described as the merged record knew her: it is the survivor that is offered.
    const byMerged = await match(described(`Burg-${run}`));
    expect(graded(byMerged.body)).toEqual([['survivor', 0.85, 'probable']]);
    expect(byMerged.body.total).toBe(1);
    // Both records of her name: the survivor once.
    const both = await match(
      parameters({
        ...bea,
        name: [{ given: ['Bea'] }],
        identifier: [{ system: MRN, value: `${mrn}-S` }],
      }),
    );
    expect(graded(both.body).map(([who]) => who)).toEqual(['survivor']);
  });

  it('answers with the survivor a merge names by its full URL here', async () => {
    const cy = { birthDate: '1962-01-17', gender: 'female' };
    ids['urlSurvivor'] = await create({ ...cy, name: [{ family: `Cole-${run}`, given: ['Cy'] }] });
    // A client that writes references as absolute URLs of this server (as `fullUrl`s are).
    ids['urlMerged'] = await create({
      ...cy,
      name: [{ family: `Kole-${run}`, given: ['Cy'] }],
      active: false,
      link: [
        { other: { reference: `${fhir}/Patient/${ids['urlSurvivor']}` }, type: 'replaced-by' },
      ],
    });
    const byMerged = await match(
      parameters({ ...cy, name: [{ family: `Kole-${run}`, given: ['Cy'] }] }),
    );
    expect(graded(byMerged.body).map(([who]) => who)).toEqual(['urlSurvivor']);
  });

  it('refuses what cannot be matched, and callers who may not search patients', async () => {
    const refusal = async (body: unknown, as?: HttpFn) => {
      const res = await match(body, as);
      return `${res.status} ${res.body.issue[0].diagnostics}`;
    };
    expect(await refusal(parameters({ name: [{ family }] }))).toMatch(
      /^400 \$match needs an identifier, a name with a birth date/,
    );
    expect(await refusal({ resourceType: 'Patient', name: [{ family }] })).toMatch(
      /^400 \$match takes a Parameters resource/,
    );
    expect(
      await refusal(
        parameters({ identifier: [{ system: MRN, value: mrn }] }, [
          { name: 'count', valueInteger: 0 },
        ]),
      ),
    ).toMatch(/^400 count is an integer from 1 to 100/);
    // A Patient that is not a valid one is a 400 naming the element, not a 500.
    for (const patient of [
      { identifier: [{ system: MRN, value: 12345 }] },
      { name: { family } },
      { telecom: [{ system: 'phone', value: 5551234 }] },
    ]) {
      const refused = await refusal(parameters(patient));
      expect({ patient, refused: refused.slice(0, 4) }).toEqual({ patient, refused: '400 ' });
      expect(refused).not.toContain('12345');
      expect(refused).not.toContain('5551234');
    }
    expect(
      await refusal(
        parameters({ identifier: [{ system: MRN, value: mrn }] }),
        authorizedHttp(await tokenFor(testApp, 'auditor')),
      ),
    ).toMatch(/^403 /);
  });
});
