import type { FastifyInstance, FastifyRequest } from 'fastify';

declare module 'fastify' {
  interface FastifyInstance {
    /** PUBLIC_URL's origin, when configured (see createHttpAdapter). */
    publicOrigin: string | null;
  }
}

/** Holds PUBLIC_URL's origin on the server, for requestOrigin. */
export function setPublicOrigin(fastify: FastifyInstance, publicUrl: string | undefined): void {
  fastify.decorate('publicOrigin', publicUrl ? new URL(publicUrl).origin : null);
}

/**
 * The origin for the absolute URLs FHIR and SMART give, and the audience a client assertion
 * must name: PUBLIC_URL when configured, else the scheme and Host the client used. The Host
 * header is the sender's to choose: an assertion made for another server's token endpoint
 * would pass with a matching Host, hence PUBLIC_URL in production.
 */
export function requestOrigin(request: FastifyRequest): string {
  return request.server.publicOrigin ?? `${request.protocol}://${request.host}`;
}
