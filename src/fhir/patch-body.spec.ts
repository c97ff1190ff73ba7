import { AppError } from '../common/errors/app-error.js';
import { checkPatch } from './patch-body.js';

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
