import type { NestFastifyApplication } from '@nestjs/platform-fastify';
import { Logger } from 'nestjs-pino';
import { setupSwagger } from './swagger.js';

/**
 * Everything main.ts and the e2e tests apply to a created application. In-process tests leave
 * out Swagger UI: its static file server depends on an ES-module-only package that Jest cannot
 * load on Node 20; the process-level e2e test checks /docs on the built service instead.
 */
export function setupApp(
  app: NestFastifyApplication,
  options: { docs: boolean } = { docs: true },
): void {
  app.useLogger(app.get(Logger));
  if (options.docs) {
    setupSwagger(app);
  }
}
