import { randomUUID } from 'node:crypto';
import { jest } from '@jest/globals';
import { DataSource } from 'typeorm';
import { CriteriaMatches } from '../../src/fhir/criteria-matches.service.js';
import { FhirService } from '../../src/fhir/fhir.service.js';
import { HL7_USER } from '../../src/hl7/hl7-user.js';
import { idsSql, SearchRepository } from '../../src/fhir/search/search.repository.js';
import { MAX_INCLUDES } from '../../src/fhir/search/search-request.js';
import { buildPatient } from '../support/factories.js';
import { tokenFor } from '../support/auth.js';
import {
  authorizedHttp,
  http as plainHttp,
  type HttpFn,
  type HttpResult,
  createResource,
} from '../support/http.js';
import { createTestApp, type TestApp } from '../support/test-app.js';

interface PlanNode {
  'Relation Name'?: string;
  'Actual Rows': number;
  'Actual Loops': number;
  Plans?: PlanNode[];
}
interface PlanRoot {
  Plan: PlanNode;
}

const MRN = 'urn:oid:1.2.36.146.595.217.0.1';
const LOINC = 'http://loinc.org';
const UCUM = 'http://unitsofmeasure.org';

describe('FHIR search', () => {
  let testApp: TestApp;
  let fhir: string;
  let http: HttpFn;
  let token: string;
  // Values unique to this run, so other suites' data on the shared database cannot match.
  const run = randomUUID().slice(0, 6);
  const family = `Ñúñez-${run}`;
  const other = `Okonkwo${run}`;
  const code = `glu-${run}`;
  const ids = { a: '', b: '', obs: [] as string[], obsB: '' };

  const create = (body: Record<string, unknown>) => createResource(http, fhir, body);

  function observation(patient: string, value: number, date: string, extra = {}) {
    return {
      resourceType: 'Observation',
      status: 'final',
      code: { coding: [{ system: LOINC, code }] },
      subject: { reference: `Patient/${patient}` },
      effectiveDateTime: date,
      valueQuantity: { value, unit: 'mmol/L', system: UCUM, code: 'mmol/L' },
      ...extra,
    };
  }

  const search = async (path: string) => {
    const res = await http('GET', `${fhir}/${path}`);
    return res;
  };
  const ids_ = (res: {
    body: { entry?: { resource: { id: string }; search: { mode: string } }[] };
  }) =>
    (res.body.entry ?? [])
      .filter((e) => e.search.mode === 'match')
      .map((e) => e.resource.id)
      .sort();

  beforeAll(async () => {
    testApp = await createTestApp();
    fhir = `${testApp.url}/fhir`;
    token = await tokenFor(testApp, 'doctor');
    http = authorizedHttp(token);
    ids.a = await create({
      ...buildPatient({
        family,
        given: 'José María',
        mrn: `MRN-A-${run}`,
        birthDate: '1980-04-12',
        phone: '+1 (555) 010-7788',
      }),
      telecom: [
        { system: 'phone', value: '+1 (555) 010-7788' },
        { system: 'email', value: `jose.${run}@example.org` },
      ],
    });
    ids.b = await create(
      buildPatient({ family: other, given: 'Ada', mrn: `MRN-B-${run}`, birthDate: '1980' }),
    );
    for (let i = 0; i < 25; i++) {
      ids.obs.push(
        await create(
          observation(ids.a, 4 + i * 0.2, `2024-01-${String(i + 1).padStart(2, '0')}T08:00:00Z`),
        ),
      );
    }
    ids.obsB = await create(observation(ids.b, 9.9, '2023-06-01', { status: 'amended' }));
  });

  afterAll(async () => {
    await testApp.close();
  });

  describe('names, identifiers, birth dates and telecom (blind indexes)', () => {
    it('refuses a search of more than 20 criteria, or a criterion of more than 100 values, as too costly', async () => {
      const criteria = (n: number) =>
        Array.from({ length: n }, (_, i) => `family=cap${i}`).join('&');
      expect((await http('GET', `${fhir}/Patient?${criteria(20)}`)).status).toBe(200);
      const many = await http('GET', `${fhir}/Patient?${criteria(21)}`);
      expect(many.status).toBe(400);
      expect(many.body.issue[0]).toMatchObject({
        code: 'too-costly',
        diagnostics: 'A search takes at most 20 criteria; this one has 21',
      });
      const values = (n: number) => Array.from({ length: n }, (_, i) => `c${i}`).join(',');
      expect((await http('GET', `${fhir}/Observation?code=${values(100)}`)).status).toBe(200);
      const long = await http('GET', `${fhir}/Observation?code=${values(101)}`);
      expect(long.status).toBe(400);
      expect(long.body.issue[0].code).toBe('too-costly');
      // A form post is held to the same rule (raw: `body` is sent as JSON, a name of a quote).
      const form = await http('POST', `${fhir}/Patient/_search`, {
        raw: criteria(21),
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
      });
      expect(form.status).toBe(400);
      expect(form.body.issue[0]).toMatchObject({ code: 'too-costly' });
      // However many: until 2026-12-07 each repeat copied the list before it, and a 0.9 MB form
      // of 150,000 held the event loop (every request) for over ten minutes.
      const flood = await http('POST', `${fhir}/Patient/_search`, {
        raw: Array.from({ length: 150_000 }, () => '_id=a').join('&'),
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
      });
      expect(flood.status).toBe(400);
      expect(flood.body.issue[0]).toMatchObject({
        code: 'too-costly',
        diagnostics: 'A search takes at most 20 criteria; this one has 150000',
      });
    });

    it('finds by name part, exactly or by prefix, ignoring case and accents', async () => {
      expect(ids_(await search(`Patient?family=${encodeURIComponent(family)}`))).toEqual([ids.a]);
      expect(ids_(await search(`Patient?family=NUNEZ-${run}`))).toEqual([ids.a]);
      expect(ids_(await search(`Patient?family:exact=nunez ${run}`))).toEqual([ids.a]);
      expect(ids_(await search(`Patient?name=okonk`))).toContain(ids.b);
      expect(ids_(await search(`Patient?given=jose&family=nunez-${run}`))).toEqual([ids.a]);
      expect(ids_(await search(`Patient?given=ada&family=nunez-${run}`))).toEqual([]);
      // phonetic is Patient.name too: it is searched on name's rows rather than stored twice.
      expect(ids_(await search(`Patient?phonetic=okonk`))).toContain(ids.b);
      expect(ids_(await search(`Patient?phonetic:exact=nunez ${run}`))).toEqual([ids.a]);
      const phonetic = await testApp.app
        .get(DataSource)
        .query<{ n: number }[]>(
          `SELECT count(*)::int AS n FROM search_blind WHERE resource_id = $1 AND param = 'phonetic'`,
          [ids.a],
        );
      expect(phonetic[0]!.n).toBe(0);
    });

    it('stores a repeated name or identifier once: such a patient saves, updates and is found once', async () => {
      // Exact lookups have UNIQUE indexes (they let the planner walk matches in id order), so a
      // value that repeats within one resource must become one index row, not a failed write.
      const repeated = `Repeat${run}`;
      const patient = {
        resourceType: 'Patient',
        identifier: [
          { system: MRN, value: `MRN-R-${run}` },
          { system: MRN, value: `MRN-R-${run}` },
        ],
        name: [
          { family: repeated, given: ['Ann', 'Ann'] },
          { family: repeated, given: ['Ann'] },
        ],
        birthDate: '1975-02-03',
      };
      const id = await create(patient);
      const updated = await http('PUT', `${fhir}/Patient/${id}`, {
        body: { ...patient, id, gender: 'female' },
      });
      expect(updated.status).toBe(200);
      expect(ids_(await search(`Patient?family=${repeated}&given=ann`))).toEqual([id]);
      expect(ids_(await search(`Patient?identifier=${MRN}|MRN-R-${run}`))).toEqual([id]);
    });

    it('explains why :contains is refused on PHI', async () => {
      const contains = await search(`Patient?family:contains=une`);
      expect(contains.status).toBe(400);
      expect(contains.body.issue[0].diagnostics).toMatch(/keyed hashes/);
      expect((await search(`Patient?family=--`)).status).toBe(400);
    });

    it('finds a two-letter family name as a whole part, and says that it did', async () => {
      const given = `Short${run}`;
      const ng = await create(buildPatient({ family: 'Ng', given }));
      const nguyen = await create(buildPatient({ family: 'Nguyen', given }));
      const short = await search(`Patient?family=NG&given=${given}`);
      expect(short.status).toBe(200);
      expect(ids_(short)).toEqual([ng]);
      const outcome = (short.body.entry as { search: { mode: string }; resource: any }[]).filter(
        (e) => e.search.mode === 'outcome',
      );
      expect(outcome).toHaveLength(1);
      expect(outcome[0]!.resource).toMatchObject({
        resourceType: 'OperationOutcome',
        issue: [
          { severity: 'warning', diagnostics: expect.stringMatching(/^family values shorter/) },
        ],
      });
      expect(JSON.stringify(outcome)).not.toContain('NG');
      const prefix = await search(`Patient?family=ngu&given=${given}`);
      expect(ids_(prefix)).toEqual([nguyen]);
      expect(prefix.body.entry.map((e: { search: { mode: string } }) => e.search.mode)).toEqual([
        'match',
      ]);
    });

    it('finds by identifier (system|value and value), phone and email', async () => {
      expect(ids_(await search(`Patient?identifier=${MRN}|MRN-A-${run}`))).toEqual([ids.a]);
      expect(ids_(await search(`Patient?identifier=MRN-A-${run}`))).toEqual([ids.a]);
      expect(ids_(await search(`Patient?identifier=http://other|MRN-A-${run}`))).toEqual([]);
      expect(ids_(await search(`Patient?phone=15550107788&family=nunez-${run}`))).toEqual([ids.a]);
      expect(ids_(await search(`Patient?email=jose.${run}@example.org`))).toEqual([ids.a]);
    });

    it('finds birth dates at year, month and day precision and by range', async () => {
      const mine = `&identifier=MRN-A-${run},MRN-B-${run}`;
      expect(ids_(await search(`Patient?birthdate=1980${mine}`))).toEqual([ids.a, ids.b].sort());
      expect(ids_(await search(`Patient?birthdate=1980-04${mine}`))).toEqual([ids.a]);
      expect(ids_(await search(`Patient?birthdate=1980-04-12${mine}`))).toEqual([ids.a]);
      expect(ids_(await search(`Patient?birthdate=ge1980-04-12${mine}`))).toEqual(
        [ids.a, ids.b].sort(),
      );
      expect(ids_(await search(`Patient?birthdate=gt1980-04-12${mine}`))).toEqual([ids.b]);
      expect(ids_(await search(`Patient?birthdate=lt1980-04-12${mine}`))).toEqual([ids.b]);
      expect(ids_(await search(`Patient?birthdate=lt1980${mine}`))).toEqual([]);
      // `ne` belongs to its value: in a list, the others still find theirs.
      expect(ids_(await search(`Patient?birthdate=ne1980-04-12${mine}`))).toEqual([ids.b]);
      expect(ids_(await search(`Patient?birthdate=ne1980-04-12,1980-04-12${mine}`))).toEqual(
        [ids.a, ids.b].sort(),
      );
      // A patient of unknown birth date has none that differs: `ne` leaves it out (it was found).
      const undated = buildPatient({ mrn: `MRN-U-${run}` });
      delete undated['birthDate'];
      const unknown = await create(undated);
      const birthless = await http('GET', `${fhir}/Patient/${unknown}`);
      expect(birthless.body.birthDate).toBeUndefined();
      const all = `&identifier=MRN-A-${run},MRN-B-${run},MRN-U-${run}`;
      expect(ids_(await search(`Patient?birthdate=ne1980-04-12${all}`))).toEqual([ids.b]);
      expect(ids_(await search(`Patient?birthdate:missing=true${all}`))).toEqual([unknown]);
    });

    it('reads the escapes \\| \\$ \\, and \\\\ in values (FHIR search escaping)', async () => {
      const odd = `P|Q$${run},x\\y`;
      const patient = await create({
        resourceType: 'Patient',
        identifier: [{ system: 'urn:odd', value: odd }],
      });
      const obs = await create(
        observation(patient, 1, '2024-02-01', {
          code: { coding: [{ system: 'urn:odd', code: odd }] },
        }),
      );
      const escaped = encodeURIComponent(`urn:odd|P\\|Q\\$${run}\\,x\\\\y`);
      expect(ids_(await search(`Patient?identifier=${escaped}`))).toEqual([patient]);
      expect(ids_(await search(`Observation?code=${escaped}`))).toEqual([obs]);
      // Unescaped, the first bar ends the system and the comma starts another value.
      expect(ids_(await search(`Observation?code=${encodeURIComponent(`urn:odd|P|Q`)}`))).toEqual(
        [],
      );
    });

    it('keeps no plaintext name, identifier, birth date or phone in any index table', async () => {
      const dataSource = testApp.app.get(DataSource);
      // Needles of 10+ characters (or with a space, which base64url lacks): a short one can turn
      // up inside a random base64url hash by chance.
      for (const needle of [
        `MRN-A-${run}`,
        '1980-04-12',
        '5550107788',
        `nunez ${run}`,
        `jose.${run}@`,
      ]) {
        for (const table of [
          'search_token',
          'search_string',
          'search_uri',
          'search_blind',
          'search_reference',
        ]) {
          const rows = await dataSource.query(
            `SELECT count(*)::int AS n FROM ${table} t WHERE t::text ILIKE $1 AND t.param NOT IN ('code', 'combo-code')`,
            [`%${needle}%`],
          );
          expect({ table, needle, n: rows[0].n }).toEqual({ table, needle, n: 0 });
        }
      }
    });
  });

  describe('clinical parameters', () => {
    it('matches tokens, dates, quantities and references', async () => {
      expect(ids_(await search(`Observation?code=${LOINC}|${code}`))).toHaveLength(20);
      expect((await search(`Observation?code=${code}&_total=accurate`)).body.total).toBe(26);
      expect(
        (await search(`Observation?code=${code}&status:not=final&_total=accurate`)).body.total,
      ).toBe(1);
      expect(
        (await search(`Observation?code=${code}&date=ge2024-01-20&_total=accurate`)).body.total,
      ).toBe(6);
      expect(
        (await search(`Observation?code=${code}&date=2024-01&_total=accurate`)).body.total,
      ).toBe(25);
      expect(
        (await search(`Observation?code=${code}&date=lt2024&_total=accurate`)).body.total,
      ).toBe(1);
      expect(
        (await search(`Observation?code=${code}&value-quantity=ge8|${UCUM}|mmol/L&_total=accurate`))
          .body.total,
      ).toBe(6); // 8.0, 8.2, 8.4, 8.6, 8.8 and B's 9.9
      expect(ids_(await search(`Observation?subject=Patient/${ids.b}`))).toEqual([ids.obsB]);
      expect(ids_(await search(`Observation?subject:Patient=${ids.b}`))).toEqual([ids.obsB]);
      expect(ids_(await search(`Observation?patient=${ids.b}&code=${code}`))).toEqual([ids.obsB]);
    });

    it('finds by the Resource-level parameters _tag, _profile and _security', async () => {
      const tagged = await create({
        resourceType: 'Observation',
        status: 'final',
        code: { coding: [{ system: LOINC, code: `tagged-${run}` }] },
        meta: {
          tag: [{ system: 'urn:carevault:test', code: `batch-${run}` }],
          profile: [`http://example.org/profile/${run}`],
          security: [{ system: 'urn:carevault:test', code: `label-${run}` }],
        },
      });
      expect(ids_(await search(`Observation?_tag=urn:carevault:test|batch-${run}`))).toEqual([
        tagged,
      ]);
      expect(ids_(await search(`Observation?_profile=http://example.org/profile/${run}`))).toEqual([
        tagged,
      ]);
      expect(ids_(await search(`Observation?_security=label-${run}`))).toEqual([tagged]);
    });

    it('follows one level of chaining and _has', async () => {
      expect(ids_(await search(`Observation?subject:Patient.identifier=MRN-B-${run}`))).toEqual([
        ids.obsB,
      ]);
      expect(ids_(await search(`Observation?patient.family=${other}`))).toEqual([ids.obsB]);
      // subject may point to a Patient, Group, Device or Location: unnamed, every type that
      // has the parameter is tried (only Patient has family; all four have identifier).
      expect(ids_(await search(`Observation?subject.family=${other}`))).toEqual([ids.obsB]);
      expect(ids_(await search(`Observation?subject.identifier=MRN-B-${run}`))).toEqual([ids.obsB]);
      const none = await search(`Observation?subject.no-such-param=1`);
      expect(none.status).toBe(400);
      expect(none.body.issue[0].diagnostics).toBe(
        'subject points to no type that has a search parameter no-such-param',
      );
      expect(
        ids_(
          await search(
            `Patient?_has:Observation:subject:status=amended&identifier=MRN-A-${run},MRN-B-${run}`,
          ),
        ),
      ).toEqual([ids.b]);
    });

    it('finds logical references by their identifier (:identifier), on blind hashes only', async () => {
      const mrn = `LOG-${run}`;
      const logical = await create({
        resourceType: 'Observation',
        status: 'final',
        code: { coding: [{ system: LOINC, code: `logical-${run}` }] },
        // A feed that knows the patient only by MRN: no literal reference to check or follow.
        subject: { identifier: { system: MRN, value: mrn }, display: 'Patient from the lab feed' },
      });
      expect(ids_(await search(`Observation?subject:identifier=${MRN}|${mrn}`))).toEqual([logical]);
      expect(ids_(await search(`Observation?subject:identifier=${mrn}`))).toEqual([logical]);
      expect(ids_(await search(`Observation?subject:identifier=urn:other|${mrn}`))).toEqual([]);
      expect(ids_(await search(`Observation?subject:identifier=MRN-B-${run}`))).toEqual([]);
      const data = testApp.app.get(DataSource);
      const plaintext = await data.query<{ n: number }[]>(
        `SELECT (SELECT count(*) FROM search_token WHERE code = $1)
              + (SELECT count(*) FROM search_string WHERE value LIKE $2)
              + (SELECT count(*) FROM search_blind WHERE param = 'subject:identifier' AND hash LIKE $2) AS n`,
        [mrn, `%${mrn.toLowerCase()}%`],
      );
      expect(Number(plaintext[0]!.n)).toBe(0);
    });

    it('adds referenced and referencing resources with _include and _revinclude', async () => {
      const included = await search(`Observation?_id=${ids.obsB}&_include=Observation:subject`);
      expect(
        included.body.entry.map((e: { resource: { id: string }; search: { mode: string } }) => [
          e.search.mode,
          e.resource.id,
        ]),
      ).toEqual([
        ['match', ids.obsB],
        ['include', ids.b],
      ]);
      // A target type the parameter never points to is a typo, not an empty include; and a
      // quantity has three parts at most.
      for (const path of [
        `Observation?_id=${ids.obsB}&_include=Observation:subject:Foo`,
        `Observation?_id=nothing-${run}&_include=Observation:subject:Medication`,
        `Observation?value-quantity=1|2|3|4`,
        // Another source type than the one searched adds nothing without :iterate.
        `Observation?_id=${ids.obsB}&_include=Patient:link`,
        `Observation?_id=${ids.obsB}&_include=Patient:*`,
      ]) {
        const refused = await search(path);
        expect({ path, status: refused.status }).toEqual({ path, status: 400 });
      }
      expect(
        (await search(`Observation?_id=${ids.obsB}&_include=Patient:link`)).body,
      ).toMatchObject({
        issue: [
          {
            diagnostics:
              '_include=Patient:link cannot add resources to a search of Observation: it follows references of Patient resources, and only :iterate follows those of what was included',
          },
        ],
      });
      // With :iterate it follows what the first round added.
      const iterated = await search(
        `Observation?_id=${ids.obsB}&_include=Observation:subject&_include:iterate=Patient:link`,
      );
      expect(iterated.status).toBe(200);
      const rev = await search(`Patient?_id=${ids.b}&_revinclude=Observation:subject`);
      expect(rev.body.entry.map((e: { resource: { id: string } }) => e.resource.id)).toEqual([
        ids.b,
        ids.obsB,
      ]);
      // Every reference of the matches: the subject and the performer, each once.
      const practitioner = await create({ resourceType: 'Practitioner', active: true });
      // Another code: the paging tests below count this code's results.
      const seen = await create({
        ...observation(ids.b, 6, '2024-02-02'),
        code: { coding: [{ system: LOINC, code: `perf-${run}` }] },
        performer: [{ reference: `Practitioner/${practitioner}` }],
      });
      for (const wildcard of ['*', 'Observation:*']) {
        const all = await search(`Observation?_id=${seen}&_include=${wildcard}`);
        expect(all.status).toBe(200);
        expect(
          all.body.entry
            .filter((e: { search: { mode: string } }) => e.search.mode === 'include')
            .map((e: { resource: { id: string } }) => e.resource.id)
            .sort(),
        ).toEqual([ids.b, practitioner].sort());
      }
      // Who recorded what (US Core asks every search for it): clinical context, not the audit
      // trail, so a doctor reads it beside the record.
      const provenance = await create({
        resourceType: 'Provenance',
        target: [{ reference: `Observation/${seen}` }],
        recorded: '2024-02-02T10:00:00Z',
        agent: [{ who: { reference: `Practitioner/${practitioner}` } }],
      });
      const withProvenance = await search(`Observation?_id=${seen}&_revinclude=Provenance:target`);
      expect(withProvenance.status).toBe(200);
      expect(
        withProvenance.body.entry.map((e: { resource: { id: string } }) => e.resource.id),
      ).toEqual([seen, provenance]);
      const everyReferrer = await search(`Patient?_id=${ids.b}&_revinclude=*`);
      expect(everyReferrer.status).toBe(400);
      expect(everyReferrer.body.issue[0].code).toBe('not-supported');
    });

    it('takes every _revinclude /metadata declares, and refuses the others', async () => {
      const metadata = await search('metadata');
      const resources = metadata.body.rest[0].resource as {
        type: string;
        searchRevInclude?: string[];
      }[];
      const patient = resources.find((r) => r.type === 'Patient')!;
      expect(patient.searchRevInclude).toEqual(
        expect.arrayContaining(['Observation:subject', 'Encounter:patient', 'Provenance:target']),
      );
      // Each type's in searches of MAX_INCLUDES each, as forms (Patient's would not fit in a
      // URL); for Patient one that matches, so that each is followed to the database.
      for (const { type, searchRevInclude } of resources) {
        for (let i = 0; i < (searchRevInclude ?? []).length; i += MAX_INCLUDES) {
          const form = new URLSearchParams({ _id: type === 'Patient' ? ids.b : `none-${run}` });
          for (const value of searchRevInclude!.slice(i, i + MAX_INCLUDES)) {
            form.append('_revinclude', value);
          }
          const res = await http('POST', `${fhir}/${type}/_search`, {
            raw: form.toString(),
            headers: { 'content-type': 'application/x-www-form-urlencoded' },
          });
          expect([type, res.status, res.body.issue]).toEqual([type, 200, undefined]);
        }
      }
      // Undeclared ones are refused, matches or not, rather than answered with nothing added.
      for (const [type, value, said] of [
        ['Patient', 'Encounter:location', 'does not refer to Patient'],
        ['Observation', 'Observation:subject', 'does not refer to Observation'],
        ['Patient', 'Observation:subject:Group', 'does not refer to Patient'],
        ['Patient', 'Observation:code', 'is not a reference parameter'],
        ['Patient', 'Nothing:subject', 'is not a resource type'],
        ['Patient', 'AuditEvent:patient', 'search them at /fhir/AuditEvent'],
      ]) {
        const declared = resources.find((r) => r.type === type)!.searchRevInclude;
        expect(declared).not.toContain(value);
        for (const id of [ids.b, `none-${run}`]) {
          const res = await search(`${type!}?_id=${id}&_revinclude=${value!}`);
          expect([value, res.status]).toEqual([value, 400]);
          expect(res.body.issue[0].diagnostics).toContain(said);
        }
      }
    });
  });

  describe('parameter types and modifiers', () => {
    it('_id takes :not, and refuses the modifiers it has no meaning for', async () => {
      const both = `${ids.a},${ids.b}`;
      expect(ids_(await search(`Patient?_id=${both}&_id:not=${ids.a}`))).toEqual([ids.b]);
      for (const modifier of ['missing', 'exact', 'text']) {
        const refused = await search(`Patient?_id:${modifier}=${ids.a}`);
        expect([modifier, refused.status]).toEqual([modifier, 400]);
      }
    });

    it('token :text, |code and system|', async () => {
      const id = await create({
        ...observation(ids.b, 5, '2024-02-01'),
        code: {
          coding: [{ system: LOINC, code: `tx-${run}`, display: 'Glucose [Mass/volume] in Blood' }],
          text: `Glucemia ${run}`,
        },
      });
      expect(ids_(await search(`Observation?code:text=glucemia ${run}`))).toEqual([id]);
      expect(ids_(await search(`Observation?code=${LOINC}|&code:text=GLUCÉMIA ${run}`))).toEqual([
        id,
      ]);
      expect(ids_(await search(`Observation?code=|tx-${run}`))).toEqual([]);
      expect((await search(`Patient?identifier:text=MRN`)).status).toBe(400);

      // A code of text alone has a value: :missing=true found it until 2026-12-06.
      const textOnly = await create({
        ...observation(ids.b, 5, '2024-02-01'),
        code: { text: `Only words ${run}` },
      });
      const textual = `code:text=only words ${run}`;
      expect(ids_(await search(`Observation?${textual}&code:missing=false`))).toEqual([textOnly]);
      expect(ids_(await search(`Observation?${textual}&code:missing=true`))).toEqual([]);
      expect(
        ids_(await search(`Observation?code:text=glucemia ${run}&code:missing=false`)),
      ).toEqual([id]);
    });

    it('token :in and :not-in a value set of the R4 definitions', async () => {
      const patient = await create(buildPatient());
      const withCode = (system: string, value: string) =>
        create({
          ...observation(patient, 3, '2024-03-01'),
          code: { coding: [{ system, code: value }] },
        });
      const ldl = await withCode(LOINC, '18262-6');
      const ldlToo = await withCode(LOINC, '13457-7');
      const glucose = await withCode(LOINC, '2339-0');
      // The same code in another system is not in a LOINC value set.
      const elsewhere = await withCode('http://example.org/lab-codes', '18262-6');
      const mine = `subject=Patient/${patient}`;
      const LDL = 'http://hl7.org/fhir/ValueSet/ldlcholesterol-codes';
      expect(ids_(await search(`Observation?${mine}&code:in=${LDL}`))).toEqual(
        [ldl, ldlToo].sort(),
      );
      expect(ids_(await search(`Observation?${mine}&code:not-in=${LDL}`))).toEqual(
        [glucose, elsewhere].sort(),
      );
      // Several value sets are OR-ed; a version after | is taken as the same value set.
      const weights = 'http://hl7.org/fhir/ValueSet/ucum-bodyweight';
      expect(ids_(await search(`Observation?${mine}&code:in=${weights},${LDL}|4.0.1`))).toEqual(
        [ldl, ldlToo].sort(),
      );
      for (const [url, said] of [
        ['http://example.org/no-such-value-set', 'is not one'],
        // All of LOINC: an external code system, not expandable from the definitions.
        ['http://hl7.org/fhir/ValueSet/observation-codes', 'is not one'],
        ['ValueSet/123', 'canonical URL'],
      ]) {
        const res = await search(`Observation?${mine}&code:in=${url!}`);
        expect(res.status).toBe(400);
        expect(res.body.issue[0].code).toBe('not-supported');
        expect(res.body.issue[0].diagnostics).toContain(said!);
      }
    });

    it('string (non-PHI): starts-with, :exact and :contains', async () => {
      const id = await create({
        resourceType: 'Organization',
        name: `Hospital ${run}`,
        address: [{ state: `Nuevo León ${run}` }],
      });
      expect(ids_(await search(`Organization?address-state=nuevo`))).toContain(id);
      const exact = (value: string) =>
        search(`Organization?address-state:exact=${encodeURIComponent(value)}`);
      expect(ids_(await exact(`Nuevo León ${run}`))).toEqual([id]);
      // :exact is case- and accent-sensitive on what is not PHI (PHI names: see above).
      expect(ids_(await exact(`nuevo leon ${run}`))).toEqual([]);
      expect(ids_(await exact(`Nuevo Leon ${run}`))).toEqual([]);
      expect(ids_(await search(`Organization?address-state:contains=LEÓN ${run}`))).toEqual([id]);
      expect(ids_(await search(`Organization?address-state:exact=Nuevo`))).not.toContain(id);
    });

    it('number with precision, uri with :below, :missing and _lastUpdated', async () => {
      const risk = await create({
        resourceType: 'RiskAssessment',
        status: 'final',
        subject: { reference: `Patient/${ids.a}` },
        prediction: [{ probabilityDecimal: 0.25 }],
      });
      const mine = `&subject=Patient/${ids.a}`;
      expect(ids_(await search(`RiskAssessment?probability=0.25${mine}`))).toEqual([risk]);
      expect(ids_(await search(`RiskAssessment?probability=0.2${mine}`))).toEqual([]);
      expect(ids_(await search(`RiskAssessment?probability=gt0.2${mine}`))).toEqual([risk]);
      expect(ids_(await search(`RiskAssessment?probability=le0.2${mine}`))).toEqual([]);
      // 0.2 is [0.15, 0.25) exactly: floating point put the edge at 0.15000000000000002.
      const edge = await create({
        resourceType: 'RiskAssessment',
        status: 'final',
        subject: { reference: `Patient/${ids.a}` },
        prediction: [{ probabilityDecimal: 0.15 }],
      });
      expect(ids_(await search(`RiskAssessment?probability=0.2${mine}`))).toEqual([edge]);
      expect(ids_(await search(`RiskAssessment?probability=0.1${mine}`))).toEqual([]);
      expect(ids_(await search(`RiskAssessment?probability=ap0.25${mine}`))).toEqual([risk]);
      expect(ids_(await search(`RiskAssessment?probability=ne0.2${mine}`))).toEqual([risk]);
      // Longer than PostgreSQL's numeric takes (posted: too long for a URL).
      const huge = await plainHttp('POST', `${fhir}/RiskAssessment/_search`, {
        raw: new URLSearchParams({ probability: `0.${'1'.repeat(17_000)}` }).toString(),
        headers: {
          authorization: `Bearer ${token}`,
          'content-type': 'application/x-www-form-urlencoded',
        },
      });
      expect(huge.status).toBe(400);
      await http('DELETE', `${fhir}/RiskAssessment/${edge}`);
      const vs = await create({
        resourceType: 'ValueSet',
        status: 'active',
        url: `http://example.org/fhir/ValueSet/${run}/vitals`,
      });
      expect(
        ids_(await search(`ValueSet?url=http://example.org/fhir/ValueSet/${run}/vitals`)),
      ).toEqual([vs]);
      expect(
        ids_(await search(`ValueSet?url:below=http://example.org/fhir/ValueSet/${run}`)),
      ).toEqual([vs]);
      expect(ids_(await search(`RiskAssessment?probability:missing=false${mine}`))).toEqual([risk]);
      expect(ids_(await search(`RiskAssessment?probability:missing=true${mine}`))).toEqual([]);
      const since = new Date(Date.now() - 60_000).toISOString();
      expect(ids_(await search(`RiskAssessment?_lastUpdated=ge${since}${mine}`))).toEqual([risk]);
      expect(ids_(await search(`RiskAssessment?_lastUpdated=lt${since}${mine}`))).toEqual([]);
    });

    it('ORs comma-separated values and ANDs repeated parameters', async () => {
      const both = await search(`Patient?identifier=MRN-A-${run},MRN-B-${run}`);
      expect(ids_(both)).toEqual([ids.a, ids.b].sort());
      const and = await search(
        `Patient?identifier=MRN-A-${run},MRN-B-${run}&identifier=MRN-B-${run}`,
      );
      expect(ids_(and)).toEqual([ids.b]);
    });

    it('composite: a code and its value from the same element (blood pressure components)', async () => {
      const patient = await create(buildPatient({ family: `Bp${run}`, mrn: `MRN-BP-${run}` }));
      const loinc = (c: string) => ({ coding: [{ system: LOINC, code: c }] });
      const mmHg = (value: number) => ({ value, unit: 'mm[Hg]', system: UCUM, code: 'mm[Hg]' });
      const bp = (systolic: number, diastolic: number) =>
        create({
          resourceType: 'Observation',
          status: 'final',
          code: loinc('85354-9'),
          subject: { reference: `Patient/${patient}` },
          effectiveDateTime: '2024-03-01T09:00:00Z',
          component: [
            { code: loinc('8480-6'), valueQuantity: mmHg(systolic) },
            { code: loinc('8462-4'), valueQuantity: mmHg(diastolic) },
          ],
        });
      const high = await bp(150, 95);
      const normal = await bp(120, 80);
      // Not the suite's glucose code, whose Observations other tests count.
      const potassium = `k-${run}`;
      const lab = await create(observation(patient, 7.4, '2024-03-02', { code: loinc(potassium) }));
      const lmp = await create({
        resourceType: 'Observation',
        status: 'final',
        code: { coding: [{ code: `lmp-${run}` }] },
        subject: { reference: `Patient/${patient}` },
        valueDateTime: '2024-05-01',
      });
      const smoker = await create({
        resourceType: 'Observation',
        status: 'final',
        code: { coding: [{ code: `smoking-${run}` }] },
        subject: { reference: `Patient/${patient}` },
        valueCodeableConcept: { coding: [{ system: 'http://snomed.info/sct', code: '8517006' }] },
      });
      const flu = await create({
        resourceType: 'Observation',
        status: 'final',
        code: loinc(`flu-${run}`),
        subject: { reference: `Patient/${patient}` },
        valueString: 'Positive for influenza A',
      });
      const find = async (param: string, value: string) =>
        ids_(await search(`Observation?${param}=${encodeURIComponent(value)}&subject=${patient}`));
      const component = 'component-code-value-quantity';
      expect(await find(component, `${LOINC}|8480-6$gt140`)).toEqual([high]);
      expect(await find(component, `8480-6$gt140`)).toEqual([high]);
      // 150 is a systolic value: no diastolic is above 140, whatever else the panel holds.
      expect(await find(component, `${LOINC}|8462-4$gt140`)).toEqual([]);
      expect(await find(component, `${LOINC}|8480-6$lt130|${UCUM}|mm[Hg]`)).toEqual([normal]);
      expect(await find(component, `${LOINC}|8480-6$lt130|${UCUM}|mmol/L`)).toEqual([]);
      expect(await find(component, `8480-6$gt140,8462-4$le80`)).toEqual([high, normal].sort());
      expect(await find(component, `|8480-6$gt140`)).toEqual([]);
      // combo- reads both: a component's value, and the resource's own.
      expect(await find('combo-code-value-quantity', `8462-4$ge90`)).toEqual([high]);
      expect(await find('combo-code-value-quantity', `${LOINC}|${potassium}$gt7`)).toEqual([lab]);
      expect(await find('code-value-quantity', `${LOINC}|${potassium}$gt7`)).toEqual([lab]);
      expect(await find('code-value-quantity', `${LOINC}|${potassium}$lt7`)).toEqual([]);
      expect(await find('code-value-quantity', `${LOINC}|85354-9$gt0`)).toEqual([]);
      expect(await find('code-value-date', `lmp-${run}$ge2024-05`)).toEqual([lmp]);
      expect(await find('code-value-date', `|lmp-${run}$lt2024`)).toEqual([]);
      expect(
        await find('code-value-concept', `|smoking-${run}$http://snomed.info/sct|8517006`),
      ).toEqual([smoker]);
      expect(await find('code-value-string', `flu-${run}$positive`)).toEqual([flu]);
      expect(await find('code-value-string', `flu-${run}$negative`)).toEqual([]);
      // Through _has: the patients with a systolic pressure above 140.
      const has = await search(
        `Patient?_has:Observation:subject:${component}=${encodeURIComponent('8480-6$gt140')}&_id=${patient}`,
      );
      expect(ids_(has)).toEqual([patient]);

      for (const [query, message] of [
        [`${component}=8480-6`, 'joined by $'],
        [`${component}=8480-6$gt1$gt2`, 'joined by $'],
        [`${component}=${encodeURIComponent(`${LOINC}|$gt1`)}`, 'needs a code and a value'],
        [`${component}:missing=true`, 'not supported on composite'],
        [`_sort=${component}`, ''],
        [`_include=Observation:${component}`, 'composite search parameter'],
      ]) {
        const res = await search(`Observation?${query!}`);
        expect(res.status).toBe(400);
        expect(res.body.issue[0].diagnostics).toContain(message);
      }
      const metadata = await plainHttp('GET', `${fhir}/metadata`);
      const observationCaps = (
        metadata.body.rest[0].resource as { type: string; searchParam: object[] }[]
      ).find((r) => r.type === 'Observation')!;
      expect(observationCaps.searchParam).toContainEqual({
        name: component,
        type: 'composite',
        definition: `http://hl7.org/fhir/SearchParameter/Observation-${component}`,
      });
    });

    // Declared on every type, _id and _lastUpdated take :missing as R4 defines it for every
    // parameter type: every resource has both, so true finds none and false finds all.
    it(':missing on _id and _lastUpdated finds none when true and every one when false', async () => {
      const family = `Missing${Date.now()}`;
      for (let i = 0; i < 2; i++) {
        const created = await http('POST', `${fhir}/Patient`, { body: buildPatient({ family }) });
        expect(created.status).toBe(201);
      }
      for (const param of ['_id', '_lastUpdated']) {
        const none = await http('GET', `${fhir}/Patient?family=${family}&${param}:missing=true`);
        expect(none.status).toBe(200);
        expect(none.body.entry).toBeUndefined();
        const all = await http('GET', `${fhir}/Patient?family=${family}&${param}:missing=false`);
        expect(all.status).toBe(200);
        expect(all.body.entry).toHaveLength(2);
        const bad = await http('GET', `${fhir}/Patient?family=${family}&${param}:missing=maybe`);
        expect(bad.status).toBe(400);
      }
    });
  });

  describe('Patient/{id}/$everything', () => {
    it("returns the patient's compartment, limited to the types the caller may read", async () => {
      const all = await search(`Patient/${ids.a}/$everything`);
      expect(all.status).toBe(200);
      const types = (all.body.entry as { resource: { resourceType: string } }[]).map(
        (e) => e.resource.resourceType,
      );
      expect(types.filter((t) => t === 'Patient')).toHaveLength(1);
      expect(types.filter((t) => t === 'Observation')).toHaveLength(25);
      const billing = authorizedHttp(await tokenFor(testApp, 'billing'));
      const limited = await billing('GET', `${fhir}/Patient/${ids.a}/$everything`);
      expect(
        (limited.body.entry as { resource: { resourceType: string } }[]).map(
          (e) => e.resource.resourceType,
        ),
      ).toEqual(['Patient']);
      const auditor = authorizedHttp(await tokenFor(testApp, 'auditor'));
      expect((await auditor('GET', `${fhir}/Patient/${ids.a}/$everything`)).status).toBe(403);
      // By POST too (R4: every operation), its input a Parameters resource; 405 until 2026-12-06.
      const posted = await http('POST', `${fhir}/Patient/${ids.a}/$everything`, {
        body: {
          resourceType: 'Parameters',
          parameter: [{ name: '_type', valueString: 'Patient' }],
        },
      });
      expect(posted.status).toBe(200);
      expect(ids_(posted)).toEqual([ids.a]);
      expect((await auditor('POST', `${fhir}/Patient/${ids.a}/$everything`)).status).toBe(403);
    });

    it('adds what the patient and the compartment refer to, once each, as the caller may read it', async () => {
      const practitioner = (family: string, extra = {}) =>
        create({ resourceType: 'Practitioner', name: [{ family }], ...extra });
      const gp = await practitioner(`Gp${run}`);
      const performer = await practitioner(`Perf${run}`);
      const hidden = await practitioner(`Hidden${run}`, {
        meta: {
          security: [
            { system: 'http://terminology.hl7.org/CodeSystem/v3-Confidentiality', code: 'R' },
          ],
        },
      });
      const org = await create({ resourceType: 'Organization', name: `Clinic ${run}` });
      const ward = await create({ resourceType: 'Location', name: `Ward ${run}` });
      const drug = await create({ resourceType: 'Medication', code: { text: 'Metformin' } });
      const patient = await create({
        ...buildPatient(),
        generalPractitioner: [{ reference: `Practitioner/${gp}` }],
        managingOrganization: { reference: `Organization/${org}` },
        // Another patient's record is theirs: not brought in by a link.
        link: [{ other: { reference: `Patient/${ids.b}` }, type: 'seealso' }],
      });
      const obs = await create(
        observation(patient, 5, '2024-03-01', {
          code: { coding: [{ system: LOINC, code: `ref-${run}` }] },
          performer: [
            { reference: `Practitioner/${performer}` },
            { reference: `Practitioner/${gp}` },
            { reference: `Practitioner/${hidden}` },
          ],
        }),
      );
      const encounter = await create({
        resourceType: 'Encounter',
        status: 'finished',
        class: { code: 'AMB' },
        subject: { reference: `Patient/${patient}` },
        serviceProvider: { reference: `Organization/${org}` },
        location: [{ location: { reference: `Location/${ward}` } }],
      });
      const order = await create({
        resourceType: 'MedicationRequest',
        status: 'active',
        intent: 'order',
        subject: { reference: `Patient/${patient}` },
        medicationReference: { reference: `Medication/${drug}` },
      });
      type Entry = { resource: { resourceType: string; id: string }; search: { mode: string } };
      const listed = (res: HttpResult) =>
        (res.body.entry as Entry[]).map(
          (e) => `${e.search.mode} ${e.resource.resourceType}/${e.resource.id}`,
        );
      const all = await search(`Patient/${patient}/$everything`);
      expect(all.status).toBe(200);
      expect([...listed(all)].sort()).toEqual(
        [
          `match Patient/${patient}`,
          `match Observation/${obs}`,
          `match Encounter/${encounter}`,
          `match MedicationRequest/${order}`,
          `include Practitioner/${gp}`,
          `include Practitioner/${performer}`,
          `include Organization/${org}`,
          `include Location/${ward}`,
          `include Medication/${drug}`,
        ].sort(),
      );
      // total counts the matches, as a searchset's does.
      expect(all.body.total).toBe(4);

      // What the caller may not read is left out, and so is what only a record they may not
      // read refers to (billing reads no Observations: the performer would tell of one).
      const billing = authorizedHttp(await tokenFor(testApp, 'billing'));
      const limited = await billing('GET', `${fhir}/Patient/${patient}/$everything`);
      expect([...listed(limited)].sort()).toEqual(
        [
          `match Patient/${patient}`,
          `include Practitioner/${gp}`,
          `include Organization/${org}`,
        ].sort(),
      );

      // _type narrows what is added too.
      const typed = await search(`Patient/${patient}/$everything?_type=Observation,Practitioner`);
      expect([...listed(typed)].sort()).toEqual(
        [
          `match Observation/${obs}`,
          `include Practitioner/${gp}`,
          `include Practitioner/${performer}`,
        ].sort(),
      );

      // Pages with _count: the added resources page after the matches, none twice.
      const seen: string[] = [];
      let url: string | undefined = `${fhir}/Patient/${patient}/$everything?_count=2`;
      while (url) {
        const page: HttpResult = await http('GET', url);
        expect(page.body.entry.length).toBeLessThanOrEqual(2);
        seen.push(...listed(page));
        url = page.body.link.find((l: { relation: string }) => l.relation === 'next')?.url;
      }
      expect(seen).toHaveLength(9);
      expect([...seen].sort()).toEqual([...listed(all)].sort());
    });

    it('narrows to _type and _since, and refuses what it does not offer', async () => {
      const typesOf = (res: { body: { entry: { resource: { resourceType: string } }[] } }) =>
        res.body.entry.map((e) => e.resource.resourceType);
      const observations = await search(`Patient/${ids.a}/$everything?_type=Observation`);
      expect(observations.status).toBe(200);
      expect(typesOf(observations)).toEqual(Array(25).fill('Observation'));
      const both = await search(`Patient/${ids.a}/$everything?_type=Patient,Observation`);
      expect(typesOf(both)).toHaveLength(26);
      expect(both.body.link[0].url).toContain('_type=Patient%2CObservation');

      // Another code: the paging tests below count this patient's glucose results.
      const latest = await create(
        observation(ids.a, 7.7, '2024-02-01', {
          code: { coding: [{ system: LOINC, code: `other-${run}` }] },
        }),
      );
      // The server's own time of the write: a second before it could still hold this
      // patient's resources from the tests above on a loaded machine.
      const written = (await search(`Observation/${latest}`)).body.meta.lastUpdated as string;
      const since = await search(
        `Patient/${ids.a}/$everything?_since=${encodeURIComponent(written)}`,
      );
      expect(since.body.entry.map((e: { resource: { id: string } }) => e.resource.id)).toEqual([
        latest,
      ]);

      for (const [query, code] of [
        ['_type=NoSuchType', 'not-found'],
        ['_since=yesterday', 'invalid'],
        ['_count=0', 'invalid'],
        ['_cursor=nope', 'invalid'],
        ['start=Jan', 'invalid'],
        ['name=x', 'invalid'],
      ]) {
        const res = await search(`Patient/${ids.a}/$everything?${query!}`);
        expect({ query, code: res.body.issue?.[0]?.code }).toEqual({ query, code });
      }
    });

    it('counts in total what it lists, when a member is deleted while the record is read', async () => {
      const patient = await create(buildPatient());
      // Of a code of their own: the paging tests count the run's code.
      const own = { code: { coding: [{ system: LOINC, code: `deleted-${run}` }] } };
      const members = [
        await create(observation(patient, 1, '2024-01-01', own)),
        await create(observation(patient, 2, '2024-01-02', own)),
      ];
      // The delete commits right after the members are found, before they are loaded.
      const repository = testApp.app.get(SearchRepository);
      const compartmentMembers = repository.compartmentMembers.bind(repository);
      const spy = jest
        .spyOn(repository, 'compartmentMembers')
        .mockImplementationOnce(async (...args) => {
          const found = await compartmentMembers(...args);
          expect((await http('DELETE', `${fhir}/Observation/${members[0]}`)).status).toBe(204);
          return found;
        });
      try {
        const everything = await search(`Patient/${patient}/$everything`);
        expect(spy).toHaveBeenCalled();
        // As the record stood when it was first read: the Observation deleted since included.
        const listed = everything.body.entry.map(
          (e: { resource: { id: string } }) => e.resource.id,
        );
        expect({ total: everything.body.total, listed: [...listed].sort() }).toEqual({
          total: 3,
          listed: [patient, ...members].sort(),
        });
      } finally {
        spy.mockRestore();
      }
    });

    it('pages with _count, the patient first, without repeats or gaps', async () => {
      const whole = await search(`Patient/${ids.a}/$everything?_type=Patient,Observation`);
      const all = whole.body.entry.map((e: { resource: { id: string } }) => e.resource.id);
      expect(all.length).toBeGreaterThan(20);
      const seen: string[] = [];
      let url: string | undefined =
        `${fhir}/Patient/${ids.a}/$everything?_count=10&_type=Patient,Observation`;
      let pages = 0;
      while (url) {
        const page: HttpResult = await http('GET', url);
        expect(page.status).toBe(200);
        expect(page.body.total).toBe(all.length);
        expect(page.body.entry.length).toBeLessThanOrEqual(10);
        seen.push(...page.body.entry.map((e: { resource: { id: string } }) => e.resource.id));
        url = page.body.link.find((l: { relation: string }) => l.relation === 'next')?.url;
        if (url) expect(url).toContain('_type=Patient%2CObservation');
        pages++;
      }
      expect(pages).toBe(Math.ceil(all.length / 10));
      expect(seen[0]).toBe(ids.a);
      expect(new Set(seen).size).toBe(seen.length);
      expect([...seen].sort()).toEqual([...all].sort());

      // The audit event of a page names what the page disclosed, not the whole record (and the
      // patient, whose record it is).
      const one = await search(`Patient/${ids.a}/$everything?_count=2&_type=Observation`);
      const shown = one.body.entry.map(
        (e: { resource: { id: string } }) => `Observation/${e.resource.id}`,
      );
      const [event] = await testApp.app
        .get(DataSource)
        .query<{ entities: string[] }[]>(
          `SELECT entities FROM audit_event WHERE route LIKE '%$everything' ORDER BY chain_seq DESC LIMIT 1`,
        );
      expect([...event!.entities].sort()).toEqual([...shown, `Patient/${ids.a}`].sort());
    });

    it('narrows to the care dates between start and end, keeping what has none', async () => {
      const undated = await create({
        resourceType: 'Observation',
        status: 'registered',
        code: { text: 'Pending' },
        subject: { reference: `Patient/${ids.a}` },
      });
      type Found = { id: string; effectiveDateTime?: string };
      const found = async (query: string): Promise<Found[]> =>
        (await search(`Patient/${ids.a}/$everything?${query}`)).body.entry.map(
          (e: { resource: Found }) => e.resource,
        );
      // The window's Observations, the patient, and what has no care date (this one, and
      // the RiskAssessment without occurrence written above), and nothing dated outside.
      const check = async (query: string, from: string, to: string, expected: string[]) => {
        const resources = await found(query);
        const got = resources.map((r) => r.id);
        expect(got).toEqual(expect.arrayContaining([ids.a, undated, ...expected]));
        expect(got.filter((id) => ids.obs.includes(id)).sort()).toEqual([...expected].sort());
        const dated = resources.flatMap((r) => r.effectiveDateTime ?? []);
        expect(dated.filter((date) => date < from || date > to)).toEqual([]);
      };
      await check('end=2024-01-02', '0000', '2024-01-02T23:59:59Z', ids.obs.slice(0, 2));
      await check(
        'start=2024-01-10&end=2024-01-11T23:00:00Z',
        '2024-01-10',
        '2024-01-11T23:00:00Z',
        ids.obs.slice(9, 11),
      );
      await check('start=2024-01&end=2024-01', '2024-01', '2024-01-31T23:59:59Z', ids.obs);
      expect((await found('start=2024-02')).map((r) => r.id)).not.toContain(ids.obs[24]);
      const self = (await search(`Patient/${ids.a}/$everything?start=2024-01&_type=Observation`))
        .body.link[0].url;
      expect(self).toContain('start=2024-01&_type=Observation');
    });
  });

  describe('Observation/$lastn', () => {
    it("gives a patient's most recent observations of each code", async () => {
      const last = await search(`Observation/$lastn?patient=${ids.a}&code=${code}`);
      expect(last.status).toBe(200);
      expect(last.body.type).toBe('searchset');
      expect(ids_(last)).toEqual([ids.obs[24]]);
      const three = await search(`Observation/$lastn?patient=Patient/${ids.a}&code=${code}&max=3`);
      // Newest first within a code.
      expect(three.body.entry.map((e: { resource: { id: string } }) => e.resource.id)).toEqual([
        ids.obs[24],
        ids.obs[23],
        ids.obs[22],
      ]);
      // Every code of the patient's, one each: the glucose series gives its latest only.
      const posted = await http('POST', `${fhir}/Observation/$lastn`, {
        body: {
          resourceType: 'Parameters',
          parameter: [
            { name: 'patient', valueString: ids.a },
            { name: 'code', valueString: code },
            { name: 'max', valueInteger: 3 },
          ],
        },
      });
      expect(ids_(posted)).toEqual(ids_(three));
      // Criteria sent in a body stay out of the Bundle's links.
      expect(posted.body.link[0].url).not.toContain(ids.a);
      const all = ids_(await search(`Observation/$lastn?subject=Patient/${ids.a}`));
      expect(all).toContain(ids.obs[24]);
      expect(all).not.toContain(ids.obs[23]);
      for (const [query, said] of [
        [`code=${code}`, 'needs patient (or subject)'],
        [`patient=${ids.a}&max=0`, 'max must be a whole number from 1 to 100'],
        [`patient=${ids.a}&_sort=date`, 'answers in one page'],
      ]) {
        const res = await search(`Observation/$lastn?${query!}`);
        expect(res.status).toBe(400);
        expect(res.body.issue[0].diagnostics).toContain(said!);
      }
      const metadata = await search('metadata');
      const observation = metadata.body.rest[0].resource.find(
        (r: { type: string }) => r.type === 'Observation',
      );
      expect(observation.operation.map((o: { name: string }) => o.name)).toContain('lastn');
    });
    it('refuses, rather than cuts, an answer past one page of 1,000 observations', async () => {
      const patient = await create(buildPatient({ family: `Many${run}`, given: 'Ida' }));
      const system = `urn:lastn-many-${run}`;
      const entry = Array.from({ length: 1001 }, (_, i) => ({
        resource: observation(patient, i, '2024-03-01T08:00:00Z', {
          code: { coding: [{ system, code: `c${i}` }] },
        }),
        request: { method: 'POST', url: 'Observation' },
      }));
      const posted = await http('POST', fhir, {
        body: { resourceType: 'Bundle', type: 'transaction', entry },
      });
      expect(posted.status).toBe(200);
      const all = await search(`Observation/$lastn?patient=${patient}`);
      expect(all.status).toBe(400);
      expect(all.body.issue[0].code).toBe('too-costly');
      const one = await search(`Observation/$lastn?patient=${patient}&code=${system}|c7`);
      expect(one.status).toBe(200);
      expect(one.body.total).toBe(1);
    });

    describe('takes the result parameters of an Observation search', () => {
      let patient: string;
      let latest: string;
      let provenance: string;
      let lastn: string;
      const lastnCode = `lastn-${run}`;
      const modes = (res: HttpResult) =>
        (res.body.entry as { search: { mode: string }; resource: { id: string } }[]).map((e) => [
          e.search.mode,
          e.resource.id,
        ]);

      beforeAll(async () => {
        patient = await create(
          buildPatient({ family: `Lastn${run}`, given: 'Ida', mrn: `MRN-L-${run}` }),
        );
        // A code of their own: the paging test below counts every Observation of `code`.
        const own = { code: { coding: [{ system: LOINC, code: lastnCode }] } };
        await create(observation(patient, 5, '2024-03-01T08:00:00Z', own));
        latest = await create(observation(patient, 6, '2024-03-02T08:00:00Z', own));
        provenance = await create({
          resourceType: 'Provenance',
          target: [{ reference: `Observation/${latest}` }],
          recorded: '2024-03-02T09:00:00Z',
          agent: [{ who: { display: 'Lab analyser' } }],
        });
        lastn = `Observation/$lastn?patient=${patient}&code=${lastnCode}`;
      });

      it('_revinclude and _include, as a search adds them', async () => {
        // _revinclude was ignored: the Provenance asked for was silently missing.
        const rev = await search(`${lastn}&_revinclude=Provenance:target`);
        expect(rev.status).toBe(200);
        expect(modes(rev)).toEqual([
          ['match', latest],
          ['include', provenance],
        ]);
        expect(rev.body.link[0].url).toContain('_revinclude=Provenance%3Atarget');
        const both = await search(
          `${lastn}&_include=Observation:subject&_revinclude=Provenance:target`,
        );
        expect(both.status).toBe(200);
        expect(modes(both)).toEqual([
          ['match', latest],
          ['include', patient],
          ['include', provenance],
        ]);
        const wrong = await search(`${lastn}&_revinclude=Observation:nonsense`);
        expect(wrong.status).toBe(400);
      });

      it('_summary=count and _elements', async () => {
        // _summary=count was ignored: the observations came back.
        const count = await search(`${lastn}&max=5&_summary=count`);
        expect(count.status).toBe(200);
        expect(count.body.total).toBe(2);
        expect(count.body.entry).toBeUndefined();
        const elements = await search(`${lastn}&_elements=status`);
        expect(elements.body.entry[0].resource.valueQuantity).toBeUndefined();
        expect(elements.body.entry[0].resource.status).toBe('final');
      });

      it('refuses what would page or reorder its answer (_count was ignored)', async () => {
        for (const query of ['_count=1', '_count=0', '_sort=-date']) {
          const refused = await search(`${lastn}&${query}`);
          expect(refused.status).toBe(400);
          expect(refused.body.issue[0].code).toBe('not-supported');
          expect(refused.body.issue[0].diagnostics).toContain('answers in one page');
        }
      });
    });
  });

  describe('paging, sorting and result parameters', () => {
    it('pages with next and previous links, without repeats or gaps', async () => {
      const seen: string[] = [];
      let url: string | undefined = `${fhir}/Observation?code=${code}&_count=10&_sort=-date`;
      const pages: string[][] = [];
      while (url) {
        const res: HttpResult = await http('GET', url);
        expect(res.status).toBe(200);
        const page = res.body.entry.map((e: { resource: { id: string } }) => e.resource.id);
        pages.push(page);
        seen.push(...page);
        url = res.body.link.find((l: { relation: string }) => l.relation === 'next')?.url;
        if (pages.length === 2) {
          const previous = res.body.link.find(
            (l: { relation: string }) => l.relation === 'previous',
          ).url;
          const back = await http('GET', previous);
          expect(back.body.entry.map((e: { resource: { id: string } }) => e.resource.id)).toEqual(
            pages[0],
          );
        }
      }
      expect(pages.map((p) => p.length)).toEqual([10, 10, 6]);
      const counted = await search(`Observation?code=${code}&_sort=-date&_total=accurate&_count=1`);
      expect(counted.body.total).toBe(26);
      expect(new Set(seen).size).toBe(26);
      // -date: newest first, B's 2023 observation last.
      expect(seen[0]).toBe(ids.obs[24]);
      expect(seen[25]).toBe(ids.obsB);
    });

    it('stays stable when resources are added while paging', async () => {
      const first = await search(`Observation?code=${code}&_count=10`);
      const next = first.body.link.find((l: { relation: string }) => l.relation === 'next').url;
      await create(observation(ids.b, 1, '2022-01-01'));
      const second = await http('GET', next);
      const firstIds = first.body.entry.map((e: { resource: { id: string } }) => e.resource.id);
      const secondIds = second.body.entry.map((e: { resource: { id: string } }) => e.resource.id);
      expect(secondIds.filter((id: string) => firstIds.includes(id))).toEqual([]);
    });

    it('refuses unknown parameters and unsafe or PHI _sort keys, unless lenient', async () => {
      expect((await search(`Observation?unknown-thing=1`)).status).toBe(400);
      const lenient = await http(
        'GET',
        `${fhir}/Observation?unknown-thing=1&code=${code}&_total=accurate`,
        {
          headers: { prefer: 'handling=lenient' },
        },
      );
      expect(lenient.status).toBe(200);
      // The self link says what the search used; an outcome entry names what it ignored.
      const self = new URL(lenient.body.link[0].url as string);
      expect([...self.searchParams.keys()].sort()).toEqual(['_total', 'code']);
      const ignored = (lenient.body.entry as { search: { mode: string }; resource: any }[]).filter(
        (e) => e.search.mode === 'outcome',
      );
      expect(ignored.map((e) => e.resource.issue[0].diagnostics)).toEqual([
        'Unknown search parameters were ignored: unknown-thing',
      ]);
      expect(ids_(lenient)).toEqual(ids_(await search(`Observation?code=${code}`)));
      for (const sort of ['name;DROP TABLE resource', "date'--", 'family', 'status,', '_id desc']) {
        const res = await search(`Patient?_sort=${encodeURIComponent(sort)}`);
        expect(res.status).toBe(400);
      }
      expect((await search(`Observation?_cursor=not-a-cursor`)).status).toBe(400);
      // A cursor's keys edited into what their columns cannot hold: 500s until 2026-12-06.
      const cursor = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');
      for (const query of [
        `Observation?_sort=_lastUpdated&_cursor=${cursor({ d: 'n', k: ['x', 'x'] })}`,
        `Observation?_sort=-_lastUpdated&_cursor=${cursor({ d: 'n', k: ['2026-02-30 10:00:00+00', 'x'] })}`,
        `Observation?_cursor=${cursor({ d: 'n', k: ['\u0000'] })}`,
      ]) {
        const res = await search(query);
        expect({ query, status: res.status }).toEqual({ query, status: 400 });
        expect(res.body.issue[0].diagnostics).toContain('follow the Bundle links');
      }
      // Defined in R4 but not indexed here: said so, rather than "unknown".
      for (const [query, kind] of [
        ['MolecularSequence?chromosome-variant-coordinate=1$gt10$lt20', 'composite'],
        ['Observation?_text=x', 'string'],
      ]) {
        const res = await search(query!);
        expect(res.status).toBe(400);
        expect(res.body.issue[0]).toMatchObject({
          code: 'not-supported',
          diagnostics: expect.stringContaining(`is a ${kind!} search parameter`),
        });
      }
      expect((await search(`Patient?_sort=-birthdate`)).status).toBe(400);
    });

    it('refuses a result parameter that takes one value given twice, unless lenient (the first)', async () => {
      // R4 lets _include and _revinclude repeat; _count, _sort, _total, _summary and _elements
      // take one value (a list, for _sort and _elements, is comma-separated).
      for (const [query, name] of [
        [`_count=5&_count=50`, '_count'],
        [`_sort=date&_sort=-date`, '_sort'],
        [`_total=accurate&_total=none`, '_total'],
        [`_summary=count&_summary=count`, '_summary'],
        [`_elements=status&_elements=code`, '_elements'],
      ]) {
        const res = await search(`Observation?code=${code}&${query!}`);
        expect([query, res.status, res.body.issue?.[0]?.code]).toEqual([query, 400, 'invalid']);
        expect(res.body.issue[0].diagnostics).toContain(name);
      }
      const repeated = await search(
        `Observation?code=${code}&_include=Observation:subject&_include=Observation:performer`,
      );
      expect(repeated.status).toBe(200);
      const lenient = await http('GET', `${fhir}/Observation?code=${code}&_count=5&_count=50`, {
        headers: { prefer: 'handling=lenient' },
      });
      expect(lenient.status).toBe(200);
      expect(ids_(lenient)).toHaveLength(5);
      expect(new URL(lenient.body.link[0].url as string).searchParams.getAll('_count')).toEqual([
        '5',
      ]);
      const outcomes = (lenient.body.entry as { search: { mode: string }; resource: any }[])
        .filter((e) => e.search.mode === 'outcome')
        .map((e) => e.resource.issue[0]);
      expect(outcomes).toEqual([
        expect.objectContaining({
          severity: 'warning',
          diagnostics: '_count takes one value; the first was used: 5',
        }),
      ]);
    });

    it('refuses what PostgreSQL cannot compare (year 0000, NUL) with a 400, and takes year 9999', async () => {
      // Each was a 500: PostgreSQL refuses the year 0000 (and a time zone that moves 0001 back
      // into it) and any text holding a NUL byte.
      for (const query of [
        'Observation?date=ge0000',
        'Observation?date=0000-06-01',
        'Observation?date=lt0001-01-01T00:00:00%2B01:00',
        'Observation?date=9999-12-31T23:00:00-05:00',
        'Observation?_lastUpdated=le0000',
        'Patient?birthdate=0000',
        'Observation?code=%00',
        `Observation?code=${code}&subject=Patient/%00`,
        'Patient?family=a%00b',
        'Observation?date=ge2024,ge%00',
      ]) {
        const res = await search(query);
        expect({ query, status: res.status, code: res.body.issue?.[0]?.code }).toEqual({
          query,
          status: 400,
          code: expect.any(String),
        });
      }
      expect((await search('Observation?date=ge0000')).body.issue[0].diagnostics).toMatch(
        /years 0001 to 9999/,
      );
      // The end of 9999 is 10000-01-01, which JavaScript writes as +010000: still an instant.
      const late = await create(observation(ids.a, 1, '9999-12-31'));
      for (const query of ['date=9999', 'date=gt9999-12-30', 'date=sa9999-12-30']) {
        const res = await search(`Observation?code=${code}&${query}`);
        expect({ query, ids: ids_(res) }).toEqual({ query, ids: [late] });
      }
      for (const query of ['date=le9999', '_lastUpdated=le9999', 'date=ap9999']) {
        const res = await search(`Observation?code=${code}&${query}&_count=100`);
        expect({ query, late: ids_(res).includes(late) }).toEqual({ query, late: true });
      }
      expect((await http('DELETE', `${fhir}/Observation/${late}`)).status).toBe(204);
    });

    it('supports _summary=count and _elements (with the mandatory elements)', async () => {
      const count = await search(`Observation?code=${code}&_summary=count`);
      expect(count.body.total).toBeGreaterThanOrEqual(26);
      // No entry at all: FHIR JSON has no empty arrays.
      expect(count.body).not.toHaveProperty('entry');
      const none = await search(`Observation?code=${code}&_count=0`);
      expect(none.body).toMatchObject({ total: count.body.total });
      expect(none.body).not.toHaveProperty('entry');
      const elements = await search(`Observation?_id=${ids.obsB}&_elements=status`);
      const resource = elements.body.entry[0].resource;
      // Observation.code is mandatory (1..1): returned whether asked for or not.
      expect(Object.keys(resource).sort()).toEqual([
        'code',
        'id',
        'meta',
        'resourceType',
        'status',
      ]);
      expect(resource.meta.tag).toContainEqual(expect.objectContaining({ code: 'SUBSETTED' }));
      // A choice element by its base name (value[x] as value) or by its concrete name; another
      // type of the choice is not the one asked for.
      const chosen = async (elements: string) =>
        Object.keys(
          (await search(`Observation?_id=${ids.obsB}&_elements=${elements}`)).body.entry[0]
            .resource,
        ).sort();
      const withValue = ['code', 'id', 'meta', 'resourceType', 'status', 'valueQuantity'];
      expect(await chosen('value')).toEqual(withValue);
      expect(await chosen('valueQuantity')).toEqual(withValue);
      expect(await chosen('status,effectiveDateTime')).toEqual(
        ['code', 'effectiveDateTime', 'id', 'meta', 'resourceType', 'status'].sort(),
      );
      expect(await chosen('valueString')).toEqual(['code', 'id', 'meta', 'resourceType', 'status']);
      // A read takes them as a search does.
      const read = await search(`Observation/${ids.obsB}?_elements=valueQuantity`);
      expect(read.body.valueQuantity).toEqual(expect.objectContaining({ value: 9.9 }));
    });

    it('supports _summary=true, text and data from the definitions, marked SUBSETTED', async () => {
      const id = await create({
        ...buildPatient({ family: `Summary${run}`, given: 'Sam', mrn: `MRN-S-${run}` }),
        text: { status: 'generated', div: '<div xmlns="http://www.w3.org/1999/xhtml">Sam</div>' },
        deceasedBoolean: false,
        maritalStatus: { text: 'Married' },
        communication: [{ language: { text: 'English' } }],
        _gender: { extension: [{ url: 'urn:example:note', valueString: 'self-declared' }] },
      });
      const keys = async (summary: string): Promise<string[]> => {
        const res = await search(`Patient?_id=${id}&_summary=${summary}`);
        expect(res.status).toBe(200);
        const resource = res.body.entry[0].resource;
        if (summary !== 'false') {
          expect(resource.meta.tag).toContainEqual(expect.objectContaining({ code: 'SUBSETTED' }));
        }
        return Object.keys(resource).sort();
      };
      // isSummary elements: a choice under its typed name, a primitive's extensions with it.
      expect(await keys('true')).toEqual([
        '_gender',
        'active',
        'address',
        'birthDate',
        'deceasedBoolean',
        'gender',
        'id',
        'identifier',
        'meta',
        'name',
        'resourceType',
        'telecom',
      ]);
      expect(await keys('text')).toEqual(['id', 'meta', 'resourceType', 'text']);
      const data = await keys('data');
      expect(data).not.toContain('text');
      expect(data).toEqual(expect.arrayContaining(['communication', 'maritalStatus', 'name']));
      expect(await keys('false')).toContain('text');
      for (const wrong of ['_summary=yes', '_summary=true&_elements=name']) {
        expect((await search(`Patient?_id=${id}&${wrong}`)).status).toBe(400);
      }
    });

    it('searches by POST with a form body, keeping the criteria out of the URL', async () => {
      const res = await plainHttp('POST', `${fhir}/Patient/_search`, {
        raw: new URLSearchParams({
          identifier: `MRN-A-${run},MRN-B-${run}`,
          _count: '1',
        }).toString(),
        headers: {
          authorization: `Bearer ${token}`,
          'content-type': 'application/x-www-form-urlencoded',
        },
      });
      expect(res.status).toBe(200);
      const first = res.body.entry.map((e: { resource: { id: string } }) => e.resource.id);
      expect(first).toHaveLength(1);
      const urls = res.body.link.map((l: { url: string }) => l.url).join(' ');
      expect(urls).not.toContain('MRN');
      const next = res.body.link.find((l: { relation: string }) => l.relation === 'next').url;
      const second = await http('GET', next);
      const both = [
        ...first,
        ...second.body.entry.map((e: { resource: { id: string } }) => e.resource.id),
      ];
      expect(both.sort()).toEqual([ids.a, ids.b].sort());
      // The sealed link is bound to its user: another user cannot replay it.
      const stranger = authorizedHttp(await tokenFor(testApp, 'doctor'));
      expect((await stranger('GET', next)).status).toBe(400);
    });

    it('answers parameters named like what every object has as unknown ones, however they come', async () => {
      const form = (body: string, headers: Record<string, string> = {}) =>
        http('POST', `${fhir}/Patient/_search`, {
          raw: body,
          headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers },
        });
      const unknown = (name: string) => ({
        code: 'invalid',
        diagnostics: `Unknown search parameter ${name} for Patient`,
      });
      for (const name of ['constructor', 'toString', 'hasOwnProperty', '__proto__']) {
        for (const res of [
          await form(`${name}=1`),
          // __proto__ replaced the form's prototype: the criterion vanished, and every row came.
          await form(`identifier=MRN-A-${run}&${name}=x`),
          await http('GET', `${fhir}/Patient?${name}=1`),
          await http('DELETE', `${fhir}/Patient?${name}=1`),
          await http('POST', `${fhir}/Patient`, {
            body: buildPatient(),
            headers: { 'if-none-exist': `${name}=x` },
          }),
        ]) {
          expect(res.status).toBe(400);
          expect(res.body.issue[0]).toMatchObject(unknown(name));
        }
        const lenient = await form(`identifier=MRN-A-${run}&${name}=x`, {
          prefer: 'handling=lenient',
        });
        expect(lenient.status).toBe(200);
        expect(ids_(lenient)).toEqual([ids.a]);
      }
      // Criteria in the query string and the body are combined, not the one replacing the other.
      const both = await http('POST', `${fhir}/Patient/_search?identifier=MRN-A-${run}`, {
        raw: `identifier=MRN-B-${run}`,
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
      });
      expect(both.status).toBe(200);
      expect(ids_(both)).toEqual([]);
      // A JSON body: text values (or lists of them) only.
      const json = (body: unknown) =>
        http('POST', `${fhir}/Patient/_search`, {
          raw: JSON.stringify(body),
          headers: { 'content-type': 'application/json' },
        });
      expect(ids_(await json({ identifier: [`MRN-A-${run}`] }))).toEqual([ids.a]);
      for (const body of [{ gender: 1 }, { gender: [true] }, { gender: { a: 'b' } }, ['gender']]) {
        const res = await json(body);
        expect(res.status).toBe(400);
        expect(res.body.issue[0].code).toBe('invalid');
      }
    });
  });

  describe('prefixes at the edges (R4 search: date, number, quantity)', () => {
    // Patients of this block only, found by MRN.
    async function patient(tag: string, extra: Record<string, unknown>): Promise<string> {
      return create({ ...buildPatient({ mrn: `MRN-${tag}-${run}` }), ...extra });
    }
    const find = async (query: string, tags: string[]): Promise<string[]> => {
      const mine = `&identifier=${tags.map((tag) => `MRN-${tag}-${run}`).join(',')}`;
      const res = await search(`Patient?${query}${mine}&_count=100`);
      expect({ query, status: res.status }).toEqual({ query, status: 200 });
      return ids_(res);
    };

    it('finds birth dates before 1800 and after 2099 by range, as it does by equality', async () => {
      const old = await patient('old', { birthDate: '1799-12-31' });
      const edge = await patient('edge', { birthDate: '1800-01-01' });
      const ancient = await patient('ancient', { birthDate: '0001-01-01' });
      const placeholder = await patient('placeholder', { birthDate: '1753-01' });
      const future = await patient('future', { birthDate: '2150' });
      const tags = ['old', 'edge', 'ancient', 'placeholder', 'future'];
      const cases: [string, string[]][] = [
        ['birthdate=1799', [old]],
        ['birthdate=lt1850', [old, edge, ancient, placeholder]],
        ['birthdate=le1800', [old, edge, ancient, placeholder]],
        ['birthdate=ge1799', [old, edge, future]],
        ['birthdate=lt1800', [old, ancient, placeholder]],
        ['birthdate=lt1753-01-15', [ancient, placeholder]],
        ['birthdate=lt1753', [ancient]],
        ['birthdate=gt1753', [old, edge, future]],
        ['birthdate=eb1700', [ancient]],
        ['birthdate=gt2100', [future]],
        ['birthdate=ge2150-06', [future]],
        ['birthdate=lt0002', [ancient]],
      ];
      for (const [query, expected] of cases) {
        expect({ query, ids: await find(query, tags) }).toEqual({ query, ids: expected.sort() });
      }
    });

    it('refuses a time on birthdate and death-date, whose blind index holds days', async () => {
      await patient('night', { birthDate: '1980-04-13', deceasedDateTime: '2024-03-02T01:00:00Z' });
      for (const query of [
        'birthdate=1980-04-12T23:00:00-05:00',
        'death-date=sa2024-03-02T02:00:00Z',
        'death-date=eb2024-03-02T02:00:00Z',
        'death-date=gt2024-03-02T03:30:00Z',
        'death-date=2024-03-02T03:30',
      ]) {
        const res = await search(`Patient?${query}`);
        expect({ query, status: res.status }).toEqual({ query, status: 400 });
        expect(res.body.issue[0].diagnostics).toMatch(/days/);
      }
      // The date alone is still searched, on the day the death is stored in (UTC).
      const night = await find('death-date=2024-03-02', ['night']);
      expect(night).toHaveLength(1);
    });

    it('sa and eb on birth dates find only dates wholly after or before the value', async () => {
      const year = await patient('year', { birthDate: '1980' });
      const month = await patient('month', { birthDate: '1980-04' });
      const day = await patient('day', { birthDate: '1980-04-20' });
      const later = await patient('later', { birthDate: '1981-02' });
      const tags = ['year', 'month', 'day', 'later'];
      const cases: [string, string[]][] = [
        ['birthdate=sa1980-04-12', [day, later]],
        ['birthdate=eb1980-04-12', []],
        ['birthdate=sa1980-03', [month, day, later]],
        ['birthdate=eb1980-05', [month, day]],
        ['birthdate=sa1980', [later]],
        ['birthdate=gt1980-04-12', [year, month, day, later]],
        ['birthdate=ge1980', [year, month, day, later]],
      ];
      for (const [query, expected] of cases) {
        expect({ query, ids: await find(query, tags) }).toEqual({ query, ids: expected.sort() });
      }
    });

    // R4 words ge as "the range above the search value intersects the range of the target", and
    // reads here, as in HAPI, the range from the value's start on: ge and le are any overlap, so
    // together they find what holds an instant (HL7 feeds find a visit by its admit time so).
    it('ge and le on a date are any overlap with the range from (to) the value', async () => {
      const encounter = (start: string, end: string) =>
        create({
          resourceType: 'Encounter',
          status: 'finished',
          class: { code: 'AMB' },
          subject: { reference: `Patient/${ids.a}` },
          type: [{ coding: [{ system: LOINC, code: `enc-${run}` }] }],
          period: { start, end },
        });
      const f = await encounter('2024-02-28T10:00:00Z', '2024-03-01T11:00:00Z');
      const g = await encounter('2024-03-01T10:00:00Z', '2024-03-03T10:00:00Z');
      const inside = await encounter('2024-03-01T08:00:00Z', '2024-03-01T09:00:00Z');
      const mine = `&type=${LOINC}|enc-${run}`;
      const cases: [string, string[]][] = [
        ['date=ge2024-03-01', [f, g, inside]],
        ['date=le2024-03-01', [f, g, inside]],
        ['date=gt2024-03-01', [g]],
        ['date=lt2024-03-01', [f]],
        ['date=2024-03-01', [inside]],
        ['date=ge2024-02', [f, g, inside]],
        ['date=le2024-03', [f, g, inside]],
      ];
      for (const [query, expected] of cases) {
        const res = await search(`Encounter?${query}${mine}`);
        expect({ query, ids: ids_(res) }).toEqual({ query, ids: expected.sort() });
      }
      // Birth dates, on their blind index, alike.
      const year = await patient('ge-year', { birthDate: '1980' });
      const month = await patient('ge-month', { birthDate: '1980-04' });
      const day = await patient('ge-day', { birthDate: '1980-04-20' });
      const tags = ['ge-year', 'ge-month', 'ge-day'];
      const blind: [string, string[]][] = [
        ['birthdate=ge1980-12-31', [year]],
        ['birthdate=le1980-01-01', [year]],
        ['birthdate=le1980-04', [year, month, day]],
        ['birthdate=le1980-03', [year]],
        ['birthdate=ge1980-04', [year, month, day]],
        ['birthdate=ge1980-04-20', [year, month, day]],
        ['birthdate=ge1980-04-21', [year, month]],
        ['birthdate=le1980-04-19', [year, month]],
        ['birthdate=ge1980', [year, month, day]],
      ];
      for (const [query, expected] of blind) {
        expect({ query, ids: await find(query, tags) }).toEqual({ query, ids: expected.sort() });
      }
    });

    it('quantity: a stated comparator is no value, and a unit is matched as the code is', async () => {
      const quantity = (valueQuantity: Record<string, unknown>) =>
        create({
          resourceType: 'Observation',
          status: 'final',
          code: { coding: [{ system: LOINC, code: `qty-${run}` }] },
          subject: { reference: `Patient/${ids.a}` },
          valueQuantity,
        });
      const below = await quantity({ value: 5.4, comparator: '<', code: 'mg', system: UCUM });
      const named = await quantity({ value: 5.4, unit: 'milligram', code: 'mg', system: UCUM });
      const mine = `&code=${LOINC}|qty-${run}`;
      const cases: [string, string[]][] = [
        [`value-quantity=gt5|${UCUM}|mg`, [named]],
        [`value-quantity=5.4|${UCUM}|mg`, [named]],
        ['value-quantity=5.4||milligram', [named]],
        ['value-quantity=5.4||mg', [named]],
        [`value-quantity=5.4|${UCUM}|milligram`, []],
        ['value-quantity:missing=false', [below, named]],
      ];
      for (const [query, expected] of cases) {
        const res = await search(`Observation?${query}${mine}`);
        expect({ query, ids: ids_(res) }).toEqual({ query, ids: expected.sort() });
      }
    });

    it('number and quantity values with an exponent, at the precision of their digits', async () => {
      const risk = async (probabilityDecimal: number) =>
        create({
          resourceType: 'RiskAssessment',
          status: 'final',
          subject: { reference: `Patient/${ids.b}` },
          method: { coding: [{ system: LOINC, code: `exp-${run}` }] },
          prediction: [{ probabilityDecimal }],
        });
      // At most 100: a probability is a percentage (invariant ras-2).
      const ten = await risk(10);
      const near = await risk(10.3);
      const far = await risk(16);
      const mine = `&method=${LOINC}|exp-${run}`;
      const cases: [string, string[]][] = [
        ['probability=1e1', [ten, near]],
        ['probability=1E%2B1', [ten, near]],
        ['probability=1.00e1', [ten]],
        ['probability=gt1.2e1', [far]],
        ['probability=lt100e-1', []],
        ['probability=le100e-1', [ten]],
      ];
      for (const [query, expected] of cases) {
        const res = await search(`RiskAssessment?${query}${mine}`);
        expect({ query, ids: ids_(res) }).toEqual({ query, ids: expected.sort() });
      }
      const quantity = await search(`Observation?value-quantity=ge8e0|${UCUM}|mmol/L&code=${code}`);
      expect(quantity.status).toBe(200);
      expect(ids_(quantity).length).toBeGreaterThan(0);
    });
  });

  it('finds a conditional match from its identifier on a type PostgreSQL has no statistics on', async () => {
    const data = testApp.app.get(DataSource);
    const service = testApp.app.get(FhirService);
    // Statistics taken before the type's first rows (a new deployment's first minute, a type
    // first written long after the last ANALYZE): PostgreSQL believes it has about one row.
    const before = await data.query<{ n: number }[]>(
      `SELECT count(*)::int AS n FROM resource WHERE resource_type = 'Substance'`,
    );
    expect(before[0]!.n).toBe(0);
    await data.query('ANALYZE resource, search_blind');
    const system = `urn:substance:${run}`;
    const created = await service.createMany(
      HL7_USER,
      Array.from({ length: 300 }, (_, i) => ({
        type: 'Substance',
        body: {
          resourceType: 'Substance',
          identifier: [{ system, value: `s-${i}` }],
          code: { text: `substance ${i}` },
        },
      })),
    );
    const repository = testApp.app.get(SearchRepository);
    const lookups = jest.spyOn(repository, 'ids');
    let found: string | undefined;
    let calls: Parameters<SearchRepository['ids']>[] | undefined;
    try {
      found = await testApp.app
        .get(CriteriaMatches)
        .findUnique(HL7_USER, 'Substance', `identifier=${system}|s-150`);
      calls = [...lookups.mock.calls];
    } finally {
      lookups.mockRestore();
    }
    expect(found).toBe(created[150]!.id);
    // The lookup as PostgreSQL runs it, with its values: it reads the match's row, not the
    // type's 300 rows in id order (each checked against the identifier's index).
    expect(calls).toHaveLength(1);
    const [where, values, limit, candidates] = calls[0]!;
    const explained = await data.query<{ 'QUERY PLAN': [PlanRoot] }[]>(
      `EXPLAIN (ANALYZE, FORMAT JSON) ${idsSql(where, limit, candidates)}`,
      values,
    );
    const plan = explained[0]!['QUERY PLAN'][0];
    const resourceRows = (node: PlanNode): number =>
      (node['Relation Name'] === 'resource' ? node['Actual Rows'] * node['Actual Loops'] : 0) +
      (node.Plans ?? []).reduce((sum, child) => sum + resourceRows(child), 0);
    expect(resourceRows(plan.Plan)).toBe(1);
  });
});
