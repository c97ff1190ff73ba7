import { Controller, HttpCode, Post, Req, Res } from '@nestjs/common';
import { ApiBearerAuth, ApiConsumes, ApiOperation, ApiProduces, ApiTags } from '@nestjs/swagger';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { RequirePermission } from '../auth/permission.decorators.js';
import { AppError } from '../common/errors/app-error.js';
import { HL7_MEDIA_TYPE } from '../common/http/media-types.js';
import { Hl7InboundService } from './inbound/hl7-inbound.service.js';

/** HL7 v2 for systems that post over HTTPS rather than holding an MLLP connection. */
@ApiTags('HL7')
@ApiBearerAuth()
@Controller('hl7')
export class Hl7Controller {
  constructor(private readonly inbound: Hl7InboundService) {}

  @Post('v2')
  @HttpCode(200)
  @RequirePermission('hl7:ingest')
  @ApiConsumes(HL7_MEDIA_TYPE, 'text/plain')
  @ApiProduces(HL7_MEDIA_TYPE)
  @ApiOperation({
    summary: 'Receive one HL7 v2 message, stored and processed as over MLLP; the answer is its ACK',
  })
  async receive(
    @Req() request: FastifyRequest,
    @Res({ passthrough: true }) reply: FastifyReply,
  ): Promise<Buffer> {
    if (!Buffer.isBuffer(request.body) || request.body.length === 0) {
      throw AppError.invalid('The body must be one HL7 v2 message (x-application/hl7-v2+er7)');
    }
    const ack = await this.inbound.receive(request.body, { channel: 'http', peer: request.ip });
    void reply.header('content-type', HL7_MEDIA_TYPE);
    return ack;
  }
}
