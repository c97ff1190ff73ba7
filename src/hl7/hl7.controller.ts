import {
  Controller,
  Get,
  HttpCode,
  Param,
  ParseUUIDPipe,
  Post,
  Query,
  Req,
  Res,
} from '@nestjs/common';
import {
  ApiBearerAuth,
  ApiConsumes,
  ApiOperation,
  ApiProduces,
  ApiQuery,
  ApiTags,
} from '@nestjs/swagger';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { RequirePermission } from '../auth/permission.decorators.js';
import { AppError } from '../common/errors/app-error.js';
import { HL7_MEDIA_TYPE } from '../common/http/media-types.js';
import { Hl7InboundService } from './inbound/hl7-inbound.service.js';
import { Hl7Messages, type Hl7MessageSummary } from './hl7-messages.service.js';
import { pageOf } from './list-query.js';
import { HL7_MESSAGE_STATUSES } from './store/hl7-message.entity.js';
import type { Hl7Outcome } from './store/hl7-message.repository.js';

/** HL7 v2 for systems that post over HTTPS rather than holding an MLLP connection. */
@ApiTags('HL7')
@ApiBearerAuth()
@Controller('hl7')
export class Hl7Controller {
  constructor(
    private readonly inbound: Hl7InboundService,
    private readonly messages: Hl7Messages,
  ) {}

  @Get('messages')
  @RequirePermission('hl7:manage')
  @ApiQuery({ name: 'status', enum: HL7_MESSAGE_STATUSES })
  @ApiQuery({ name: '_count', required: false, description: '1 to 1000, default 100' })
  @ApiQuery({ name: 'type', required: false, description: 'ADT^A08, or ADT for all its events' })
  @ApiQuery({ name: 'controlId', required: false, description: 'MSH-10, exactly' })
  @ApiQuery({ name: 'sender', required: false, description: 'MSH-3 sending application' })
  @ApiQuery({ name: 'since', required: false, description: 'Received at or after (instant)' })
  @ApiQuery({ name: 'before', required: false, description: 'Received before (instant)' })
  @ApiQuery({ name: 'warned', required: false, description: 'true: accepted with a warning' })
  @ApiQuery({
    name: '_after',
    required: false,
    description: 'The id of the last message of the page before (the Link header says it)',
  })
  @ApiOperation({
    summary:
      'Stored HL7 messages with a status, oldest first (headers only); Link rel="next" when more',
  })
  async list(
    @Query() query: Record<string, unknown>,
    @Req() request: FastifyRequest,
    @Res({ passthrough: true }) reply: FastifyReply,
  ): Promise<Hl7MessageSummary[]> {
    const { messages, limit } = await this.messages.list(query);
    return pageOf(messages, limit, request, reply, (message) => message.id);
  }

  @Post('messages/:id/reprocess')
  @HttpCode(200)
  @RequirePermission('hl7:manage')
  @ApiOperation({ summary: 'Process a stored message again (after an error); 409 once processed' })
  reprocess(@Param('id', ParseUUIDPipe) id: string): Promise<Hl7Outcome & { id: string }> {
    return this.inbound.reprocess(id);
  }

  @Post('messages/:id/dismiss')
  @HttpCode(200)
  @RequirePermission('hl7:dismiss')
  @ApiOperation({
    summary:
      'Set a failed message (error, rejected) aside as dismissed, once its sender has sent a correction; 409 otherwise',
  })
  dismiss(@Param('id', ParseUUIDPipe) id: string): Promise<Hl7MessageSummary> {
    return this.messages.dismiss(id);
  }

  @Post('v2')
  @HttpCode(200)
  @RequirePermission('hl7:feed')
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
