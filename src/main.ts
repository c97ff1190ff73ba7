import 'reflect-metadata';
import { Logger } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import type { NestFastifyApplication } from '@nestjs/platform-fastify';
import { AppModule } from './app.module.js';
import { createHttpAdapter } from './common/http/http-adapter.js';
import { setupApp } from './common/http/setup-app.js';
import { AppConfig, readEnv } from './config/config.js';
import { ConfigError } from './config/env.schema.js';
import { KeyConfigError } from './crypto/key-store.js';

async function bootstrap(): Promise<void> {
  const env = readEnv();
  const app = await NestFactory.create<NestFastifyApplication>(
    await AppModule.register(),
    createHttpAdapter(env.BODY_LIMIT),
    { bufferLogs: true },
  );
  setupApp(app);
  const config = app.get(AppConfig);
  await app.listen(config.port, config.host);
  const url = await app.getUrl();
  new Logger('CareVault').log(
    `Listening on ${url}: FHIR at /fhir, API docs at /docs (started in ${process.uptime().toFixed(1)} s)`,
  );
}

bootstrap().catch((error: unknown) => {
  // Configuration problems are one line naming the variable; anything else keeps its detail.
  if (error instanceof ConfigError || error instanceof KeyConfigError) {
    console.error(error.message);
  } else {
    console.error('CareVault failed to start:', error);
  }
  process.exit(1);
});
