import { DataSource } from 'typeorm';
import { BlindIndexer } from '../../src/crypto/blind-index.js';
import { startsWithTerm } from '../../src/fhir/search/blind-terms.js';
import { blindField } from '../../src/fhir/search/index-extractor.js';
import { legacyNormalizeString, unmarkedNormalizeString } from '../../src/fhir/search/normalize.js';
import { ReindexService } from '../../src/fhir/search/reindex.service.js';
import { SearchIndexStatus } from '../../src/fhir/search/search-index-status.js';
import { buildPatient } from '../support/factories.js';
import { tokenFor } from '../support/auth.js';
import { authorizedHttp, type HttpFn } from '../support/http.js';
import { appOnScratchDatabase } from '../support/scratch-database.js';
import type { TestApp } from '../support/test-app.js';

/**
 * Names indexed before index version 3 hold their older form (`weißbach`, not `weissbach`):
 * searches look it up too, but only while search_index_state says rows of an older version
 * may remain. Once `search:reindex` has brought every row to 3, a name search hashes one form.
 */
describe('the older form of names, searched until the index is rebuilt', () => {
  let testApp: TestApp;
  let close: () => Promise<void>;
  let doctor: HttpFn;
  let dataSource: DataSource;
  let status: SearchIndexStatus;

  const found = async (family: string): Promise<string[]> => {
    const res = await doctor('GET', `${testApp.url}/fhir/Patient?family=${family}`);
    expect(res.status).toBe(200);
    return ((res.body.entry ?? []) as { resource: { id: string } }[]).map((e) => e.resource.id);
  };
  const indexVersion = async (version: number): Promise<void> => {
    await dataSource.query(`UPDATE search_index_state SET "version" = $1`, [version]);
    await status.refreshForms();
  };
  /** The family name's index rows as a version before 3 wrote them: its older form's prefix. */
  const indexAsBefore = async (
    id: string,
    family: string,
    term = startsWithTerm(legacyNormalizeString(family)).term,
  ): Promise<void> => {
    const hash = testApp.app.get(BlindIndexer).compute(blindField('Patient', 'family'), term);
    await dataSource.query(
      `DELETE FROM search_blind WHERE resource_type = 'Patient' AND resource_id = $1 AND param = 'family'`,
      [id],
    );
    await dataSource.query(
      `INSERT INTO search_blind (resource_type, resource_id, param, hash) VALUES ('Patient', $1, 'family', $2)`,
      [id, hash],
    );
  };

  beforeAll(async () => {
    ({ testApp, close } = await appOnScratchDatabase());
    doctor = authorizedHttp(await tokenFor(testApp, 'doctor'));
    dataSource = testApp.app.get(DataSource);
    status = testApp.app.get(SearchIndexStatus);
    const none = await dataSource.query(`SELECT 1 FROM search_index_state`);
    if (none.length === 0) {
      await dataSource.query(`INSERT INTO search_index_state ("version") VALUES (3)`);
    }
  });

  afterAll(() => close());

  it('finds a name indexed the older way while the index is older, and stops looking once it is not', async () => {
    const created = await doctor('POST', `${testApp.url}/fhir/Patient`, {
      body: buildPatient({ family: 'Weißbach' }),
    });
    expect(created.status).toBe(201);
    const id = created.body.id as string;
    await indexAsBefore(id, 'Weißbach');

    await indexVersion(2);
    expect(await found('Weißbach')).toEqual([id]);
    // Every row at 3 (the rebuild ran): the older form is no longer hashed nor looked up.
    await indexVersion(3);
    expect(await found('Weißbach')).toEqual([]);
  });

  it('finds, after the rebuild, what was indexed the older way and what was written meanwhile', async () => {
    const older = (
      await doctor('POST', `${testApp.url}/fhir/Patient`, {
        body: buildPatient({ family: 'Großmann' }),
      })
    ).body.id as string;
    await indexAsBefore(older, 'Großmann');
    await indexVersion(2);
    // Written while the index is older: indexed as this version indexes.
    const meanwhile = (
      await doctor('POST', `${testApp.url}/fhir/Patient`, {
        body: buildPatient({ family: 'Großmann' }),
      })
    ).body.id as string;
    expect((await found('Großmann')).sort()).toEqual([older, meanwhile].sort());
    await testApp.app.get(ReindexService).reindexAll(() => undefined);
    expect(
      (await dataSource.query(`SELECT "version" FROM search_index_state`))[0].version,
    ).toBeGreaterThanOrEqual(3);
    expect((await found('Großmann')).sort()).toEqual([older, meanwhile].sort());
  });

  it('finds a long name outside the Basic Multilingual Plane by the prefix cut in UTF-16 units, until the rebuild', async () => {
    // Twelve Tangut characters, 24 UTF-16 units: before index version 5 the longest prefix
    // indexed was its first 20 units (ten characters); now it is the whole name.
    const family = '𗼇𗅋𗁅𘝞𗂧𗤶𗈪𗡞𘃡𗹦𗾞𗂸';
    const id = (
      await doctor('POST', `${testApp.url}/fhir/Patient`, { body: buildPatient({ family }) })
    ).body.id as string;
    await indexAsBefore(id, family, `p:${family.slice(0, 20)}`);
    await indexVersion(4);
    expect(await found(encodeURIComponent(family))).toEqual([id]);
    await indexVersion(5);
    expect(await found(encodeURIComponent(family))).toEqual([]);
    await testApp.app.get(ReindexService).reindexAll(() => undefined);
    expect(await found(encodeURIComponent(family))).toEqual([id]);
  });

  it('finds a name indexed with every mark dropped, or Hangul in jamo, until the rebuild', async () => {
    // Before index version 6, ガトウ was indexed as カトウ and 김철수 as its eight jamo.
    const create = async (family: string): Promise<string> => {
      const id = (
        await doctor('POST', `${testApp.url}/fhir/Patient`, { body: buildPatient({ family }) })
      ).body.id as string;
      await indexAsBefore(id, family, startsWithTerm(unmarkedNormalizeString(family)).term);
      return id;
    };
    const gato = await create('ガトウ');
    const kim = await create('김철수');
    await indexVersion(5);
    expect(await found(encodeURIComponent('ガトウ'))).toEqual([gato]);
    expect(await found(encodeURIComponent('김철수'))).toEqual([kim]);
    await indexVersion(6);
    expect(await found(encodeURIComponent('ガトウ'))).toEqual([]);
    await testApp.app.get(ReindexService).reindexAll(() => undefined);
    expect(await found(encodeURIComponent('ガトウ'))).toEqual([gato]);
    expect(await found(encodeURIComponent('김철수'))).toEqual([kim]);
  });
});
