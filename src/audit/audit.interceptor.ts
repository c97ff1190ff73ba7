import {
  Injectable,
  type CallHandler,
  type ExecutionContext,
  type NestInterceptor,
} from '@nestjs/common';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { lastValueFrom, Observable } from 'rxjs';
import { UnitOfWork } from '../database/unit-of-work.js';
import { AuditContext, AuditScope } from './audit-context.js';
import { AuditTrail } from './audit-trail.js';
import {
  batchEntryAuditEntry,
  httpAuditEntry,
  isBatchBundle,
  isBestEffort,
  isTransactionalWrite,
} from './http-audit.js';
import { RefusedRequests } from './refused-requests.js';
import { AuditUnavailableError, attachScope, markRecorded } from './request-audit.js';

/**
 * Records the outcome of every handler that succeeds; what fails (here or in a guard, a pipe or
 * the router) is recorded by the exception filter. The response waits for the row's commit: a
 * FHIR write commits in one transaction with its row, anything else through the group commit.
 */
@Injectable()
export class AuditInterceptor implements NestInterceptor {
  constructor(
    private readonly context: AuditContext,
    private readonly trail: AuditTrail,
    private readonly unitOfWork: UnitOfWork,
    private readonly refused: RefusedRequests,
  ) {}

  intercept(execution: ExecutionContext, next: CallHandler): Observable<unknown> {
    if (execution.getType() !== 'http') {
      return next.handle();
    }
    const http = execution.switchToHttp();
    const request = http.getRequest<FastifyRequest>();
    const reply = http.getResponse<FastifyReply>();
    const scope = attachScope(request, new AuditScope());
    return new Observable((subscriber) => {
      this.context
        .run(scope, () => this.handle(request, reply, scope, next))
        .then(
          (value) => {
            subscriber.next(value);
            subscriber.complete();
          },
          (error: unknown) => subscriber.error(error),
        );
    });
  }

  private async handle(
    request: FastifyRequest,
    reply: FastifyReply,
    scope: AuditScope,
    next: CallHandler,
  ): Promise<unknown> {
    const handle = (): Promise<unknown> =>
      lastValueFrom(next.handle(), { defaultValue: undefined });
    if (isBatchBundle(request)) {
      scope.recordPart = (part, outcome) =>
        this.guarded(() =>
          this.trail.recordInTransaction(batchEntryAuditEntry(request, part, outcome)),
        );
    }
    if (isTransactionalWrite(request)) {
      const result = await this.unitOfWork.run(async () => {
        const value = await handle();
        const entry = await this.entry(request, reply, scope);
        await this.guarded(() => this.trail.recordInTransaction(entry));
        return value;
      });
      markRecorded(request);
      return result;
    }
    const value = await handle();
    const recording = this.trail.record(await this.entry(request, reply, scope));
    if (isBestEffort(request)) {
      markRecorded(request);
      recording.catch(() => undefined);
      return value;
    }
    await this.guarded(() => recording);
    markRecorded(request);
    return value;
  }

  private async entry(request: FastifyRequest, reply: FastifyReply, scope: AuditScope) {
    if (scope.primary) {
      // A write learns its version when it is stored (an update first opened the one before),
      // an unchanged update keeps the current one: the response's ETag says which.
      const etag = /^W\/"(\d+)"$/.exec(String(reply.getHeader('etag') ?? ''));
      if (etag) scope.primary.version = etag[1]!;
    }
    // A handler that answered without opening what its URL names (a compartment search, a
    // patient's $audit-trail) did not check that it exists: `/fhir/Patient/<an MRN>/Observation`
    // kept the MRN as the row's resource until 2026-12-06. One lookup, only for those.
    let neverStored: boolean;
    try {
      neverStored = await this.refused.neverStored(request, reply.statusCode, scope, true);
    } catch (error) {
      throw new AuditUnavailableError(error);
    }
    return httpAuditEntry(request, reply.statusCode, scope, { detail: null, neverStored });
  }

  /** A failed audit write fails the request (fail closed), and says so without detail. */
  private async guarded(write: () => Promise<void>): Promise<void> {
    try {
      await write();
    } catch (error) {
      throw new AuditUnavailableError(error);
    }
  }
}
