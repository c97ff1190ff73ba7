import { DynamicModule, Module, ValidationPipe } from '@nestjs/common';
import { APP_FILTER, APP_INTERCEPTOR, APP_PIPE } from '@nestjs/core';
import { LoggerModule } from 'nestjs-pino';
import { AuditCheckpointScheduler } from './audit/audit-checkpoint.scheduler.js';
import { AuditInterceptor } from './audit/audit.interceptor.js';
import { AuditModule } from './audit/audit.module.js';
import { AuthModule } from './auth/auth.module.js';
import { AllExceptionsFilter } from './common/filters/all-exceptions.filter.js';
import { loggingParams } from './common/http/logging.js';
import { AppConfig } from './config/config.js';
import { AppConfigModule } from './config/config.module.js';
import { CryptoModule } from './crypto/crypto.module.js';
import { PhiKeyCheck } from './crypto/phi-key-check.js';
import { DatabaseModule } from './database/database.module.js';
import { ExportModule } from './fhir/export/export.module.js';
import { FhirModule } from './fhir/fhir.module.js';
import { HealthModule } from './health/health.module.js';
import { MetricsEndpointModule } from './metrics/metrics-endpoint.module.js';
import { MetricsModule } from './metrics/metrics.module.js';
import { Hl7Module } from './hl7/hl7.module.js';
import { LaunchModule } from './smart/launch/launch.module.js';
import { SmartModule } from './smart/smart.module.js';
import { SubscriptionsModule } from './subscriptions/subscriptions.module.js';

@Module({})
export class AppModule {
  /** Assembled on demand so configuration is validated when the app starts, not when imported. */
  static async register(options: { rateLimits?: boolean } = {}): Promise<DynamicModule> {
    // Loaded only when asked for: see RateLimitModule on why in-process tests run without it.
    const limits = options.rateLimits
      ? (await import('./rate-limit/rate-limit.module.js')).RateLimitModule
      : undefined;
    return {
      module: AppModule,
      imports: [
        await AppConfigModule.register(),
        MetricsModule,
        LoggerModule.forRootAsync({ inject: [AppConfig], useFactory: loggingParams }),
        DatabaseModule,
        CryptoModule,
        AuditModule,
        // Guard order follows import order: client limits, authentication, permissions, user limits.
        ...(limits ? [limits.forClients()] : []),
        AuthModule,
        ...(limits ? [limits.forUsers()] : []),
        FhirModule,
        ExportModule,
        SmartModule,
        LaunchModule,
        HealthModule,
        MetricsEndpointModule,
        Hl7Module,
        SubscriptionsModule,
      ],
      providers: [
        // Every request gets one audit row: the interceptor records what handlers complete, the
        // filter what fails anywhere (guards, routing, parsing, handlers).
        { provide: APP_FILTER, useClass: AllExceptionsFilter },
        { provide: APP_INTERCEPTOR, useClass: AuditInterceptor },
        AuditCheckpointScheduler,
        // Before the HL7 listener opens (it starts at bootstrap): no PHI under keys not held.
        PhiKeyCheck,
        // DTOs of the auth and admin routes; FHIR bodies are plain JSON checked by FhirService.
        {
          provide: APP_PIPE,
          useValue: new ValidationPipe({
            whitelist: true,
            forbidNonWhitelisted: true,
            transform: true,
          }),
        },
      ],
    };
  }
}
