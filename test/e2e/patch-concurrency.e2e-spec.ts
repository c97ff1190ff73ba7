import { jest } from '@jest/globals';
import { setTimeout as sleep } from 'node:timers/promises';
import { ResourceAccess } from '../../src/access/resource-access.js';
import { buildPatient } from '../support/factories.js';
import type { HttpFn } from '../support/http.js';
import { doctorApp } from '../support/doctor-app.js';
import type { TestApp } from '../support/test-app.js';

describe('PATCH while other writes change the resource', () => {
  let testApp: TestApp;
  let http: HttpFn;
  let fhir: string;

  beforeAll(async () => {
    ({ testApp, http, fhir } = await doctorApp());
  });

  afterEach(() => {
    jest.restoreAllMocks();
  });

  afterAll(async () => {
    await testApp.close();
  });

  /**
   * Each time a PATCH has read the resource and before it applies the patch (up to `times`),
   * runs the next of `writes` to completion, or gives up after 5 s: a write that waits that
   * long waits for a row lock the PATCH holds while it evaluates. Resolves with whether each
   * finished in time.
   */
  function duringPatchEvaluation(...writes: (() => Promise<unknown>)[]): boolean[] {
    const access = testApp.app.get(ResourceAccess);
    const original = access.assertMayOpen.bind(access);
    const finished: boolean[] = [];
    jest.spyOn(access, 'assertMayOpen').mockImplementation(async (...args) => {
      const write = args[2] === 'patch' ? writes.shift() : undefined;
      if (write) {
        finished.push(
          await Promise.race([write().then(() => true), sleep(5_000).then(() => false)]),
        );
      }
      return original(...args);
    });
    return finished;
  }

  async function createPatient(): Promise<{ id: string; body: Record<string, unknown> }> {
    const created = await http('POST', `${fhir}/Patient`, { body: buildPatient() });
    expect(created.status).toBe(201);
    return { id: created.body.id, body: created.body };
  }

  const jsonPatch = (id: string, headers: Record<string, string> = {}) =>
    http('PATCH', `${fhir}/Patient/${id}`, {
      headers: { 'content-type': 'application/json-patch+json', ...headers },
      body: [{ op: 'replace', path: '/active', value: false }],
    });

  const update = (id: string, body: Record<string, unknown>, birthDate: string) => () =>
    http('PUT', `${fhir}/Patient/${id}`, { body: { ...body, meta: undefined, birthDate } });

  it('lets another write through while it is evaluated, then patches the version that write made', async () => {
    const { id, body } = await createPatient();
    const finished = duringPatchEvaluation(update(id, body, '1970-03-04'));
    const patched = await jsonPatch(id);
    expect(finished).toEqual([true]);
    expect(patched.status).toBe(200);
    // The patch applied to what the other write stored: neither change is lost.
    expect(patched.body).toMatchObject({
      active: false,
      birthDate: '1970-03-04',
      meta: { versionId: '3' },
    });
    expect((await http('GET', `${fhir}/Patient/${id}`)).body).toMatchObject({
      active: false,
      birthDate: '1970-03-04',
    });
  });

  it('answers 412 when If-Match named the version another write replaced meanwhile', async () => {
    const { id, body } = await createPatient();
    const finished = duringPatchEvaluation(update(id, body, '1970-03-04'));
    const patched = await jsonPatch(id, { 'if-match': 'W/"1"' });
    expect(finished).toEqual([true]);
    expect(patched.status).toBe(412);
    const stored = (await http('GET', `${fhir}/Patient/${id}`)).body;
    expect(stored.meta.versionId).toBe('2');
    expect(stored.active).toBe(true);
  });

  it('answers 409 when other writes replace the version it read three times over', async () => {
    const { id, body } = await createPatient();
    const finished = duringPatchEvaluation(
      update(id, body, '1970-01-01'),
      update(id, body, '1970-01-02'),
      update(id, body, '1970-01-03'),
    );
    const patched = await jsonPatch(id);
    expect(finished).toEqual([true, true, true]);
    expect(patched.status).toBe(409);
    expect(patched.body.issue[0]).toMatchObject({
      code: 'conflict',
      diagnostics: 'Patient resource changed 3 times while the patch was applied; send it again',
    });
    const stored = (await http('GET', `${fhir}/Patient/${id}`)).body;
    expect(stored).toMatchObject({ birthDate: '1970-01-03', meta: { versionId: '4' } });
    expect(stored.active).toBe(true);
  });
});
