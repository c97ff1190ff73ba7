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
import { ApiBearerAuth, ApiOperation, ApiQuery, ApiTags } from '@nestjs/swagger';
import { RequirePermission } from '../../auth/permission.decorators.js';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { pageOf } from '../list-query.js';
import { HL7_OUTBOX_STATUSES } from './hl7-outbox.entity.js';
import { Hl7Outbox, type Hl7OutboxSummary } from './hl7-outbox.service.js';

@ApiTags('HL7')
@ApiBearerAuth()
@Controller('hl7/outbox')
export class Hl7OutboxController {
  constructor(private readonly outbox: Hl7Outbox) {}

  @Get()
  @RequirePermission('hl7:manage')
  @ApiQuery({ name: 'status', enum: HL7_OUTBOX_STATUSES })
  @ApiQuery({ name: '_count', required: false, description: '1 to 1000, default 100' })
  @ApiQuery({ name: 'destination', required: false, description: 'host:port, as configured' })
  @ApiQuery({ name: 'resource', required: false, description: 'What it is about: Patient/123' })
  @ApiQuery({
    name: '_after',
    required: false,
    description: 'The seq of the last message of the page before (the Link header says it)',
  })
  @ApiOperation({
    summary:
      'Outbound HL7 messages with a status, in queue order (no content); Link rel="next" when more',
  })
  async list(
    @Query() query: Record<string, unknown>,
    @Req() request: FastifyRequest,
    @Res({ passthrough: true }) reply: FastifyReply,
  ): Promise<Hl7OutboxSummary[]> {
    const { messages, limit } = await this.outbox.list(query);
    return pageOf(messages, limit, request, reply, (message) => message.seq);
  }

  @Post(':id/resend')
  @HttpCode(200)
  @RequirePermission('hl7:manage')
  @ApiOperation({
    summary:
      'Send a dead message again, at its place in the queue; 409 if not dead or if a later message about the same resource was delivered',
  })
  async resend(@Param('id', ParseUUIDPipe) id: string): Promise<Hl7OutboxSummary> {
    return this.outbox.resend(id);
  }
}
