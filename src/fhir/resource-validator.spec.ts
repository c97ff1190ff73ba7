import { Worker } from 'node:worker_threads';
import { AppError } from '../common/errors/app-error.js';
import { FhirDefinitions } from './fhir-definitions.js';
import { jsonLongerThan, ResourceValidator, WORKER_JSON_LENGTH } from './resource-validator.js';
import type { FhirResource } from './fhir-types.js';
import { ValidationThread } from './validation-thread.js';

/** A Patient past WORKER_JSON_LENGTH: its names, then `changes`. */
function largePatient(changes: Record<string, unknown> = {}): FhirResource {
  return {
    resourceType: 'Patient',
    name: Array.from({ length: 2_000 }, (_, i) => ({ family: `Family ${i}`, given: ['Given'] })),
    ...changes,
  };
}

/** What validation throws, or undefined. */
async function thrown(validation: () => unknown): Promise<unknown> {
  try {
    await validation();
  } catch (error) {
    return error;
  }
  return undefined;
}

describe('jsonLongerThan', () => {
  it('tells a resource longer than its JSON from one shorter, roughly', () => {
    for (const resource of [largePatient(), { resourceType: 'Patient', active: true }]) {
      const length = JSON.stringify(resource).length;
      expect(jsonLongerThan(resource, length * 0.9)).toBe(true);
      expect(jsonLongerThan(resource, length * 1.1)).toBe(false);
    }
  });
});

describe('ResourceValidator', () => {
  const definitions = new FhirDefinitions();
  const validator = new ResourceValidator(definitions);

  afterAll(() => validator.onModuleDestroy());

  it('gives a large resource, validated on the worker, the 400 it gets on the event loop', async () => {
    const cases: Record<string, unknown>[] = [
      {},
      { gender: 'f', birthDate: '1970-13-01', active: 'yes' },
      { birthDate: '2024-03-01T10' },
      { photo: [{ title: '' }] },
      { link: [{ constructor: 'x' }] },
      { extension: [{ valueString: 'no url' }] },
    ];
    let invalid = 0;
    for (const changes of cases) {
      const resource = largePatient(changes);
      expect(jsonLongerThan(resource, WORKER_JSON_LENGTH)).toBe(true);
      const here = await thrown(() => definitions.validate(resource));
      const there = await thrown(() => validator.validate(resource));
      if (!here) {
        expect(there).toBeUndefined();
        continue;
      }
      expect(here).toBeInstanceOf(AppError);
      expect(there).toBeInstanceOf(AppError);
      const { status, issues } = there as AppError;
      expect({ status, issues }).toEqual({ status: 400, issues: (here as AppError).issues });
      invalid++;
    }
    expect(invalid).toBe(cases.length - 1);
  });

  it('takes a Binary or attachment over 1 MiB, which BODY_LIMIT and HL7 frames may carry', async () => {
    const data = Buffer.alloc(2 * 1024 * 1024, 7).toString('base64');
    const binary: FhirResource = { resourceType: 'Binary', contentType: 'application/pdf', data };
    expect(await thrown(() => definitions.validate(binary))).toBeUndefined();
    expect(await thrown(() => validator.validate(binary))).toBeUndefined();
  });
});

describe('ValidationThread', () => {
  /** A worker that answers valid, or crashes or hangs on the job named so. */
  const fake = () =>
    new Worker(
      `const { parentPort } = require('node:worker_threads');
      parentPort.on('message', (json) => {
        if (json === '"crash"') process.exit(3);
        if (json === '"hang"') for (;;);
        parentPort.postMessage(json === '"invalid"'
          ? { status: 400, issues: [{ severity: 'error', code: 'invalid', diagnostics: 'No' }] }
          : { valid: true });
      });
      parentPort.postMessage({ ready: true });`,
      { eval: true },
    );
  let started: number;
  let thread: ValidationThread;

  beforeEach(() => {
    started = 0;
    thread = new ValidationThread({ start: () => (started++, fake()), timeLimitMs: 1_000 });
  });

  afterEach(() => thread.close());

  it('answers jobs in turn from one worker', async () => {
    const outcomes = await Promise.all(
      ['"valid"', '"invalid"', '"valid"'].map((json) => thread.validate(json)),
    );
    expect(outcomes).toEqual([undefined, AppError.of(400, 'invalid', 'No'), undefined]);
    expect(started).toBe(1);
  });

  it('fails the job of a worker that dies, and answers the next from a new one', async () => {
    const crashed = thread.validate('"crash"');
    const next = thread.validate('"valid"');
    await expect(crashed).rejects.toThrow('The validation worker exited (3)');
    await expect(next).resolves.toBeUndefined();
    expect(started).toBe(2);
  });

  it('answers a validation past the time limit with a 503, and replaces its worker', async () => {
    const hung = thread.validate('"hang"');
    const next = thread.validate('"invalid"');
    const error = await thrown(() => hung);
    expect(error).toEqual(
      AppError.of(503, 'timeout', 'Validation of the resource did not finish in 1 s'),
    );
    await expect(next).resolves.toEqual(AppError.of(400, 'invalid', 'No'));
    expect(started).toBe(2);
  });

  it('fails every waiting job when the worker dies before it is ready', async () => {
    const broken = new ValidationThread({
      start: () => new Worker('throw new Error("no definitions")', { eval: true }),
      timeLimitMs: 1_000,
    });
    const jobs = ['"a"', '"b"'].map((json) => broken.validate(json));
    for (const job of jobs) await expect(job).rejects.toThrow('no definitions');
    await broken.close();
  });
});
