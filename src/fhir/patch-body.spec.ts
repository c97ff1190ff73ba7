import type { Operation } from 'fast-json-patch';
import { AppError } from '../common/errors/app-error.js';
import type { FhirResource } from './fhir-types.js';
import { applyPatch, checkPatch } from './patch-body.js';

function refusal(body: unknown): { status: number; code: string; diagnostics: string } {
  try {
    checkPatch(body);
  } catch (error) {
    if (!(error instanceof AppError)) throw error;
    return { status: error.status, ...error.issues[0]! };
  }
  throw new Error('expected an AppError');
}

describe('checkPatch', () => {
  const replaces = (count: number) =>
    Array.from({ length: count }, () => ({ op: 'replace', path: '/active', value: true }));

  it('takes a JSON Patch of up to 100 operations and refuses more as too costly, as a FHIRPath Patch', () => {
    expect(checkPatch(replaces(100))).toHaveLength(100);
    for (const count of [101, 200_000]) {
      expect(refusal(replaces(count))).toMatchObject({
        status: 400,
        code: 'too-costly',
        diagnostics: `A JSON Patch holds at most 100 operations; this one has ${count}`,
      });
    }
  });

  it('counts the operations before reading any, so an invalid one past the cap is not named', () => {
    const body: unknown[] = replaces(150);
    body[120] = { op: 'frobnicate' };
    expect(refusal(body).code).toBe('too-costly');
  });
});

const patient: FhirResource = {
  resourceType: 'Patient',
  id: 'p',
  extension: [{ url: 'http://example.org/a', valueString: 'a' }],
};

describe('applyPatch (JSON Patch)', () => {
  it('applies the operations in order', async () => {
    const patched = await applyPatch(
      patient,
      [
        { op: 'add', path: '/gender', value: 'female' },
        { op: 'copy', from: '/extension/0', path: '/extension/-' },
        { op: 'test', path: '/extension/1/valueString', value: 'a' },
      ],
      1_048_576,
    );
    expect(patched).toMatchObject({ gender: 'female', extension: [{}, { valueString: 'a' }] });
    expect(patient['gender']).toBeUndefined();
  });

  it('names the operation that cannot be applied, and the one whose test fails', async () => {
    const refusal = async (failing: Operation) =>
      (
        (await applyPatch(
          patient,
          [{ op: 'add', path: '/active', value: true }, failing],
          1_048_576,
        ).catch((error: unknown) => error)) as AppError
      ).message;
    // fast-json-patch's own validation says 0 for any operation it refuses.
    expect(await refusal({ op: 'remove', path: '/multipleBirthBoolean' })).toBe(
      'JSON Patch operation 1 cannot be applied to the resource',
    );
    expect(await refusal({ op: 'replace', path: '/name/0/use', value: 'official' })).toBe(
      'JSON Patch operation 1 cannot be applied to the resource',
    );
    expect(await refusal({ op: 'test', path: '/active', value: false })).toBe(
      'JSON Patch operation 1 (test) failed',
    );
  });

  it('refuses, with 422 naming the operation, one that leaves the document no resource', async () => {
    // A path of "" is the whole document (RFC 6902): null, a removal or a missing value in its
    // place left no object, and the service read its resourceType (a 500 until 2026-12-07).
    for (const failing of [
      { op: 'replace', path: '', value: null },
      { op: 'add', path: '', value: null },
      { op: 'remove', path: '' },
      { op: 'copy', from: '/nothing', path: '' },
      { op: 'move', from: '/extension', path: '' },
      { op: 'replace', path: '', value: 'Patient' },
    ] as Operation[]) {
      const refused = await applyPatch(
        patient,
        [{ op: 'add', path: '/active', value: true }, failing],
        1_048_576,
      ).catch((error: unknown) => error);
      expect({ failing, refused }).toMatchObject({
        failing,
        refused: { status: 422, issues: [{ code: 'processing' }] },
      });
      expect((refused as AppError).message).toMatch(/^JSON Patch operation 1 /);
    }
    const whole = { ...patient, gender: 'male' };
    await expect(
      applyPatch(patient, [{ op: 'replace', path: '', value: whole }], 1_048_576),
    ).resolves.toEqual(whole);
  });

  it('refuses copies that together outgrow the body limit, before making them', async () => {
    // Each copy of /extension into itself doubles it: 40 of them, a 1 KB request, took
    // 150 s here before the bound (20 held the service 7 s through the API).
    const doubling: Operation[] = Array.from({ length: 40 }, () => ({
      op: 'copy',
      from: '/extension',
      path: '/extension/-',
    }));
    const started = Date.now();
    const refused = await applyPatch(patient, doubling, 1_048_576).catch((error: unknown) => error);
    expect(Date.now() - started).toBeLessThan(1000);
    expect(refused).toBeInstanceOf(AppError);
    expect(refused).toMatchObject({ status: 422, issues: [{ code: 'too-costly' }] });
    expect((refused as AppError).message).toMatch(/^JSON Patch operation \d+ \(copy\)/);
  });
});
