import type { NestFastifyApplication } from '@nestjs/platform-fastify';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { Logger } from 'nestjs-pino';
import { AuditTrail } from '../../audit/audit-trail.js';
import { clientRefusalAuditEntry, httpAuditEntry } from '../../audit/http-audit.js';
import { isRecorded, markRecorded } from '../../audit/request-audit.js';
import { AppConfig } from '../../config/config.js';
import {
  refuseOtherBodies,
  refuseOtherFormats,
  refuseOtherFormatsInForms,
} from '../../fhir/fhir-format.js';
import { refuseUnknownOperations } from '../../fhir/unknown-operations.js';
import {
  allowedMethods,
  AUDIT_EVENT_READ_ONLY,
  auditEventRefusal,
  FixedPathMethodError,
} from './allowed-methods.js';
import type { ClientRefusal } from './client-error.js';
import { refuseWhileClosing } from './closing.js';
import { corsOptions, preflightHeaders, routerRefusalCors } from './cors.js';
import { encodeResponses } from './response-encoding.js';
import { securedResponse } from './security-headers.js';
import { setupSwagger } from './swagger.js';

/**
 * Everything main.ts and the e2e tests apply to a created application. In-process tests leave
 * out Swagger UI: its static file server depends on an ES-module-only package that Jest cannot
 * load on Node 20; the process-level e2e test checks /docs on the built service instead.
 */
export function setupApp(
  app: NestFastifyApplication,
  options: { docs: boolean } = { docs: true },
): void {
  app.useLogger(app.get(Logger));
  const config = app.get(AppConfig);
  const fastify = app.getHttpAdapter().getInstance();
  fastify.addHook('onRequest', (request, reply, done) => {
    securedResponse(request.raw, reply.raw, (error) => done(error as Error | undefined));
  });
  // After the hooks that set the request id and the security headers, which its 503 carries.
  refuseWhileClosing(fastify);
  // Before the 405s below: an operation not offered is no method's to answer.
  fastify.addHook('onRequest', refuseUnknownOperations);
  // Before the guards, as the 405 of a request no route matched: what a fixed path does not
  // take is refused without its body being read (allowedMethods). This and the refusals below
  // are answered 401 instead to a request without a valid token (awaitsAuthentication).
  fastify.addHook('onRequest', (request, _reply, done) => {
    const underFhir = /^\/fhir\/(.*)$/.exec(request.url)?.[1];
    const auditEvent =
      request.is404 || underFhir === undefined
        ? undefined
        : auditEventRefusal(request.method, underFhir);
    if (auditEvent) {
      done(new FixedPathMethodError(auditEvent, AUDIT_EVENT_READ_ONLY));
      return;
    }
    const allow = request.is404 ? [] : allowedMethods(request);
    done(allow.length > 0 ? new FixedPathMethodError(allow) : undefined);
  });
  fastify.addHook('onRequest', refuseOtherFormats);
  fastify.addHook('onRequest', refuseOtherBodies);
  fastify.addHook('preValidation', refuseOtherFormatsInForms);
  encodeResponses(fastify);
  // What Nest's router never sees (Swagger UI's static files, a preflight the router refused)
  // still gets its audit row. These hold no PHI, so the row is written after the response.
  const trail = app.get(AuditTrail);
  if (config.corsOrigins.length > 0) {
    app.enableCors(corsOptions(config.corsOrigins));
    fastify.addHook('onSend', preflightHeaders);
    const refusalCors = routerRefusalCors(config.corsOrigins);
    fastify.decorate('routerRefusalCors', (request: FastifyRequest, reply: FastifyReply) => {
      const answered = refusalCors(request, reply);
      if (answered) {
        markRecorded(request);
        trail.record(httpAuditEntry(request, 204, undefined)).catch(() => undefined);
      }
      return answered;
    });
  }
  // So does what Node's HTTP parser refused (answerClientError answered it on the socket).
  fastify.decorate('recordClientRefusal', (refusal: ClientRefusal) => {
    trail.record(clientRefusalAuditEntry(refusal)).catch(() => undefined);
  });
  fastify.addHook('onResponse', (request, reply, done) => {
    if (!isRecorded(request)) {
      markRecorded(request);
      trail.record(httpAuditEntry(request, reply.statusCode, undefined)).catch(() => undefined);
    }
    done();
  });
  // Swagger UI lists every route: in production it is off unless DOCS_IN_PRODUCTION is set.
  if (options.docs && config.docsEnabled) {
    setupSwagger(app);
  }
}
