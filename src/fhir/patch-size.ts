import { AppError } from '../common/errors/app-error.js';

/**
 * Operations one patch may hold, in either format: real patches hold a few (a form's changes);
 * a thousand is a cost, not an edit. Each FHIRPath Patch operation is evaluated on the whole
 * resource, and the engine has no cost limit; a JSON Patch of 150,000 operations (8 MB) was
 * validated and applied in one block, holding /health for 0.5 s.
 */
export const MAX_PATCH_OPERATIONS = 100;

/** Refuses a patch of more than MAX_PATCH_OPERATIONS, before any operation is read. */
export function assertPatchSize(format: 'JSON Patch' | 'FHIRPath Patch', operations: number): void {
  if (operations > MAX_PATCH_OPERATIONS) {
    throw AppError.of(
      400,
      'too-costly',
      `A ${format} holds at most ${MAX_PATCH_OPERATIONS} operations; this one has ${operations}`,
    );
  }
}
