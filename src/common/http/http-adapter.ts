import { PayloadTooLargeException, UnsupportedMediaTypeException } from '@nestjs/common';
import { FastifyAdapter } from '@nestjs/platform-fastify';
import type { FastifyRequest } from 'fastify';
import { randomUUID } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { AppError } from '../errors/app-error.js';
import { list } from '../../config/config.js';
import type { EnvironmentVariables } from '../../config/env.schema.js';
import { bodyText } from './body-text.js';
import { refuseRepeatedHeaders } from './repeated-headers.js';
import { decodeContentEncoding } from './content-encoding.js';
import { httpsOptions } from './https-options.js';
import { answerClientError } from './client-error.js';
import { answerFrameworkError } from './framework-errors.js';
import { setPublicOrigin } from './request-origin.js';
import { parseJsonBody } from './json-body.js';
import { assertWellEncoded, queryRecord } from './query-record.js';
import { NativeContent } from './native-content.js';
import { HL7_MEDIA_TYPE, HL7_ROUTE, JSON_MEDIA_TYPES } from './media-types.js';

/**
 * A client's X-Request-Id is kept when it is a generated id: a UUID, 16 or 32 hex digits (a
 * B3 or W3C trace id, nginx's `$request_id`) or a ULID, with a letter in it. A free-text one (an
 * engine's `MRN-…` correlation id, an MRN padded with zeros) would put an identifier in the
 * logs and in the audit trail, which keeps it for good; it gets a UUID.
 */
const REQUEST_ID =
  /^(?:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|[0-9a-f]{16}|[0-9a-f]{32}|[0-7][0-9a-hjkmnp-tv-z]{25})$/i;

function isGeneratedId(id: unknown): id is string {
  return typeof id === 'string' && REQUEST_ID.test(id) && /[a-z]/i.test(id);
}

/**
 * The Fastify adapter with CareVault's HTTP rules: HTTPS with TLS 1.2 at least when a certificate
 * is configured, X-Forwarded-For believed only from configured proxies, a body limit, bodies
 * decoded as UTF-8 or refused, JSON bodies checked for depth and prototype poisoning, query
 * strings for their percent-encoding, and a request id on every request and response.
 * Errors raised before a handler runs (body too large, malformed JSON, unsupported media type)
 * reach the global AllExceptionsFilter through the error handler Nest installs, and so do the
 * URLs Fastify's router refuses (answerFrameworkError); what Node's HTTP parser refuses before
 * that is answered by answerClientError.
 */
export function createHttpAdapter(env: EnvironmentVariables): FastifyAdapter {
  const bodyLimit = env.BODY_LIMIT;
  const proxies = list(env.TRUSTED_PROXIES);
  const https = httpsOptions(env);
  const adapter = new FastifyAdapter({
    bodyLimit,
    logger: false,
    // Requests arriving while it closes get a 503 OperationOutcome instead (refuseWhileClosing).
    return503OnClosing: false,
    clientErrorHandler: answerClientError,
    frameworkErrors: answerFrameworkError,
    // FHIR clients address the base as `…/fhir/` as often as `…/fhir` (fhir-kit-client does).
    routerOptions: { ignoreTrailingSlash: true },
    // Without configured proxies the client address is the socket's: a client cannot choose
    // its own rate-limit bucket or audit address with a forged X-Forwarded-For.
    trustProxy: proxies.length > 0 ? proxies : false,
    ...(https ? { https } : {}),
    genReqId: (request: IncomingMessage) => {
      const incoming = request.headers['x-request-id'];
      const id = isGeneratedId(incoming) ? incoming : randomUUID();
      (request as IncomingMessage & { id?: string }).id = id;
      return id;
    },
  });
  const fastify = adapter.getInstance();
  setPublicOrigin(fastify, env.PUBLIC_URL);
  // FHIR bodies are JSON; a text/plain body gets 415 rather than reaching a handler as a string.
  fastify.removeContentTypeParser(['text/plain', 'application/json']);
  // Bodies are read as bytes: bodyText decodes them as UTF-8 or refuses them, where a string
  // parser would have replaced what is not UTF-8 without a word.
  fastify.addContentTypeParser(
    ['application/json', ...JSON_MEDIA_TYPES],
    { parseAs: 'buffer', bodyLimit },
    routedOnly((request, body, done) => {
      const bytes = body as Buffer;
      // Some clients label every request as FHIR JSON, a DELETE with no body too.
      if (request.method === 'DELETE' && bytes.toString('latin1').trim() === '') {
        done(null, undefined);
        return;
      }
      try {
        const text = bodyText(bytes, request.headers['content-type']);
        // FHIR decimals are refused rather than rounded; elsewhere numbers are counts and flags.
        done(null, parseJsonBody(text, { exactNumbers: request.url.startsWith('/fhir') }));
      } catch (error) {
        done(error as Error, undefined);
      }
    }),
  );
  // POST /fhir/{type}/_search takes its criteria as a form, so PHI stays out of URLs and logs.
  fastify.addContentTypeParser(
    'application/x-www-form-urlencoded',
    { parseAs: 'buffer', bodyLimit },
    routedOnly((request, body, done) => {
      try {
        done(null, queryRecord(bodyText(body as Buffer, request.headers['content-type'])));
      } catch (error) {
        done(error as Error, undefined);
      }
    }),
  );
  // HL7 v2 over HTTPS (POST /hl7/v2) is ER7 text, up to the MLLP frame limit; a Binary may be
  // text too (below), within BODY_LIMIT as a document of any other type is (it was refused
  // past it as a 400 on Binary.data, not a 413); on any other route such a body is a 415.
  fastify.addContentTypeParser(
    [HL7_MEDIA_TYPE, 'text/plain'],
    { parseAs: 'buffer', bodyLimit: Math.max(bodyLimit, env.HL7_MAX_FRAME_BYTES) },
    routedOnly((request, body, done) => {
      const hl7 = request.routeOptions.url === HL7_ROUTE;
      if ((body as Buffer).length > (hl7 ? env.HL7_MAX_FRAME_BYTES : bodyLimit)) {
        done(new PayloadTooLargeException(), undefined);
        return;
      }
      if (hl7) {
        done(null, body);
        return;
      }
      nativeBinary(request, body as Buffer, done);
    }),
  );
  // A Binary created or updated in its own format (a PDF, an image); any other body of a type
  // without a parser is a 415.
  fastify.addContentTypeParser(
    '*',
    { parseAs: 'buffer', bodyLimit },
    routedOnly((request, body, done) => nativeBinary(request, body as Buffer, done)),
  );
  decodeContentEncoding(fastify);
  refuseRepeatedHeaders(fastify);
  fastify.addHook('onRequest', (request, reply, done) => {
    void reply.header('x-request-id', request.id);
    done();
  });
  fastify.addHook('onRequest', (request, _reply, done) => {
    const query = request.url.indexOf('?');
    try {
      if (query !== -1) assertWellEncoded(request.url.slice(query + 1));
      done();
    } catch (error) {
      done(error as Error);
    }
  });
  return adapter;
}

const BINARY_WRITES = new Set(['POST /fhir/:type', 'PUT /fhir/:type/:id']);

type BodyParser = (
  request: FastifyRequest,
  body: string | Buffer,
  done: (error: Error | null, body?: unknown) => void,
) => void;

/**
 * A parser that leaves the body of a request no route matched unread: the 404 or 405 it gets
 * does not depend on it, where a malformed JSON or text body made it a 400 or 415.
 */
function routedOnly(parser: BodyParser): BodyParser {
  return (request, body, done) => {
    if (request.is404) {
      done(null, undefined);
      return;
    }
    parser(request, body, done);
  };
}

function nativeBinary(
  request: FastifyRequest,
  body: Buffer,
  done: (error: Error | null, body?: unknown) => void,
): void {
  const route = `${request.method} ${request.routeOptions.url ?? ''}`;
  const type = (request.params as { type?: string } | undefined)?.type;
  if (type === 'Binary' && BINARY_WRITES.has(route)) {
    done(
      null,
      new NativeContent(body, request.headers['content-type'] ?? 'application/octet-stream'),
    );
    return;
  }
  // The generic 415 names the FHIR API's JSON types, which would send a feed the wrong way.
  if (request.routeOptions.url === HL7_ROUTE) {
    done(
      AppError.of(
        415,
        'not-supported',
        `An HL7 v2 message is sent as ${HL7_MEDIA_TYPE} or text/plain`,
      ),
      undefined,
    );
    return;
  }
  done(new UnsupportedMediaTypeException(), undefined);
}
