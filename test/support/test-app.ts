import { NestFactory } from '@nestjs/core';
import type { NestFastifyApplication } from '@nestjs/platform-fastify';
import { AppModule } from '../../src/app.module.js';
import { createHttpAdapter } from '../../src/common/http/http-adapter.js';
import { setupApp } from '../../src/common/http/setup-app.js';
import { readEnv } from '../../src/config/config.js';

export interface TestApp {
  app: NestFastifyApplication;
  /** http://127.0.0.1:<port> */
  url: string;
  close(): Promise<void>;
}

/** Boots the real AppModule on the test database and listens on a free loopback port. */
export async function createTestApp(): Promise<TestApp> {
  const env = readEnv();
  const app = await NestFactory.create<NestFastifyApplication>(
    await AppModule.register(),
    createHttpAdapter(env),
    // Body parsers are the adapter's (createHttpAdapter), with CareVault's JSON rules.
    { bufferLogs: true, bodyParser: false },
  );
  setupApp(app, { docs: false });
  await app.listen(0, '127.0.0.1');
  const url = (await app.getUrl()).replace('[::1]', '127.0.0.1');
  return { app, url, close: () => app.close() };
}
