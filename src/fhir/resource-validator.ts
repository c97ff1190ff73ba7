import { Injectable, type OnModuleDestroy } from '@nestjs/common';
import { Worker } from 'node:worker_threads';
import { FhirDefinitions } from './fhir-definitions.js';
import type { FhirResource } from './fhir-types.js';
import { ValidationThread } from './validation-thread.js';

/**
 * Resources whose JSON is longer than this are validated on the worker thread. Measured on one
 * core, the R4 validator takes about 0.3 µs per character of Synthea's JSON and up to 1.2 µs
 * for JSON dense with extensions, so a resource of this size holds the event loop some 10 to
 * 40 ms; the largest of Synthea's (an ExplanationOfBenefit of 14 K) is validated in place.
 */
export const WORKER_JSON_LENGTH = 32 * 1024;

/**
 * How long one validation on the worker may take: a Patient of 4.4 MB takes 2 to 3 s, so only
 * a validator that hangs (or a BODY_LIMIT raised far past its default) gets there.
 */
export const VALIDATION_TIME_LIMIT_MS = 60_000;

// As TypeScript source (Jest), this file has no built worker beside it: `npm test` builds first.
const WORKER_URL = new URL(
  import.meta.url.endsWith('.ts')
    ? '../../dist/src/fhir/validation-worker.js'
    : './validation-worker.js',
  import.meta.url,
);

/**
 * FhirDefinitions.validate without holding the event loop: a Patient of 1 MB took 1.2 s of
 * @medplum/core's synchronous validation, in which /health and every other request waited. A
 * large resource is validated on a worker thread, with the same definitions and the same
 * 400s; a small one in place, as it costs less than the copy and the thread hop.
 */
@Injectable()
export class ResourceValidator implements OnModuleDestroy {
  private readonly thread = new ValidationThread({
    start: () => new Worker(WORKER_URL),
    timeLimitMs: VALIDATION_TIME_LIMIT_MS,
  });

  constructor(private readonly definitions: FhirDefinitions) {}

  /** Rejects with a 400 AppError when the resource does not conform (FhirDefinitions.validate). */
  async validate(resource: FhirResource): Promise<void> {
    if (!jsonLongerThan(resource, WORKER_JSON_LENGTH)) {
      this.definitions.validate(resource);
      return;
    }
    const invalid = await this.thread.validate(JSON.stringify(resource));
    if (invalid) throw invalid;
  }

  async onModuleDestroy(): Promise<void> {
    await this.thread.close();
  }
}

/**
 * Whether a JSON value's text is longer than `limit`, roughly (quotes and punctuation counted
 * as a few characters), walking no further than that: a small resource costs one short walk.
 */
export function jsonLongerThan(value: unknown, limit: number): boolean {
  let left = limit;
  const over = (item: unknown): boolean => {
    if (typeof item === 'string') {
      left -= item.length + 3;
    } else if (Array.isArray(item)) {
      left -= 2;
      for (const element of item) if (over(element)) return true;
    } else if (typeof item === 'object' && item !== null) {
      left -= 2;
      for (const key in item) {
        left -= key.length + 4;
        if (over((item as Record<string, unknown>)[key])) return true;
      }
    } else {
      left -= 6;
    }
    return left < 0;
  };
  return over(value);
}
