import type { Issue } from './app-error.js';

export interface OperationOutcome {
  resourceType: 'OperationOutcome';
  issue: Issue[];
}

/**
 * Issues one OperationOutcome lists: a body of 60,000 unknown keys drew a 7.6 MB answer of
 * 60,000 issues, which no one reads past the first screen.
 */
export const MAX_ISSUES = 100;

export function operationOutcome(issues: Issue[]): OperationOutcome {
  if (issues.length <= MAX_ISSUES) {
    return { resourceType: 'OperationOutcome', issue: issues };
  }
  const rest = issues.length - MAX_ISSUES;
  return {
    resourceType: 'OperationOutcome',
    issue: [
      ...issues.slice(0, MAX_ISSUES),
      {
        severity: 'information',
        code: 'informational',
        diagnostics: `${rest} more issues are not listed`,
      },
    ],
  };
}

/** The OperationOutcome for a status, when no richer description of the problem exists. */
export function outcomeForStatus(status: number, requestId?: string): OperationOutcome {
  const known: Record<number, Issue> = {
    400: { severity: 'error', code: 'invalid', diagnostics: 'The request is not valid' },
    401: { severity: 'error', code: 'login', diagnostics: 'Authentication is required' },
    403: { severity: 'error', code: 'forbidden', diagnostics: 'Access denied' },
    404: { severity: 'error', code: 'not-found', diagnostics: 'No such endpoint' },
    405: { severity: 'error', code: 'not-supported', diagnostics: 'Method not allowed' },
    406: {
      severity: 'error',
      code: 'not-supported',
      diagnostics: 'Only application/fhir+json is produced',
    },
    413: {
      severity: 'error',
      code: 'too-long',
      diagnostics: 'The request body is larger than the configured limit',
    },
    415: {
      severity: 'error',
      code: 'not-supported',
      diagnostics: 'Unsupported content type: send application/fhir+json or application/json',
    },
    429: { severity: 'error', code: 'throttled', diagnostics: 'Too many requests' },
  };
  const issue = known[status] ?? {
    severity: 'fatal',
    code: 'exception',
    diagnostics: `Internal error${requestId ? ` (request id ${requestId})` : ''}`,
  };
  return operationOutcome([issue]);
}
