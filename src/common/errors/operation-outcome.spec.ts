import type { Issue } from './app-error.js';
import { MAX_ISSUES, operationOutcome } from './operation-outcome.js';

describe('operationOutcome', () => {
  const issues = (n: number): Issue[] =>
    Array.from({ length: n }, (_, i) => ({
      severity: 'error',
      code: 'structure',
      diagnostics: `Invalid additional property k${i}`,
    }));

  it('lists every issue up to the limit', () => {
    expect(operationOutcome(issues(MAX_ISSUES)).issue).toHaveLength(MAX_ISSUES);
  });

  it('lists the first issues past the limit, and says how many more there are', () => {
    const outcome = operationOutcome(issues(60_000));
    expect(outcome.issue).toHaveLength(MAX_ISSUES + 1);
    expect(outcome.issue[MAX_ISSUES - 1]?.diagnostics).toBe(
      `Invalid additional property k${MAX_ISSUES - 1}`,
    );
    expect(outcome.issue[MAX_ISSUES]).toEqual({
      severity: 'information',
      code: 'informational',
      diagnostics: `${60_000 - MAX_ISSUES} more issues are not listed`,
    });
  });
});
