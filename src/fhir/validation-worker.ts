/**
 * The worker thread of ValidationThread: validates resources sent as JSON text with the same
 * FhirDefinitions as the event loop's, one at a time, and answers each with its outcome. It
 * says `ready` once the definitions are loaded, so that a job's time limit counts validation
 * only.
 */
import { parentPort } from 'node:worker_threads';
import { AppError } from '../common/errors/app-error.js';
import { FhirDefinitions } from './fhir-definitions.js';
import type { FhirResource } from './fhir-types.js';
import type { WorkerAnswer } from './validation-thread.js';

const port = parentPort!;
const definitions = new FhirDefinitions();

port.on('message', (json: string) => {
  let answer: WorkerAnswer;
  try {
    definitions.validate(JSON.parse(json) as FhirResource);
    answer = { valid: true };
  } catch (error) {
    // An unexpected error's message may quote the resource: its name only crosses over.
    answer =
      error instanceof AppError
        ? { status: error.status, issues: error.issues }
        : { failed: error instanceof Error ? error.name : typeof error };
  }
  port.postMessage(answer);
});
port.postMessage({ ready: true } satisfies WorkerAnswer);
