import type { FastifyInstance, FastifyRequest } from 'fastify';
import { PassThrough, type Readable, type Transform } from 'node:stream';
import { createBrotliDecompress, createGunzip, createInflate } from 'node:zlib';
import { AppError } from '../errors/app-error.js';

// HAPI FHIR's client gzips request bodies (GZipContentInterceptor) and HAPI's server takes them;
// until 2026-12-06 such a body reached the JSON parser compressed and was refused as bad UTF-8.
const DECODERS: Readonly<Record<string, () => Transform>> = {
  gzip: createGunzip,
  'x-gzip': createGunzip,
  deflate: createInflate,
  br: createBrotliDecompress,
};

/** A decoded body as Fastify reads it: the limit applies to both sizes (a "zip bomb" stops). */
type DecodedBody = PassThrough & { receivedEncodedLength: number };

/**
 * Decodes request bodies sent with `Content-Encoding: gzip`, `deflate` or `br` before any
 * parser reads them; BODY_LIMIT then bounds the decoded body as well as the bytes received.
 * Any other coding is a 415 (RFC 9110 section 15.5.16) rather than bytes parsed as what they
 * are not, and a body that does not decode is a 400.
 */
export function decodeContentEncoding(fastify: FastifyInstance): void {
  fastify.addHook('preParsing', (request, _reply, payload, done) => {
    const codings = contentCodings(request);
    if (codings.length === 0) {
      done(null, payload);
      return;
    }
    const unsupported = codings.find((coding) => DECODERS[coding] === undefined);
    if (unsupported !== undefined || codings.length > 1) {
      done(
        AppError.of(
          415,
          'not-supported',
          `Content-Encoding ${unsupported ?? codings.join(', ')} is not supported: send the body ` +
            `unencoded or with one of ${Object.keys(DECODERS).join(', ')}`,
        ),
      );
      return;
    }
    done(null, decoded(payload, codings[0]!));
  });
}

function contentCodings(request: FastifyRequest): string[] {
  const header = request.headers['content-encoding'];
  if (header === undefined || !hasReadBody(request)) return [];
  return header
    .split(',')
    .map((coding) => coding.trim().toLowerCase())
    .filter((coding) => coding !== '' && coding !== 'identity');
}

// Fastify reads no body of a GET or HEAD, nor of a request that declares none; the body of a
// request no route matched is left unread (its 404 does not depend on it).
function hasReadBody(request: FastifyRequest): boolean {
  if (request.method === 'GET' || request.method === 'HEAD' || request.is404) return false;
  const length = request.headers['content-length'];
  return request.headers['transfer-encoding'] !== undefined || Number(length ?? 0) > 0;
}

function decoded(payload: Readable, coding: string): DecodedBody {
  const decoder = DECODERS[coding]!();
  const body = Object.assign(new PassThrough(), { receivedEncodedLength: 0 });
  payload.on('data', (chunk: Buffer) => {
    body.receivedEncodedLength += chunk.length;
  });
  payload.on('error', (error) => body.destroy(error));
  // zlib's own message ("incorrect header check") would not tell a client which header it meant.
  decoder.on('error', () =>
    body.destroy(AppError.of(400, 'invalid', `The body is not valid ${coding} data`)),
  );
  // Fastify listens for the body's errors when it reads it; this listener keeps an error raised
  // after a refusal (the body left unread) from being an uncaught one that ends the process.
  body.on('error', () => undefined);
  payload.pipe(decoder).pipe(body);
  return body;
}
