import { Global, Module } from '@nestjs/common';
import { Metrics } from './metrics.js';

/**
 * The instruments, for every feature that counts something (the service and the CLI alike).
 * What serves them is MetricsEndpointModule, in the service only.
 */
@Global()
@Module({ providers: [Metrics], exports: [Metrics] })
export class MetricsModule {}
