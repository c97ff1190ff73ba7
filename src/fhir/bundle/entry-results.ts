import { AppError } from '../../common/errors/app-error.js';
import { operationOutcome, type OperationOutcome } from '../../common/errors/operation-outcome.js';
import { parsePreferReturn } from '../fhir-headers.js';
import type { FhirResource, StoredResource } from '../fhir-types.js';
import type { ParsedEntry } from './bundle-entry.js';

// What each entry of a batch or transaction answers, and the errors that name their entry.

export interface EntryResult {
  resource?: FhirResource | OperationOutcome;
  response: {
    status: string;
    location?: string;
    etag?: string;
    lastModified?: string;
    outcome?: OperationOutcome;
  };
}

export const STATUS_TEXT: Record<number, string> = {
  200: '200 OK',
  201: '201 Created',
  204: '204 No Content',
};

/**
 * An answer that carries a stored resource names it by its absolute URL, as R4 says an entry
 * with a resource does (bdl-8 and the like); a search's Bundle or an OperationOutcome has no
 * such URL. Response entries had none until 2026-12-06.
 */
export function withFullUrl(
  result: EntryResult,
  baseUrl: string,
): EntryResult & { fullUrl?: string } {
  const resource = result.resource as { resourceType: string; id?: unknown } | undefined;
  if (
    !resource ||
    resource.resourceType === 'Bundle' ||
    resource.resourceType === 'OperationOutcome' ||
    typeof resource.id !== 'string'
  ) {
    return result;
  }
  return { fullUrl: `${baseUrl}/${resource.resourceType}/${resource.id}`, ...result };
}

export function written(stored: StoredResource, status: number): EntryResult {
  return {
    resource: stored.resource,
    response: {
      status: STATUS_TEXT[status] ?? String(status),
      location: `${stored.resourceType}/${stored.id}/_history/${stored.versionId}`,
      etag: `W/"${stored.versionId}"`,
      lastModified: stored.lastUpdated.toISOString(),
    },
  };
}

/**
 * A written entry's answer as `Prefer: return=` asks: the resource (the default), nothing but
 * the response (an importer of large Bundles need not read every resource back), or an outcome.
 */
export function asPreferred(
  result: EntryResult,
  wanted: ReturnType<typeof parsePreferReturn>,
): EntryResult {
  switch (wanted) {
    case 'representation':
      return result;
    case 'minimal':
      return { response: result.response };
    case 'OperationOutcome':
      return {
        response: {
          ...result.response,
          outcome: operationOutcome([
            {
              severity: 'information',
              code: 'informational',
              diagnostics: `Stored as ${result.response.location ?? 'requested'}`,
            },
          ]),
        },
      };
  }
}

/** A batch entry's answer when it failed: its status and the reasons, naming the entry. */
export function failed(error: AppError, index: number): EntryResult {
  const outcome = operationOutcome(prefixed(error, index).issues);
  return { response: { status: String(error.status), outcome } };
}

/** Runs an entry's work, naming the entry in any error it raises. */
export async function inEntry<T>(entry: ParsedEntry, work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (error) {
    throw error instanceof AppError ? prefixed(error, entry.index) : error;
  }
}

export function prefixed(error: AppError, index: number): AppError {
  const label = `Bundle.entry[${index}]`;
  if (error.issues.every((issue) => issue.diagnostics.startsWith(label))) {
    return error;
  }
  return new AppError(
    error.status,
    error.issues.map((issue) => ({ ...issue, diagnostics: `${label}: ${issue.diagnostics}` })),
  );
}
