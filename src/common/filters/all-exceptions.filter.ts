import { ArgumentsHost, Catch, ExceptionFilter, Logger } from '@nestjs/common';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { errorResponse, loggableError } from '../errors/error-response.js';
import { FHIR_JSON } from '../http/media-types.js';

/** Every error that reaches Nest becomes an OperationOutcome, with no stack, SQL or PHI in it. */
@Catch()
export class AllExceptionsFilter implements ExceptionFilter {
  private readonly logger = new Logger('Errors');

  catch(exception: unknown, host: ArgumentsHost): void {
    const http = host.switchToHttp();
    const request = http.getRequest<FastifyRequest>();
    const reply = http.getResponse<FastifyReply>();
    const { status, body, unexpected } = errorResponse(exception, request.id);
    if (unexpected !== undefined) {
      this.logger.error(
        { err: loggableError(unexpected), requestId: request.id },
        'Request failed',
      );
    }
    if (status === 401) {
      void reply.header('www-authenticate', 'Bearer realm="carevault"');
    }
    void reply.status(status).header('content-type', FHIR_JSON).send(body);
  }
}
