import type { FastifyInstance } from 'fastify';
import { randomUUID } from 'node:crypto';
import { STATUS_CODES } from 'node:http';
import type { Duplex } from 'node:stream';
import type { Issue } from '../errors/app-error.js';
import { operationOutcome } from '../errors/operation-outcome.js';

/** A request Node's HTTP parser refused, as far as it can be described without its bytes. */
export interface ClientRefusal {
  /** Sent back as X-Request-Id: the request's own could not be read. */
  requestId: string;
  status: number;
  issue: Issue['code'];
  sourceIp: string | null;
}

declare module 'fastify' {
  interface FastifyInstance {
    /** Given each request answerClientError refuses (setupApp records it in the audit trail). */
    recordClientRefusal?: (refusal: ClientRefusal) => void;
  }
}

/** Node's codes for requests its parser refuses, and what the client is told about each. */
function answerFor(code: string | undefined): { status: number; issue: Issue } {
  if (code === 'ERR_HTTP_REQUEST_TIMEOUT') {
    const diagnostics = 'The request was not received in time';
    return { status: 408, issue: { severity: 'error', code: 'timeout', diagnostics } };
  }
  if (code === 'HPE_HEADER_OVERFLOW') {
    const diagnostics = 'The request headers are larger than the server accepts';
    return { status: 431, issue: { severity: 'error', code: 'too-long', diagnostics } };
  }
  const diagnostics =
    code === 'HPE_INVALID_URL'
      ? 'The request URL holds a character HTTP does not allow there: percent-encode it (UTF-8)'
      : 'The HTTP request could not be parsed';
  return { status: 400, issue: { severity: 'error', code: 'structure', diagnostics } };
}

/**
 * Answers what Node's HTTP parser refuses before any route runs (a raw accented letter in a
 * query, headers past the size limit, a request too slow to arrive) with an OperationOutcome, as
 * every other error is, instead of Fastify's own JSON. Nothing of the request is echoed: the
 * refused bytes may hold a name or an MRN. Fastify calls it with the instance as `this`.
 */
export function answerClientError(
  this: FastifyInstance,
  error: Error & { code?: string },
  socket: Duplex,
): void {
  // A reset connection has nobody to answer.
  if (error.code === 'ECONNRESET' || socket.destroyed) return;
  if (error.code === 'HPE_INVALID_EOF_STATE') {
    // Its sender closed it in the middle of a request: nobody to answer either. A request whose
    // headers had arrived is recorded on its own, as incomplete, once the socket is gone.
    socket.destroy(error);
    return;
  }
  const { status, issue } = answerFor(error.code);
  const requestId = randomUUID();
  if (socket.writable) {
    const body = JSON.stringify(operationOutcome([issue]));
    socket.write(
      `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nContent-Type: application/fhir+json\r\n` +
        `X-Request-Id: ${requestId}\r\nContent-Length: ${Buffer.byteLength(body)}\r\n` +
        `Connection: close\r\n\r\n${body}`,
    );
  }
  const sourceIp = (socket as Duplex & { remoteAddress?: string }).remoteAddress ?? null;
  socket.destroy(error);
  this.recordClientRefusal?.({ requestId, status, issue: issue.code, sourceIp });
}
