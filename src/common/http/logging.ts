import { RequestMethod } from '@nestjs/common';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Params } from 'nestjs-pino';
import type { AppConfig } from '../../config/config.js';

/**
 * Structured request logs. Nothing that can carry PHI or secrets is logged: no bodies (pino-http
 * never logs them), no Authorization or Cookie header, and the URL without its query string
 * (search parameters are often names and birth dates).
 */
export function loggingParams(config: AppConfig): Params {
  return {
    // nestjs-pino's default route pattern ('{/*splat}') matches nothing under Nest 12 on
    // Fastify, which silently drops every request log; a named wildcard matches every path.
    forRoutes: [{ path: '*path', method: RequestMethod.ALL }],
    pinoHttp: {
      level: config.logLevel,
      // The id Fastify assigned (see http-adapter.ts), so logs, errors and X-Request-Id agree.
      genReqId: (request: IncomingMessage) =>
        (request as IncomingMessage & { id?: string }).id ?? 'unknown',
      redact: {
        paths: ['req.headers.authorization', 'req.headers.cookie', 'res.headers["set-cookie"]'],
        censor: '[redacted]',
      },
      serializers: {
        req: (request: IncomingMessage & { id?: string; raw?: IncomingMessage }) => ({
          id: request.id,
          method: request.method,
          url: pathOnly(request.url),
          // pino-http hands serializers a wrapper whose `raw` is the Node request.
          remoteAddress: (request.raw ?? request).socket?.remoteAddress,
        }),
        res: (response: ServerResponse) => ({ statusCode: response.statusCode }),
      },
      customLogLevel: (_request, response, error) =>
        error || response.statusCode >= 500
          ? 'error'
          : response.statusCode >= 400
            ? 'warn'
            : 'info',
    },
  };
}

function pathOnly(url: string | undefined): string | undefined {
  return url?.split('?', 1)[0];
}
