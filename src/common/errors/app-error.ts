/** FHIR OperationOutcome issue types CareVault uses (http://hl7.org/fhir/valueset-issue-type.html). */
export type IssueType =
  | 'invalid'
  | 'structure'
  | 'required'
  | 'value'
  | 'code-invalid'
  | 'security'
  | 'login'
  | 'forbidden'
  | 'not-found'
  | 'deleted'
  | 'not-supported'
  | 'conflict'
  | 'duplicate'
  | 'too-long'
  | 'too-costly'
  | 'processing'
  | 'throttled'
  | 'transient'
  | 'timeout'
  | 'incomplete'
  | 'exception'
  | 'informational';

export interface Issue {
  severity: 'fatal' | 'error' | 'warning' | 'information';
  code: IssueType;
  diagnostics: string;
  /** FHIRPath expressions locating the problem in the submitted resource. */
  expression?: string[];
}

/**
 * The one error type of CareVault: a status and OperationOutcome issues. Messages must never
 * carry PHI: name elements and ids, not values.
 */
export class AppError extends Error {
  override readonly name = 'AppError';

  constructor(
    readonly status: number,
    readonly issues: Issue[],
  ) {
    super(issues.map((issue) => issue.diagnostics).join('; '));
  }

  static of(status: number, code: IssueType, diagnostics: string, expression?: string[]): AppError {
    return new AppError(status, [
      { severity: 'error', code, diagnostics, ...(expression ? { expression } : {}) },
    ]);
  }

  static invalid(diagnostics: string, expression?: string[]): AppError {
    return AppError.of(400, 'invalid', diagnostics, expression);
  }

  static notFound(diagnostics: string): AppError {
    return AppError.of(404, 'not-found', diagnostics);
  }

  static gone(diagnostics: string): AppError {
    return AppError.of(410, 'deleted', diagnostics);
  }

  static conflict(diagnostics: string): AppError {
    return AppError.of(409, 'conflict', diagnostics);
  }

  static preconditionFailed(diagnostics: string): AppError {
    return AppError.of(412, 'conflict', diagnostics);
  }

  static forbidden(diagnostics: string): AppError {
    return AppError.of(403, 'forbidden', diagnostics);
  }
}
