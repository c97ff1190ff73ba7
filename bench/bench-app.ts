import { randomUUID } from 'node:crypto';
import { NestFactory } from '@nestjs/core';
import type { NestFastifyApplication } from '@nestjs/platform-fastify';
import { AppModule } from '../src/app.module.js';
import { UsersService } from '../src/auth/users.service.js';
import { createHttpAdapter } from '../src/common/http/http-adapter.js';
import { setupApp } from '../src/common/http/setup-app.js';
import { readEnv } from '../src/config/config.js';

/**
 * A CareVault for a benchmark: the real AppModule as main.ts assembles it (rate limits included;
 * the benchmarks raise them out of the way), without logs, on a free loopback port, and on any
 * free MLLP port, so that several instances can run side by side.
 * `beforeListen` may add Fastify hooks, which cannot be added once the server listens.
 */
export async function startBenchApp(
  beforeListen?: (app: NestFastifyApplication) => void,
): Promise<{ app: NestFastifyApplication; url: string }> {
  process.env['HL7_MLLP_PORT'] ??= '0';
  // The limiter runs on every request, as in production, but never refuses the benchmark's.
  process.env['RATE_LIMIT_PER_MINUTE'] ??= '1000000';
  const app = await NestFactory.create<NestFastifyApplication>(
    await AppModule.register({ rateLimits: true }),
    createHttpAdapter(readEnv()),
    { logger: false, bodyParser: false },
  );
  setupApp(app, { docs: false });
  beforeListen?.(app);
  await app.listen(0, '127.0.0.1');
  return { app, url: (await app.getUrl()).replace('[::1]', '127.0.0.1') };
}

/** A bearer token for a new user with the doctor role, got through the login route. */
export async function benchToken(app: NestFastifyApplication, url: string): Promise<string> {
  return (await benchSession(app, url))();
}

/**
 * A new user with the doctor role, and a function giving its bearer token: logged in again
 * once the last token is ten minutes old, so runs longer than ACCESS_TOKEN_TTL keep working.
 */
export async function benchSession(
  app: NestFastifyApplication,
  url: string,
): Promise<() => Promise<string>> {
  const password = `bench-${randomUUID()}`;
  const username = `bench-${randomUUID().slice(0, 8)}`;
  await app.get(UsersService).create(username, ['doctor'], password);
  let current: { token: string; at: number } | undefined;
  return async () => {
    if (!current || Date.now() - current.at > 10 * 60_000) {
      const res = await fetch(`${url}/auth/login`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ username, password }),
      });
      const token = ((await res.json()) as { access_token: string }).access_token;
      current = { token, at: Date.now() };
    }
    return current.token;
  };
}
