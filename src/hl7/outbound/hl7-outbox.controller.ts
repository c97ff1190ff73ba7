import { Controller, Get, HttpCode, Param, ParseUUIDPipe, Post, Query } from '@nestjs/common';
import { ApiBearerAuth, ApiOperation, ApiQuery, ApiTags } from '@nestjs/swagger';
import { RequirePermission } from '../../auth/permission.decorators.js';
import { listQuery } from '../list-query.js';
import { HL7_OUTBOX_STATUSES, type Hl7OutboxEntity } from './hl7-outbox.entity.js';
import { Hl7OutboxRepository } from './hl7-outbox.repository.js';
import { Hl7Outbox } from './hl7-outbox.service.js';

/** An outbound message as listed: where, what about, and how it went; never its content. */
export type Hl7OutboxSummary = Omit<Hl7OutboxEntity, 'message'>;

function summary({ message: _message, ...rest }: Hl7OutboxEntity): Hl7OutboxSummary {
  return rest;
}

@ApiTags('HL7')
@ApiBearerAuth()
@Controller('hl7/outbox')
export class Hl7OutboxController {
  constructor(
    private readonly outbox: Hl7Outbox,
    private readonly rows: Hl7OutboxRepository,
  ) {}

  @Get()
  @RequirePermission('hl7:feed')
  @ApiQuery({ name: 'status', enum: HL7_OUTBOX_STATUSES })
  @ApiQuery({ name: '_count', required: false, description: '1 to 1000, default 100' })
  @ApiOperation({ summary: 'Outbound HL7 messages with a status, oldest first (no content)' })
  async list(
    @Query('status') status: string,
    @Query('_count') count?: string,
  ): Promise<Hl7OutboxSummary[]> {
    const query = listQuery(HL7_OUTBOX_STATUSES, status, count);
    return (await this.rows.list(query.status, query.limit)).map(summary);
  }

  @Post(':id/resend')
  @HttpCode(200)
  @RequirePermission('hl7:feed')
  @ApiOperation({
    summary:
      'Send a dead message again, at its place in the queue; 409 if not dead or if a later message about the same resource was delivered',
  })
  async resend(@Param('id', ParseUUIDPipe) id: string): Promise<Hl7OutboxSummary> {
    return summary(await this.outbox.resend(id));
  }
}
