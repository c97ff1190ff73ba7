import { getDataSourceToken } from '@nestjs/typeorm';
import type { DataSource } from 'typeorm';
import { INDEX_TABLES } from '../../src/fhir/search/search-index.repository.js';
import { tokenFor } from '../support/auth.js';
import { withEnv } from '../support/env.js';
import { authorizedHttp, type HttpFn } from '../support/http.js';
import { createTestApp, type TestApp } from '../support/test-app.js';

/** The cap these tests run under: FHIR_INDEX_ROWS_MAX's lowest value. */
const MAX_ROWS = 100;

/**
 * A Patient with `count` general practitioners, each one reference row (absolute URLs: another
 * server's, which reference integrity does not look up). With its `deceased` token row, it has
 * `count + 1` index rows.
 */
function patientWith(count: number, id?: string): Record<string, unknown> {
  return {
    resourceType: 'Patient',
    ...(id ? { id } : {}),
    generalPractitioner: Array.from({ length: count }, (_, i) => ({
      reference: `https://elsewhere.example/fhir/Practitioner/gp-${i}`,
    })),
  };
}

describe('FHIR: the cap on search index rows per resource version', () => {
  let testApp: TestApp;
  let restoreEnv: () => void;
  let http: HttpFn;
  let db: DataSource;
  let fhir: string;

  beforeAll(async () => {
    restoreEnv = withEnv({ FHIR_INDEX_ROWS_MAX: String(MAX_ROWS) });
    testApp = await createTestApp();
    http = authorizedHttp(await tokenFor(testApp, 'doctor'));
    db = testApp.app.get<DataSource>(getDataSourceToken());
    fhir = `${testApp.url}/fhir`;
  });

  afterAll(async () => {
    await testApp.close();
    restoreEnv();
  });

  const indexRowsOf = async (id: string): Promise<number> => {
    let total = 0;
    for (const table of INDEX_TABLES) {
      const [row] = await db.query<{ count: string }[]>(
        `SELECT count(*) FROM "${table}" WHERE resource_type = 'Patient' AND resource_id = $1`,
        [id],
      );
      total += Number(row!.count);
    }
    return total;
  };
  const patients = async (): Promise<number> =>
    Number(
      (
        await db.query<{ count: string }[]>(
          `SELECT count(*) FROM resource_history WHERE resource_type = 'Patient'`,
        )
      )[0]!.count,
    );

  it('stores a resource at the cap', async () => {
    const created = await http('POST', `${fhir}/Patient`, { body: patientWith(MAX_ROWS - 1) });
    expect(created.status).toBe(201);
    expect(await indexRowsOf(created.body.id as string)).toBe(MAX_ROWS);
  });

  it('refuses a create past the cap with 422 too-costly naming the cap, and stores nothing', async () => {
    const before = await patients();
    const refused = await http('POST', `${fhir}/Patient`, { body: patientWith(MAX_ROWS) });
    expect(refused.status).toBe(422);
    expect(refused.body).toMatchObject({
      resourceType: 'OperationOutcome',
      issue: [
        {
          code: 'too-costly',
          diagnostics: expect.stringContaining(`more than ${MAX_ROWS} search index rows`),
        },
      ],
    });
    expect(JSON.stringify(refused.body)).not.toContain('gp-');
    expect(await patients()).toBe(before);
  });

  it('refuses an update past the cap and keeps the version there was', async () => {
    const id = `cap-${Date.now()}`;
    expect((await http('PUT', `${fhir}/Patient/${id}`, { body: patientWith(3, id) })).status).toBe(
      201,
    );
    const refused = await http('PUT', `${fhir}/Patient/${id}`, {
      body: patientWith(MAX_ROWS, id),
    });
    expect(refused.status).toBe(422);
    expect(refused.body.issue[0].code).toBe('too-costly');
    const read = await http('GET', `${fhir}/Patient/${id}`);
    expect(read.body.meta.versionId).toBe('1');
    expect(await indexRowsOf(id)).toBe(4);
  });
});
