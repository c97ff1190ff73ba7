import { Controller, Get, Header, Headers, Res } from '@nestjs/common';
import { ApiBearerAuth, ApiOperation, ApiProduces, ApiTags } from '@nestjs/swagger';
import type { FastifyReply } from 'fastify';
import { Public } from '../auth/permission.decorators.js';
import { AppError } from '../common/errors/app-error.js';
import { MetricsToken } from './metrics-token.js';
import { Metrics } from './metrics.js';

/**
 * Prometheus scrape endpoint. Not a user's route: it takes the scraper's own bearer token
 * (METRICS_TOKEN_FILE), not a CareVault login, so a monitoring system holds no user account.
 */
@ApiTags('Operations')
@Public()
@Controller('metrics')
export class MetricsController {
  constructor(
    private readonly metrics: Metrics,
    private readonly token: MetricsToken,
  ) {}

  @Get()
  @ApiBearerAuth()
  @ApiProduces('text/plain')
  @ApiOperation({
    summary: 'Prometheus metrics (bearer token from METRICS_TOKEN_FILE; 404 when none is set)',
  })
  @Header('cache-control', 'no-store')
  async scrape(
    @Headers('authorization') authorization: string | undefined,
    @Res({ passthrough: true }) reply: FastifyReply,
  ): Promise<string> {
    if (!this.token.configured) {
      throw AppError.notFound('Metrics are off: set METRICS_TOKEN_FILE to serve them');
    }
    if (!this.token.accepts(authorization)) {
      // The exception filter adds the Bearer challenge of every 401.
      throw AppError.of(401, 'login', 'The metrics token is missing or wrong');
    }
    void reply.type(this.metrics.registry.contentType);
    return this.metrics.registry.metrics();
  }
}
