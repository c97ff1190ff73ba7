import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium, type Browser, type Locator, type Page } from 'playwright-core';
import {
  BUILT,
  runNode,
  serviceEnv,
  startService,
  type RunningService,
} from '../support/process.js';
import { createScratchDatabase, type ScratchDatabase } from '../support/scratch-database.js';

/** Debian's Chromium: .ci/run installs it (no browser download works on this network). */
const CHROMIUM = process.env['CHROMIUM_PATH'] ?? '/usr/bin/chromium';
const ARTIFACTS = fileURLToPath(new URL('../artifacts/', import.meta.url));
const LAUNCH_FLAGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
];

if (!existsSync(CHROMIUM)) {
  process.stderr.write(
    `Swagger UI browser test skipped: no Chromium at ${CHROMIUM}. ` +
      'Install Debian\'s "chromium" package (as .ci/run does) or set CHROMIUM_PATH.\n',
  );
}
const describeWithBrowser = existsSync(CHROMIUM) ? describe : describe.skip;

/**
 * Opens one operation of Swagger UI, presses "Try it out", lets `fill` enter its inputs,
 * executes it and returns the status code and the body that the page shows.
 */
async function tryOperation(
  page: Page,
  tag: string,
  operationId: string,
  fill: (operation: Locator) => Promise<void> = () => Promise.resolve(),
): Promise<{ status: number; body: Record<string, unknown>; operation: Locator }> {
  const operation = page.locator(`#operations-${tag}-${operationId}`);
  if (!(await operation.isVisible())) await page.locator(`#operations-tag-${tag}`).click();
  // An operation tried before is still open, in "Try it out" mode.
  if (!(await operation.evaluate((element) => element.classList.contains('is-open')))) {
    await operation.locator('.opblock-summary').first().click();
  }
  const tryOut = operation.locator('.try-out__btn');
  if ((await tryOut.innerText()).trim() === 'Try it out') await tryOut.click();
  await fill(operation);
  // A response shown from an earlier try must not be read as this one's: clear it first.
  const clear = operation.locator('button.btn-clear');
  if ((await clear.count()) > 0) {
    await clear.click();
    await operation.locator('.live-responses-table').waitFor({ state: 'detached' });
  }
  await operation.locator('button.execute').click();
  const response = operation.locator('.live-responses-table tbody .response').first();
  const status = response.locator('.response-col_status');
  await status.waitFor({ timeout: 20_000 });
  const body = await response.locator('.response-col_description pre').first().innerText();
  return {
    status: Number((await status.innerText()).trim()),
    body: JSON.parse(body) as Record<string, unknown>,
    operation,
  };
}

describeWithBrowser('Swagger UI in a real browser (headless Chromium)', () => {
  const password = `Pw-${randomBytes(12).toString('hex')}`;
  let database: ScratchDatabase;
  let dataDir: string;
  let service: RunningService;
  let browser: Browser;

  beforeAll(async () => {
    database = await createScratchDatabase();
    dataDir = await mkdtemp(join(tmpdir(), 'carevault-swagger-ui-'));
    const env = serviceEnv(database.url, dataDir);
    const created = await runNode(
      BUILT.cli,
      ['user:create', '--username', 'integrator', '--role', 'doctor'],
      env,
      { stdin: `${password}\n` },
    );
    expect(created.code).toBe(0);
    service = await startService(env);
    browser = await chromium.launch({ executablePath: CHROMIUM, args: LAUNCH_FLAGS });
  });

  afterAll(async () => {
    await browser?.close();
    await service?.stop();
    await database?.drop();
    await rm(dataDir, { recursive: true, force: true });
  });

  it('logs in, authorizes, creates a Patient, reads it back and finds it from the docs page', async () => {
    const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
    const failed: string[] = [];
    page.on('pageerror', (error) => failed.push(error.message));
    await page.goto(`${service.url}/docs`);
    await page.locator('.information-container .title').waitFor();
    expect(await page.locator('.information-container .title').innerText()).toContain(
      'CareVault API',
    );

    const login = await tryOperation(page, 'Authentication', 'AuthController_login', (op) =>
      op
        .locator('textarea.body-param__text')
        .fill(JSON.stringify({ username: 'integrator', password })),
    );
    expect(login.status).toBe(200);
    const token = login.body['access_token'];
    expect(typeof token).toBe('string');

    // Before authorizing, the API refuses: the page shows the OperationOutcome.
    const refused = await tryOperation(page, 'Patient', 'Patient_FhirController_search');
    expect(refused.status).toBe(401);
    expect(refused.body['resourceType']).toBe('OperationOutcome');

    await page.locator('.auth-wrapper button.authorize').click();
    await page.locator('.modal-ux input').fill(token as string);
    await page.locator('.modal-ux .auth-btn-wrapper button.authorize').click();
    await page.locator('.modal-ux .btn-done').click();

    // The example body Swagger UI fills in is sent as it is.
    const created = await tryOperation(page, 'Patient', 'Patient_FhirController_create');
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject({
      resourceType: 'Patient',
      name: [{ family: 'Example', given: ['Alex'] }],
      meta: { versionId: '1' },
    });
    const id = created.body['id'] as string;

    const read = await tryOperation(page, 'Patient', 'Patient_FhirController_read', (op) =>
      op.locator('tr[data-param-name="id"] input').fill(id),
    );
    expect(read.status).toBe(200);
    expect(read.body).toMatchObject({ resourceType: 'Patient', id, birthDate: '1980-04-12' });

    // Found again by a search: the family parameter is listed on the typed search route.
    const found = await tryOperation(page, 'Patient', 'Patient_FhirController_search', (op) =>
      op.locator('tr[data-param-name="family"] input').fill('Example'),
    );
    expect(found.status).toBe(200);
    expect(found.body).toMatchObject({ resourceType: 'Bundle', type: 'searchset' });
    const entries = (found.body['entry'] ?? []) as { resource: { id: string } }[];
    expect(entries.map((entry) => entry.resource.id)).toContain(id);

    // The same search with the criteria in a form body (POST _search), one field a parameter:
    // Swagger UI sends the fields left empty too, which ask for nothing.
    const posted = await tryOperation(
      page,
      'Patient',
      'Patient_FhirController_searchByPost',
      (op) => op.locator('tr[data-property-name="family"] input[type="text"]').fill('Example'),
    );
    expect(posted.status).toBe(200);
    const postedEntries = (posted.body['entry'] ?? []) as { resource: { id: string } }[];
    expect(postedEntries.map((entry) => entry.resource.id)).toContain(id);

    await mkdir(ARTIFACTS, { recursive: true });
    await read.operation.scrollIntoViewIfNeeded();
    await page.screenshot({ path: join(ARTIFACTS, 'swagger-ui.png') });
    expect(failed).toEqual([]);
  });
});
