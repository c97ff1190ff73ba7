import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { pipeline, type Readable } from 'node:stream';
import { promisify } from 'node:util';
import {
  brotliCompress,
  constants,
  createBrotliCompress,
  createGzip,
  gzip,
  type BrotliOptions,
} from 'node:zlib';
import { addVary } from './vary.js';

/**
 * Brotli's default quality (11) costs about 50 times gzip's CPU on a large Bundle; quality 4
 * costs about what gzip does and still encodes smaller.
 */
const BROTLI: BrotliOptions = {
  params: {
    [constants.BROTLI_PARAM_QUALITY]: 4,
    [constants.BROTLI_PARAM_MODE]: constants.BROTLI_MODE_TEXT,
  },
};

/** The codings produced, in the order preferred when a client weighs them alike. */
const brotliAsync = promisify(brotliCompress);
const gzipAsync = promisify(gzip);
const CODINGS = {
  br: {
    encode: (bytes: Buffer | string) => brotliAsync(bytes, BROTLI),
    stream: () => createBrotliCompress(BROTLI),
  },
  gzip: {
    encode: (bytes: Buffer | string) => gzipAsync(bytes),
    stream: () => createGzip(),
  },
} as const;
type Coding = keyof typeof CODINGS;

/** Smaller answers gain less than the header and the work cost (@fastify/compress's threshold). */
const MIN_BYTES = 1024;

/** FHIR JSON, plain JSON and NDJSON (Bulk Data files): text that compresses well. */
const COMPRESSIBLE = /^application\/(?:[a-z0-9.-]+\+)?(?:nd)?json\b/i;

/**
 * Encodes FHIR answers with gzip or brotli when the request's Accept-Encoding asks for it (RFC
 * 9110 section 12.5.3): a CapabilityStatement is 770 KB of JSON, a page of search results or an
 * `$everything` often megabytes, and a Bulk Data file (streamed, encoded as it streams) as large
 * as the data. Until 2026-12-07 every answer went as it was, whatever the client asked.
 * Encoding runs on libuv's threads, not on the event loop. Only `/fhir` answers are encoded:
 * they are sent to a bearer token that a page of another origin cannot make a browser attach,
 * which a BREACH-style attack (secrets guessed from compressed sizes) would need.
 */
export function encodeResponses(fastify: FastifyInstance): void {
  // A stream that fails before its first byte is answered with the error instead, through
  // onSend again, after its encoding was named: that label is taken back, or the error's
  // plain JSON would go labelled gzip, unreadable to the client.
  const encodedStreams = new WeakSet<FastifyReply>();
  fastify.addHook('onSend', (request, reply, payload, done) => {
    if (encodedStreams.has(reply)) {
      encodedStreams.delete(reply);
      reply.removeHeader('content-encoding');
      reply.raw.removeHeader('content-encoding');
    }
    // A 304 names what its 200 would have varied by (RFC 9110 section 15.4.5).
    if (reply.statusCode === 304 && request.url.startsWith('/fhir')) {
      addVary(reply, 'Accept-Encoding');
    }
    if (!encodable(request, reply, payload)) {
      done(null, payload);
      return;
    }
    addVary(reply, 'Accept-Encoding');
    const coding = negotiate(request.headers['accept-encoding']);
    if (coding === undefined) {
      done(null, payload);
      return;
    }
    if (isStream(payload)) {
      reply.header('content-encoding', coding).removeHeader('content-length');
      encodedStreams.add(reply);
      const encoder = CODINGS[coding].stream();
      // An error of the source (a file that fails to decrypt) ends the encoder with it, and
      // Fastify then ends the response as it would have for the source.
      pipeline(payload, encoder, () => undefined);
      done(null, encoder);
      return;
    }
    const body = payload as Buffer | string;
    if (Buffer.byteLength(body) < MIN_BYTES) {
      done(null, payload);
      return;
    }
    CODINGS[coding].encode(body).then(
      (encoded) => {
        reply.header('content-encoding', coding).removeHeader('content-length');
        done(null, encoded);
      },
      (error: Error) => done(error),
    );
  });
}

function encodable(request: FastifyRequest, reply: FastifyReply, payload: unknown): boolean {
  if (payload === null || payload === undefined) return false;
  if (!request.url.startsWith('/fhir')) return false;
  if (reply.statusCode === 204 || reply.statusCode === 304) return false;
  if (reply.hasHeader('content-encoding')) return false;
  if (!isStream(payload) && typeof payload !== 'string' && !Buffer.isBuffer(payload)) return false;
  return COMPRESSIBLE.test(String(reply.getHeader('content-type') ?? ''));
}

function isStream(payload: unknown): payload is Readable {
  return typeof (payload as Readable).pipe === 'function';
}

/**
 * The coding the client weighs highest of those produced (`*` weighs those it does not name);
 * none when it refuses them all (`q=0`) or names none, and identity is then the answer.
 */
export function negotiate(acceptEncoding: string | undefined): Coding | undefined {
  if (!acceptEncoding) return undefined;
  const weights = new Map<string, number>();
  for (const member of acceptEncoding.split(',')) {
    const [name = '', ...parameters] = member.split(';').map((part) => part.trim());
    if (name === '') continue;
    const q = parameters.map((p) => /^q\s*=\s*(.*)$/i.exec(p)?.[1]).find((v) => v !== undefined);
    const weight = q === undefined ? 1 : Number(q);
    // RFC 9110 section 8.4.1.3: x-gzip is gzip.
    const coding = name.toLowerCase() === 'x-gzip' ? 'gzip' : name.toLowerCase();
    weights.set(coding, Number.isNaN(weight) ? 0 : weight);
  }
  let best: Coding | undefined;
  let bestWeight = 0;
  for (const coding of Object.keys(CODINGS) as Coding[]) {
    const weight = weights.get(coding) ?? weights.get('*') ?? 0;
    if (weight > bestWeight) {
      best = coding;
      bestWeight = weight;
    }
  }
  return best;
}
