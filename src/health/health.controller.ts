import { Controller, Get, HttpCode } from '@nestjs/common';
import { ApiOperation, ApiTags } from '@nestjs/swagger';
import { InjectDataSource } from '@nestjs/typeorm';
import type { DataSource } from 'typeorm';
import { Public } from '../auth/permission.decorators.js';
import { AppError } from '../common/errors/app-error.js';
import { NoRateLimit } from '../common/http/rate-limit.js';
import { databaseProblem } from '../database/database-unavailable.js';

@ApiTags('Operations')
@Public()
@NoRateLimit()
@Controller('health')
export class HealthController {
  constructor(@InjectDataSource() private readonly dataSource: DataSource) {}

  @Get()
  @HttpCode(200)
  @ApiOperation({ summary: 'Liveness: the process is serving requests' })
  live(): { status: 'ok' } {
    return { status: 'ok' };
  }

  @Get('ready')
  @ApiOperation({
    summary: 'Readiness: the database answers, and a connection of the pool came free in time',
  })
  async ready(): Promise<{ status: 'ok'; database: 'up' }> {
    try {
      await this.dataSource.query('SELECT 1');
    } catch (error) {
      // A saturated pool is not ready either: a load balancer should send the next request
      // elsewhere until this instance drains. The diagnostics say which of the two it is.
      if (databaseProblem(error) === 'busy') {
        throw AppError.of(503, 'throttled', 'Busy: every database connection is in use');
      }
      throw AppError.of(503, 'exception', 'Database unavailable');
    }
    return { status: 'ok', database: 'up' };
  }
}
