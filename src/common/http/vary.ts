import type { FastifyReply } from 'fastify';

/**
 * Adds a request header the answer depends on to its Vary (RFC 9110 section 12.5.5), once: the
 * answer passes several hooks that each add theirs (CORS's Origin, the format's Accept, the
 * encoding's Accept-Encoding), and a second Vary line or a name twice would be one too many.
 */
export function addVary(reply: FastifyReply, name: string): void {
  const vary = String(reply.getHeader('vary') ?? '');
  const names = vary.split(',').map((field) => field.trim().toLowerCase());
  if (names.includes('*') || names.includes(name.toLowerCase())) return;
  reply.header('vary', vary.trim() === '' ? name : `${vary}, ${name}`);
}
