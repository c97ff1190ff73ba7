import {
  ArgumentsHost,
  Catch,
  ExceptionFilter,
  Logger,
  NotFoundException,
  UnauthorizedException,
} from '@nestjs/common';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { AuditTrail } from '../../audit/audit-trail.js';
import type { AuthenticatedUser } from '../../auth/authenticated-user.js';
import { RequestIdentity } from '../../auth/request-identity.js';
import { bearerToken } from '../../auth/bearer-token.js';
import { awaitsAuthentication } from '../../auth/refused-before-authentication.js';
import { TokenLiveness } from '../../auth/token-liveness.js';
import { httpAuditEntry, isBestEffort } from '../../audit/http-audit.js';
import { RefusedRequests } from '../../audit/refused-requests.js';
import {
  AuditUnavailableError,
  isRecorded,
  markRecorded,
  scopeOf,
} from '../../audit/request-audit.js';
import { AppError } from '../errors/app-error.js';
import { errorResponse, loggableError } from '../errors/error-response.js';
import { allowedMethods, FixedPathMethodError } from '../http/allowed-methods.js';
import { fhirJsonType } from '../http/media-types.js';

const METHOD_NOT_ALLOWED = AppError.of(
  405,
  'not-supported',
  'This method is not supported here: the Allow header lists those that are',
);

/**
 * Every error that reaches Nest becomes an OperationOutcome, with no stack, SQL or PHI in it,
 * and gets its audit row first: guard refusals (401, 403, 429), unknown routes, bodies that do
 * not parse, and failures of handlers never reach the audit interceptor's success path.
 */
@Catch()
export class AllExceptionsFilter implements ExceptionFilter {
  private readonly logger = new Logger('Errors');

  constructor(
    private readonly trail: AuditTrail,
    private readonly identity: RequestIdentity,
    private readonly refused: RefusedRequests,
    private readonly liveness: TokenLiveness,
  ) {}

  async catch(exception: unknown, host: ArgumentsHost): Promise<void> {
    const http = host.switchToHttp();
    const request = http.getRequest<FastifyRequest>();
    const reply = http.getResponse<FastifyReply>();
    // Nest's not-found handler answers every request no route matched with a 404; a path the
    // route table serves with other methods gets a 405 and Allow instead (RFC 9110 15.5.6), as
    // does a fixed path that a route for any type or id took (FixedPathMethodError).
    const fixed = exception instanceof FixedPathMethodError ? exception : undefined;
    const allow =
      fixed?.allow ??
      (exception instanceof NotFoundException && request.is404 ? allowedMethods(request) : []);
    let { status, body, unexpected } = errorResponse(
      fixed?.diagnostics
        ? AppError.of(405, 'not-supported', fixed.diagnostics)
        : fixed || allow.length > 0
          ? METHOD_NOT_ALLOWED
          : exception,
      request.id,
    );
    if (awaitsAuthentication(request.url, status) && !(await this.authenticated(request))) {
      ({ status, body } = errorResponse(new UnauthorizedException(), request.id));
    }
    if (exception instanceof AuditUnavailableError) {
      unexpected = exception.reason;
    }
    if (unexpected !== undefined) {
      this.logger.error(
        { err: loggableError(unexpected), requestId: request.id },
        'Request failed',
      );
    }
    if (!isRecorded(request)) {
      markRecorded(request);
      await this.nameSender(request, status);
      const scope = scopeOf(request);
      const entry = httpAuditEntry(request, status, scope, {
        detail: body.issue[0]?.code ?? null,
        neverStored: await this.refused.neverStored(request, status, scope),
      });
      const named = await this.refused.patientsOf(request, status);
      if (named.length > 0) {
        entry.patientIds = [...new Set([...entry.patientIds, ...named])].sort();
      }
      const recording = this.trail.record(entry);
      if (isBestEffort(request)) {
        recording.catch(() => undefined);
      } else {
        try {
          await recording;
        } catch (error) {
          // Fail closed: whatever the request was, it is not answered as if it had been audited.
          this.logger.error({ err: loggableError(error), requestId: request.id }, 'Audit failed');
          ({ status, body } = errorResponse(new AuditUnavailableError(error), request.id));
        }
      }
    }
    if (status === 405) {
      void reply.header('allow', allow.join(', '));
    }
    if (status === 401) {
      // RFC 6750 section 3.1: a token sent and refused (expired, revoked, forged: which, the
      // client is not told) is `invalid_token`, so that a client refreshes it or signs in again;
      // no token at all gets the challenge alone. Until 2026-12-07 both got the challenge alone.
      const challenge = bearerToken(request)
        ? 'Bearer realm="carevault", error="invalid_token"'
        : 'Bearer realm="carevault"';
      void reply.header('www-authenticate', challenge);
    }
    if (status === 503) {
      // The database or the audit trail is down: worth retrying, not at once.
      void reply.header('retry-after', '5');
    }
    void reply.status(status).header('content-type', fhirJsonType(request)).send(body);
  }

  /**
   * Whether a request refused before the authentication guard ran has a token the guard would
   * take (valid, of a session, account and app that have not ended), and so may be told why it
   * was refused (awaitsAuthentication); its user is then named in the audit row.
   */
  private async authenticated(request: FastifyRequest): Promise<boolean> {
    const sent = request as FastifyRequest & { user?: AuthenticatedUser };
    if (sent.user) return true;
    const user = await this.identity.identify(request, { verify: true });
    // A liveness check that cannot be made (the database is down) lets nothing through.
    if (!user || !(await this.liveness.allows(user).catch(() => false))) return false;
    sent.user = user;
    return true;
  }

  /**
   * A request refused before the authentication guard ran (a body that does not parse, an
   * unknown route, a client over its rate limit) still has its sender named in its audit row
   * when its token is valid. A 401 is the guard's own verdict on the token; a 429 only looks up
   * tokens verified before, so that refusing a flood costs no signature checks.
   */
  private async nameSender(request: FastifyRequest, status: number): Promise<void> {
    const sent = request as FastifyRequest & { user?: AuthenticatedUser };
    if (sent.user || status === 401) return;
    sent.user = await this.identity.identify(request, { verify: status !== 429 });
  }
}
