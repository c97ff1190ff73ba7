import type { NestFastifyApplication } from '@nestjs/platform-fastify';
import { Logger } from 'nestjs-pino';
import { setupSwagger } from './swagger.js';

/** Everything main.ts and the e2e tests both apply to a created application. */
export function setupApp(app: NestFastifyApplication): void {
  app.useLogger(app.get(Logger));
  app.enableShutdownHooks();
  setupSwagger(app);
}
