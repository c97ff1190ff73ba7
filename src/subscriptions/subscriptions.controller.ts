import { Controller, Get, Query, Req, Res } from '@nestjs/common';
import { ApiBearerAuth, ApiOperation, ApiQuery, ApiTags } from '@nestjs/swagger';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { RequirePermission } from '../auth/permission.decorators.js';
import { pageOf } from '../hl7/list-query.js';
import { SUBSCRIPTION_LIST_STATUSES, SubscriptionList } from './subscription-list.js';
import type { SubscriptionSummary } from './subscription.repository.js';

/** What an administrator looks after: Subscriptions the server stopped, and why. */
@ApiTags('Subscriptions')
@ApiBearerAuth()
@Controller('subscriptions')
export class SubscriptionsController {
  constructor(private readonly list: SubscriptionList) {}

  @Get()
  @RequirePermission('subscriptions:manage')
  @ApiQuery({ name: 'status', enum: SUBSCRIPTION_LIST_STATUSES })
  @ApiQuery({ name: '_count', required: false, description: '1 to 1000, default 100' })
  @ApiQuery({
    name: '_after',
    required: false,
    description: 'The id of the last Subscription of the page before (the Link header says it)',
  })
  @ApiOperation({
    summary:
      'Subscriptions with a status, by id: why the server gave it and their notifications waiting and given up (no endpoint or criteria); Link rel="next" when more',
  })
  async byStatus(
    @Query() query: Record<string, unknown>,
    @Req() request: FastifyRequest,
    @Res({ passthrough: true }) reply: FastifyReply,
  ): Promise<SubscriptionSummary[]> {
    const { subscriptions, limit } = await this.list.byStatus(query);
    return pageOf(subscriptions, limit, request, reply, (subscription) => subscription.id);
  }
}
