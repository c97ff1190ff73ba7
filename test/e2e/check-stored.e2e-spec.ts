import { DataSource } from 'typeorm';
import { ResourceEntity } from '../../src/fhir/resource.entity.js';
import { buildPatient } from '../support/factories.js';
import { tokenFor } from '../support/auth.js';
import { authorizedHttp } from '../support/http.js';
import { BUILT, childEnv, runNode } from '../support/process.js';
import { appOnScratchDatabase, type ScratchDatabase } from '../support/scratch-database.js';
import type { TestApp } from '../support/test-app.js';

describe('npm run cli -- fhir:check-stored', () => {
  let database: ScratchDatabase;
  let testApp: TestApp;
  let close: () => Promise<void>;

  beforeAll(async () => {
    ({ database, testApp, close } = await appOnScratchDatabase());
  });

  afterAll(() => close());

  it('lists the stored resources the current rules refuse, by type, id and path, never a value', async () => {
    const http = authorizedHttp(await tokenFor(testApp, 'doctor'));
    const create = async (family: string): Promise<string> =>
      String(
        (await http('POST', `${testApp.url}/fhir/Patient`, { body: buildPatient({ family }) })).body
          .id,
      );
    const [fine, empty, entity] = [
      await create('Checkfine'),
      await create('Checkempty'),
      await create('Checkentity'),
    ];
    // As stored before the rules that refuse them existed (2026-12-06): written past them here.
    const resources = testApp.app.get(DataSource).getRepository(ResourceEntity);
    const storeAsBefore = async (id: string, change: Record<string, unknown>): Promise<void> => {
      const row = await resources.findOneByOrFail({ resourceType: 'Patient', id });
      row.content = JSON.stringify({ ...JSON.parse(row.content!), ...change });
      await resources.save(row);
    };
    await storeAsBefore(empty, { maritalStatus: {} });
    await storeAsBefore(entity, {
      text: {
        status: 'generated',
        div: '<div xmlns="http://www.w3.org/1999/xhtml">Checkentity&nbsp;</div>',
      },
    });
    // Still read as before; refused on a PUT of what was read.
    const read = await http('GET', `${testApp.url}/fhir/Patient/${empty}`);
    expect(read.status).toBe(200);
    expect(
      (await http('PUT', `${testApp.url}/fhir/Patient/${empty}`, { body: read.body })).status,
    ).toBe(400);

    const result = await runNode(
      BUILT.cli,
      ['fhir:check-stored'],
      childEnv({
        DATABASE_URL: database.url,
        PHI_MASTER_KEY: process.env['PHI_MASTER_KEY']!,
        LOG_LEVEL: 'silent',
      }),
    );
    expect(result.code).toBe(1);
    const lines = result.stdout.trim().split('\n').sort();
    expect(lines).toHaveLength(2);
    expect(lines).toContain(`Patient\t${empty}\tPatient.maritalStatus`);
    expect(lines.find((line) => line.startsWith(`Patient\t${entity}\t`))).toMatch(
      /\tPatient\.text/,
    );
    expect(result.stdout).not.toContain(fine);
    expect(result.stdout + result.stderr).not.toMatch(/Check(empty|entity)|nbsp/);
    expect(result.stderr).toMatch(/^Checked \d+ resources: 2 refused$/m);
  });
});
