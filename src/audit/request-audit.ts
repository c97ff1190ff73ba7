import type { FastifyRequest } from 'fastify';
import { AppError } from '../common/errors/app-error.js';
import { databaseIssue } from '../common/errors/error-response.js';
import type { AuditScope } from './audit-context.js';

const scopes = new WeakMap<object, AuditScope>();
const recorded = new WeakSet<object>();

/** Keeps a request's scope where the exception filter, which runs outside it, can find it. */
export function attachScope(request: FastifyRequest, scope: AuditScope): AuditScope {
  scopes.set(request.raw, scope);
  return scope;
}

export function scopeOf(request: FastifyRequest): AuditScope | undefined {
  return scopes.get(request.raw);
}

/** The request's row is written: nothing else may add a second one. */
export function markRecorded(request: FastifyRequest): void {
  recorded.add(request.raw);
}

export function isRecorded(request: FastifyRequest): boolean {
  return recorded.has(request.raw);
}

/**
 * The audit row could not be committed, so the request fails (fail closed). When the database
 * itself is down or refuses writes, the answer says so: that is what an operator must fix.
 */
export class AuditUnavailableError extends AppError {
  constructor(readonly reason: unknown) {
    super(503, [
      databaseIssue(reason) ?? {
        severity: 'error',
        code: 'exception',
        diagnostics: 'The audit trail is unavailable; the request was not completed',
      },
    ]);
  }
}
