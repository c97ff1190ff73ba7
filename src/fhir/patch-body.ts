import fastJsonPatch, { type Operation } from 'fast-json-patch';
import type { Parameters } from '@medplum/fhirtypes';
import { AppError } from '../common/errors/app-error.js';
import { prototypeKeyError } from '../common/http/json-body.js';
import { isPrototypeKey } from '../common/http/json-scan.js';
import type { FhirResource } from './fhir-types.js';
import { applyFhirPathPatch, checkFhirPathPatch, isFhirPathPatch } from './fhirpath-patch.js';
import { assertPatchSize } from './patch-size.js';

/** A PATCH body: a JSON Patch (an array of operations) or a FHIRPath Patch (Parameters). */
export type PatchBody = Operation[] | Parameters;

export function checkPatch(body: unknown): PatchBody {
  if (isFhirPathPatch(body)) {
    checkFhirPathPatch(body);
    return body;
  }
  if (!Array.isArray(body)) {
    throw AppError.of(
      400,
      'structure',
      'A patch is a JSON Patch (an array of operations, application/json-patch+json) or a FHIRPath Patch (a Parameters resource, application/fhir+json)',
    );
  }
  assertPatchSize('JSON Patch', body.length);
  const problem = fastJsonPatch.validate(body as Operation[]);
  if (problem) {
    throw AppError.of(
      400,
      'structure',
      `JSON Patch operation ${problem.index} is invalid (${problem.name})`,
    );
  }
  const operations = body as Operation[];
  operations.forEach((operation, index) => {
    // `add /toString` would store a key the validator takes for an element (json-scan.ts).
    const pointers = [operation.path, 'from' in operation ? operation.from : ''];
    if (
      pointers.some((pointer) => pointer.split('/').some((step) => isPrototypeKey(unescaped(step))))
    ) {
      throw prototypeKeyError({ what: `JSON Patch operation ${index}` });
    }
  });
  return operations;
}

/** A JSON Pointer step as a key (RFC 6901: `~1` is `/`, `~0` is `~`). */
function unescaped(step: string): string {
  return step.replace(/~1/g, '/').replace(/~0/g, '~');
}

/**
 * The patched resource. `maxBytes` bounds what JSON Patch `copy` operations add, all together
 * (JSON text of the values copied): a copy of an array into itself doubles it, and a 1 KB patch
 * of 20 such copies held the event loop 7 s, each further one doubling that. Other operations
 * carry their values in the body, which BODY_LIMIT bounds already.
 */
export async function applyPatch(
  document: FhirResource,
  patch: PatchBody,
  maxBytes: number,
): Promise<FhirResource> {
  if (!Array.isArray(patch)) {
    return applyFhirPathPatch(document, patch);
  }
  let patched = fastJsonPatch.deepClone(document) as FhirResource;
  let copied = 0;
  // The operation being applied: fast-json-patch's errors say 0 for any that its validation
  // refuses (applyOperation validates with index 0), so this counter names it.
  let at = 0;
  try {
    patch.forEach((operation, index) => {
      at = index;
      if (operation.op === 'copy') {
        const value: unknown = fastJsonPatch.getValueByPointer(patched, operation.from);
        copied += JSON.stringify(value ?? null).length;
        if (copied > maxBytes) {
          throw AppError.of(
            422,
            'too-costly',
            `JSON Patch operation ${index} (copy) would copy more than ${maxBytes} bytes in all (BODY_LIMIT): send the resource with PUT instead`,
          );
        }
      }
      patched = fastJsonPatch.applyOperation(
        patched,
        operation,
        true,
        true,
        true,
        index,
      ).newDocument;
      // A path of "" is the whole document (RFC 6902): what takes its place must be a resource
      // still (null, a removal or a copy of nothing was a 500 until 2026-12-07).
      if (typeof patched !== 'object' || patched === null || Array.isArray(patched)) {
        throw AppError.of(
          422,
          'processing',
          `JSON Patch operation ${index} leaves no resource: the document it puts in place of the whole one is not a JSON object`,
        );
      }
    });
    return patched;
  } catch (error) {
    if (error instanceof AppError) throw error;
    // Messages name the operation, never the values it carried (they can be PHI).
    const { name } = error as { name?: string };
    const operation = `JSON Patch operation ${at}`;
    throw name === 'TEST_OPERATION_FAILED'
      ? AppError.preconditionFailed(`${operation} (test) failed`)
      : AppError.of(422, 'processing', `${operation} cannot be applied to the resource`);
  }
}
