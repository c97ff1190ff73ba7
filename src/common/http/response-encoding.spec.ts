import Fastify, { type FastifyInstance } from 'fastify';
import { request, type IncomingHttpHeaders } from 'node:http';
import { Readable } from 'node:stream';
import { gunzipSync } from 'node:zlib';
import { encodeResponses, negotiate } from './response-encoding.js';

describe('negotiate (Accept-Encoding)', () => {
  it.each([
    [undefined, undefined],
    ['', undefined],
    ['identity', undefined],
    ['compress, deflate', undefined],
    ['gzip', 'gzip'],
    ['x-gzip', 'gzip'],
    ['GZIP', 'gzip'],
    ['gzip, deflate, br', 'br'],
    ['gzip;q=1, br;q=0.5', 'gzip'],
    ['gzip;q=0.5, br', 'br'],
    ['br;q=0, gzip', 'gzip'],
    ['gzip;q=0, identity', undefined],
    ['*', 'br'],
    ['*;q=0', undefined],
    ['gzip;q=0.8, *;q=0', 'gzip'],
    ['gzip ; q = 0.3', 'gzip'],
    ['gzip;q=abc', undefined],
  ])('%p gives %p', (header, coding) => {
    expect(negotiate(header)).toBe(coding);
  });
});

/** Light-my-request (Fastify's inject) loads an ES module Jest cannot: a real socket instead. */
async function get(
  fastify: FastifyInstance,
  path: string,
  headers: Record<string, string>,
): Promise<{ statusCode: number; headers: IncomingHttpHeaders; rawPayload: Buffer }> {
  const url = await fastify.listen({ port: 0, host: '127.0.0.1' });
  try {
    return await new Promise((resolve, reject) => {
      request(`${url}${path}`, { headers }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('end', () =>
          resolve({
            statusCode: res.statusCode!,
            headers: res.headers,
            rawPayload: Buffer.concat(chunks),
          }),
        );
        res.on('error', reject);
      })
        .on('error', reject)
        .end();
    });
  } finally {
    await fastify.close();
  }
}

describe('encodeResponses', () => {
  const lines = ['{"resourceType":"Patient","id":"a"}', '{"resourceType":"Patient","id":"b"}'];

  async function app(source: () => Readable) {
    const fastify = Fastify();
    encodeResponses(fastify);
    fastify.get('/fhir/file', (_request, reply) =>
      reply.header('content-type', 'application/fhir+ndjson').send(source()),
    );
    await fastify.ready();
    return fastify;
  }

  it('encodes a stream as it goes', async () => {
    const fastify = await app(() => Readable.from(lines.map((line) => `${line}\n`)));
    const res = await get(fastify, '/fhir/file', { 'accept-encoding': 'gzip' });
    expect(res.headers['content-encoding']).toBe('gzip');
    expect(gunzipSync(res.rawPayload).toString()).toBe(`${lines.join('\n')}\n`);
  });

  it('answers an error that ends a stream before its first byte unencoded, and says so', async () => {
    const fastify = await app(
      () =>
        new Readable({
          read() {
            this.destroy(new Error('the file could not be read'));
          },
        }),
    );
    const res = await get(fastify, '/fhir/file', { 'accept-encoding': 'gzip' });
    expect(res.statusCode).toBe(500);
    // The error's body is what the error handler wrote, and labelled as it is.
    expect(res.headers['content-encoding']).toBeUndefined();
    expect(JSON.parse(res.rawPayload.toString()).statusCode).toBe(500);
  });
});
