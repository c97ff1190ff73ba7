import { HttpException } from '@nestjs/common';
import {
  DATABASE_PROBLEM_DIAGNOSTICS,
  databaseProblem,
  isStatementTimeout,
  sqlStateOf,
} from '../../database/database-unavailable.js';
import { AppError, type Issue } from './app-error.js';
import { operationOutcome, outcomeForStatus, type OperationOutcome } from './operation-outcome.js';

export interface ErrorResponse {
  status: number;
  body: OperationOutcome;
  /** Set for server-side failures, which must be logged; client errors are not. */
  unexpected?: unknown;
}

/** Fastify's own errors that can be described more precisely than by their status. */
const FASTIFY_CODES: Record<string, string> = {
  FST_ERR_CTP_INVALID_JSON_BODY: 'The request body is not valid JSON',
  FST_ERR_CTP_EMPTY_JSON_BODY: 'The request body is empty',
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: 'Content-Length does not match the body',
};

/**
 * Maps anything thrown while serving a request to a status and an OperationOutcome. Only text
 * written by CareVault reaches the client: messages from libraries can quote the request body
 * (a JSON parse error does), and that body is PHI.
 */
export function errorResponse(error: unknown, requestId: string | undefined): ErrorResponse {
  if (error instanceof AppError) {
    return { status: error.status, body: operationOutcome(error.issues) };
  }
  if (error instanceof HttpException) {
    const status = error.getStatus();
    // Nest wraps Fastify's own errors (body parsing, limits) in an HttpException.
    const bodyProblem = status < 500 ? describeBodyError(error.cause ?? error) : undefined;
    if (bodyProblem) {
      return {
        status,
        body: operationOutcome([
          { severity: 'error', code: 'structure', diagnostics: bodyProblem },
        ]),
      };
    }
    const validation = validationMessages(error);
    if (status === 400 && validation.length > 0) {
      return {
        status,
        body: operationOutcome(
          validation.map((diagnostics) => ({ severity: 'error', code: 'invalid', diagnostics })),
        ),
      };
    }
    return status >= 500
      ? { status, body: outcomeForStatus(500, requestId), unexpected: error }
      : { status, body: outcomeForStatus(status) };
  }
  if (isClientHangUp(error)) {
    // Nobody reads the answer; the status is for the audit row and the access log. Node's
    // ECONNRESET here is the client's socket, not the database's.
    return {
      status: 400,
      body: operationOutcome([
        {
          severity: 'error',
          code: 'incomplete',
          diagnostics: 'The client closed the connection before the request body arrived',
        },
      ]),
    };
  }
  if (isStatementTimeout(error)) {
    // Logged (unexpected): an operator learns which requests meet the limit, by request id.
    return {
      status: 503,
      body: operationOutcome([
        {
          severity: 'error',
          code: 'too-costly',
          diagnostics:
            'The request ran longer than the database allows and was stopped; nothing was written. Narrow it (fewer search criteria or values) or retry later',
        },
      ]),
      unexpected: error,
    };
  }
  const unavailable = databaseIssue(error);
  if (unavailable) {
    return { status: 503, body: operationOutcome([unavailable]), unexpected: error };
  }
  return { status: 500, body: outcomeForStatus(500, requestId), unexpected: error };
}

/** Node's error on a request whose client closed the connection before its body arrived. */
function isClientHangUp(error: unknown): boolean {
  const { code, message } = (error ?? {}) as { code?: unknown; message?: unknown };
  return code === 'ECONNRESET' && message === 'aborted';
}

/** The issue for a database that is down, read-only, full or busy (503), if that is the error. */
export function databaseIssue(error: unknown): Issue | undefined {
  const problem = databaseProblem(error);
  if (!problem) return undefined;
  return {
    severity: 'error',
    // FHIR's `throttled` is load management; `transient` a fault that may clear by itself.
    code: problem === 'busy' ? 'throttled' : 'transient',
    diagnostics: DATABASE_PROBLEM_DIAGNOSTICS[problem],
  };
}

/** A description of a malformed request body, in our words rather than the parser's. */
function describeBodyError(error: unknown): string | undefined {
  const code = (error as { code?: unknown } | null)?.code;
  if (typeof code === 'string' && FASTIFY_CODES[code]) {
    return FASTIFY_CODES[code];
  }
  const status = (error as { statusCode?: unknown } | null)?.statusCode;
  return error instanceof SyntaxError && status === 400
    ? 'The request body is not valid JSON'
    : undefined;
}

/** class-validator messages from the ValidationPipe; they name properties, not values. */
function validationMessages(error: HttpException): string[] {
  const response = error.getResponse();
  const message =
    typeof response === 'object' && response !== null
      ? (response as { message?: unknown }).message
      : undefined;
  return Array.isArray(message) ? message.filter((m): m is string => typeof m === 'string') : [];
}

/**
 * What may be logged of an unexpected error: no driver `detail` (it quotes row values), and no
 * message of a database error, which may quote the value it refused (`invalid input syntax for
 * type timestamp with time zone: "…"`), as PhiSafeTypeOrmLogger leaves it out: its SQLSTATE,
 * and the routine that raised it, say what failed.
 */
export function loggableError(error: unknown): Record<string, unknown> {
  if (!(error instanceof Error)) {
    return { type: typeof error };
  }
  const state = sqlStateOf(error);
  if (state !== undefined) {
    const { routine } = ((error as { driverError?: unknown }).driverError ?? error) as {
      routine?: unknown;
    };
    return {
      type: error.name,
      code: state,
      ...(typeof routine === 'string' ? { routine } : {}),
      stack: error.stack?.replace(/^[^\n]*/, `${error.name}: (database message left out)`),
    };
  }
  const code = (error as { code?: unknown }).code;
  return {
    type: error.name,
    message: error.message,
    ...(code ? { code } : {}),
    stack: error.stack,
  };
}
