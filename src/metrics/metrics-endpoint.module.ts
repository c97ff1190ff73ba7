import { Module, type OnModuleInit } from '@nestjs/common';
import { collectDefaultMetrics } from 'prom-client';
import { AppConfig } from '../config/config.js';
import { DatabaseGauges } from './database-gauges.js';
import { HttpMetrics } from './http-metrics.js';
import { MetricsToken } from './metrics-token.js';
import { MetricsController } from './metrics.controller.js';
import { Metrics } from './metrics.js';

/** GET /metrics and what only a serving process measures: HTTP, the pool, the process. */
@Module({
  controllers: [MetricsController],
  providers: [
    HttpMetrics,
    DatabaseGauges,
    {
      provide: MetricsToken,
      inject: [AppConfig],
      useFactory: (config: AppConfig) => new MetricsToken(config.metricsTokenFile),
    },
  ],
})
export class MetricsEndpointModule implements OnModuleInit {
  constructor(private readonly metrics: Metrics) {}

  onModuleInit(): void {
    // CPU, memory, event-loop delay, garbage collection, open handles.
    collectDefaultMetrics({ register: this.metrics.registry, prefix: 'carevault_' });
  }
}
