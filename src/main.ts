import 'reflect-metadata';
import { Logger } from '@nestjs/common';
import type { NestFastifyApplication } from '@nestjs/platform-fastify';
import type { Socket } from 'node:net';
import { listenError } from './common/listen-error.js';
import { AppConfig, readEnv } from './config/config.js';
import { ConfigError } from './config/env.schema.js';
import { KeyConfigError } from './crypto/key-store.js';
import { DatabaseConnectError } from './database/database-connect.js';

async function bootstrap(): Promise<void> {
  const env = readEnv();
  // The service's own URLs (SMART discovery's token endpoint, Bundle links, the audience client
  // assertions must name) come from PUBLIC_URL, else from the Host header, which clients choose.
  // The admin CLI names none, so it is the service alone that needs it.
  if (env.NODE_ENV === 'production' && !env.PUBLIC_URL) {
    throw new ConfigError(
      'Invalid configuration: PUBLIC_URL must be set when NODE_ENV=production (the origin clients reach the service at, such as https://ehr.example.org): without it the Host header, which clients choose, names the token endpoint in SMART discovery, the links of Bundles and the audience client assertions must have',
    );
  }
  // Each step loaded once the one before passed: the files' checks (a tenth of a second to load)
  // once the environment is valid, the application's modules (seconds) once the files are, so a
  // start refused for a mistyped variable or path need not wait for them.
  const { checkConfiguredFiles } = await import('./preflight.js');
  await checkConfiguredFiles(env);
  const [{ NestFactory }, { AppModule }, { createHttpAdapter }, { setupApp }] = await Promise.all([
    import('@nestjs/core'),
    import('./app.module.js'),
    import('./common/http/http-adapter.js'),
    import('./common/http/setup-app.js'),
  ]);
  const app = await NestFactory.create<NestFastifyApplication>(
    await AppModule.register({ rateLimits: true }),
    createHttpAdapter(env),
    // Body parsers are the adapter's (createHttpAdapter), with CareVault's JSON rules. What
    // fails inside the factory (a key file a provider reads) reaches the catch below instead of
    // Nest's handler, which logs it with its stack and exits; the logs buffered until then are
    // written once the application exists, so a failed start prints the one line below alone.
    { bufferLogs: true, autoFlushLogs: false, abortOnError: false, bodyParser: false },
  );
  setupApp(app);
  app.flushLogs();
  const config = app.get(AppConfig);
  await app.init();
  await app.listen(config.port, config.host).catch((error: Error) => {
    throw listenError(error, {
      host: { name: 'HOST', value: config.host },
      port: { name: 'PORT', value: config.port },
    });
  });
  const url = await app.getUrl();
  const logger = new Logger('CareVault');
  const docs = config.docsEnabled ? ', API docs at /docs' : '';
  logger.log(
    `Listening on ${url}: FHIR at /fhir${docs} (started in ${process.uptime().toFixed(1)} s)`,
  );
  stopOnSignals(app, logger, env.SHUTDOWN_TIMEOUT_SECONDS);
}

/**
 * Graceful shutdown: stop accepting requests, finish the ones in flight, close the pool, then
 * stop the embedded PostgreSQL (DatabaseServer's hook). A second signal, which Ctrl+C under
 * `npm start` always delivers (npm forwards it), must not cut that sequence short.
 * Closing the server waits for every connection that is not idle: one that has sent nothing yet
 * (a load balancer's spare) or a request still trickling in would hold it for minutes, until
 * `docker stop` or Kubernetes kills the process before the pool, the last audit checkpoint and
 * the embedded PostgreSQL are closed. After `timeoutSeconds` those connections are closed.
 */
function stopOnSignals(app: NestFastifyApplication, logger: Logger, timeoutSeconds: number): void {
  let stopping = false;
  // closeAllConnections knows HTTP connections only: one still in its TLS handshake (a client
  // that connected and said nothing) held the stop for Node's 120 s handshake timeout.
  const server = app.getHttpServer();
  const sockets = new Set<Socket>();
  server.on('connection', (socket: Socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  });
  const stop = (signal: NodeJS.Signals): void => {
    if (stopping) {
      return;
    }
    stopping = true;
    logger.log(`${signal} received: shutting down`);
    setTimeout(() => {
      logger.warn(`HTTP connections still open after ${timeoutSeconds} s: closed`);
      server.closeAllConnections();
      for (const socket of sockets) socket.destroy();
    }, timeoutSeconds * 1000).unref();
    app.close().then(
      () => process.exit(0),
      (error: unknown) => {
        console.error('Shutdown failed:', error);
        process.exit(1);
      },
    );
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
}

bootstrap().catch((error: unknown) => {
  // Configuration problems are one line naming the variable; anything else keeps its detail.
  if (
    error instanceof ConfigError ||
    error instanceof KeyConfigError ||
    error instanceof DatabaseConnectError
  ) {
    console.error(error.message);
  } else {
    console.error('CareVault failed to start:', error);
  }
  process.exit(1);
});
