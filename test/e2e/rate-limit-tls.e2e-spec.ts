import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { request } from 'node:https';
import { createConnection, createServer as createNetServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, createServer, type SecureVersion } from 'node:tls';
import { readFileSync } from 'node:fs';
import pg from 'pg';
import { http } from '../support/http.js';
import { BUILT, childEnv, runNode, startService, type RunningService } from '../support/process.js';
import { selfSignedCertificate } from '../support/certificates.js';

/**
 * Rate limits and TLS run against the built service: @nestjs/throttler cannot be loaded by
 * Jest's module loader (see RateLimitModule), and TLS is the process's listener.
 */
function serviceEnv(extra: Record<string, string>): Record<string, string> {
  return childEnv({
    DATABASE_URL: process.env['DATABASE_URL']!,
    PHI_MASTER_KEY: process.env['PHI_MASTER_KEY']!,
    DATA_DIR: process.env['DATA_DIR']!,
    PORT: '0',
    // startService waits for the "Listening on" line, logged at info.
    LOG_LEVEL: 'info',
    ...extra,
  });
}

const json = { 'content-type': 'application/json' };

describe('rate limits (built service)', () => {
  const password = 'Rate-Limit-Password-4719';
  const username = `rate-limited-${Date.now()}`;
  let strict: RunningService;
  let behindProxy: RunningService;

  beforeAll(async () => {
    const created = await runNode(
      BUILT.cli,
      ['user:create', '--username', username, '--role', 'doctor'],
      serviceEnv({}),
      { stdin: `${password}\n` },
    );
    expect(created.code).toBe(0);
    [strict, behindProxy] = await Promise.all([
      startService(serviceEnv({ LOGIN_RATE_LIMIT_PER_MINUTE: '3', RATE_LIMIT_PER_MINUTE: '20' })),
      startService(
        serviceEnv({
          LOGIN_RATE_LIMIT_PER_MINUTE: '3',
          RATE_LIMIT_PER_MINUTE: '20',
          TRUSTED_PROXIES: '127.0.0.1',
        }),
      ),
    ]);
  });

  afterAll(async () => {
    await Promise.all([strict?.stop(), behindProxy?.stop()]);
  });

  const badLogin = (url: string, forwardedFor?: string) =>
    http('POST', `${url}/auth/login`, {
      body: { username: 'nobody-here', password: 'wrong-password' },
      headers: { ...json, ...(forwardedFor ? { 'x-forwarded-for': forwardedFor } : {}) },
    });

  it('limits logins per client address with 429, Retry-After and an OperationOutcome', async () => {
    const statuses = [];
    for (let i = 0; i < 4; i++) statuses.push((await badLogin(strict.url)).status);
    expect(statuses).toEqual([401, 401, 401, 429]);
    const limited = await badLogin(strict.url);
    expect(limited.status).toBe(429);
    expect(Number(limited.headers.get('retry-after'))).toBeGreaterThan(0);
    expect(limited.body.issue[0].code).toBe('throttled');
    // The refused request has its audit row like any other.
    const requestId = limited.headers.get('x-request-id');
    const db = new pg.Client({ connectionString: process.env['DATABASE_URL'] });
    await db.connect();
    try {
      const { rows } = await db.query(
        'SELECT action, outcome, status_code, source_ip FROM audit_event WHERE request_id = $1',
        [requestId],
      );
      expect(rows).toEqual([
        { action: 'login', outcome: 'failure', status_code: 429, source_ip: '127.0.0.1' },
      ]);
    } finally {
      await db.end();
    }
  });

  it('does not let a spoofed X-Forwarded-For reset the limit', async () => {
    // `strict` trusts no proxy: the header is ignored and the loopback address stays limited.
    const spoofed = await badLogin(strict.url, '203.0.113.77');
    expect(spoofed.status).toBe(429);
    // Control: behind a configured proxy the header does pick the client, so the check above
    // would have caught a service that believed it.
    for (let i = 0; i < 3; i++) await badLogin(behindProxy.url, '198.51.100.1');
    expect((await badLogin(behindProxy.url, '198.51.100.1')).status).toBe(429);
    expect((await badLogin(behindProxy.url, '198.51.100.2')).status).toBe(401);
  });

  it('counts an IPv6 client by its /64, so a new address per attempt does not reset the limit', async () => {
    const statuses = [];
    for (let i = 1; i <= 4; i++) {
      statuses.push((await badLogin(behindProxy.url, `2001:db8:7:1::${i.toString(16)}`)).status);
    }
    expect(statuses).toEqual([401, 401, 401, 429]);
    // The next /64 is another client.
    expect((await badLogin(behindProxy.url, '2001:db8:7:2::1')).status).toBe(401);
  });

  it('keeps refreshing sessions when others at the same address spent the login limit', async () => {
    // One address for a whole hospital (its NAT): a user signs in, then others fail logins.
    const nat = '192.0.2.77';
    const login = await http('POST', `${behindProxy.url}/auth/login`, {
      body: { username, password },
      headers: { ...json, 'x-forwarded-for': nat },
    });
    expect(login.status).toBe(200);
    expect((await badLogin(behindProxy.url, nat)).status).toBe(401);
    expect((await badLogin(behindProxy.url, nat)).status).toBe(401);
    const limited = await badLogin(behindProxy.url, nat);
    expect(limited.status).toBe(429);
    // Retry-After alone: not the library's Retry-After-login or X-RateLimit-* beside it.
    const rateLimitHeaders = (res: { headers: Headers }) =>
      [...res.headers.keys()].filter((name) => /^(retry-after|x-ratelimit)/.test(name));
    expect(rateLimitHeaders(limited)).toEqual(['retry-after']);
    // A refresh token cannot be guessed: refresh has no login limit to run out of.
    let refreshToken: string = login.body.refresh_token;
    for (let i = 0; i < 4; i++) {
      const refreshed = await http('POST', `${behindProxy.url}/auth/refresh`, {
        body: { refresh_token: refreshToken },
        headers: { ...json, 'x-forwarded-for': nat },
      });
      expect(refreshed.status).toBe(200);
      expect(rateLimitHeaders(refreshed)).toEqual([]);
      refreshToken = refreshed.body.refresh_token;
    }
    // So is the OAuth token endpoint, where SMART apps refresh.
    const form = { 'content-type': 'application/x-www-form-urlencoded', 'x-forwarded-for': nat };
    const oauth = await http('POST', `${behindProxy.url}/auth/token`, {
      raw: new URLSearchParams({
        grant_type: 'refresh_token',
        refresh_token: refreshToken,
      }).toString(),
      headers: form,
    });
    expect(oauth.status).toBe(200);
  });

  it('limits unauthenticated calls before authentication, and each user across addresses', async () => {
    const login = await http('POST', `${behindProxy.url}/auth/login`, {
      body: { username, password },
      headers: { ...json, 'x-forwarded-for': '192.0.2.200' },
    });
    expect(login.status).toBe(200);
    const statuses: number[] = [];
    for (let i = 0; i < 22; i++) {
      const res = await http('GET', `${behindProxy.url}/fhir/Patient/none`, {
        // A new address each time: only the per-user limit can stop these.
        headers: {
          authorization: `Bearer ${login.body.access_token}`,
          'x-forwarded-for': `192.0.2.${i + 1}`,
        },
      });
      statuses.push(res.status);
    }
    expect(statuses.slice(0, 20).every((status) => status === 404)).toBe(true);
    expect(statuses.slice(20)).toEqual([429, 429]);
    // Without a token, the per-address limit answers 429 instead of 401 once spent.
    const anonymous: number[] = [];
    for (let i = 0; i < 21; i++) {
      anonymous.push(
        (
          await http('GET', `${behindProxy.url}/fhir/Patient/none`, {
            headers: { 'x-forwarded-for': '192.0.2.250' },
          })
        ).status,
      );
    }
    expect(anonymous.slice(0, 20).every((status) => status === 401)).toBe(true);
    expect(anonymous[20]).toBe(429);
  });
});

describe('TLS (built service)', () => {
  let dir: string;
  let service: RunningService;
  let cert: string;
  let key: string;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'carevault-tls-'));
    // RSA: the suites refused below include static RSA, which an EC key cannot offer.
    ({ cert, key } = selfSignedCertificate(dir, 'server', '127.0.0.1', 2, 'rsa'));
    service = await startService(
      serviceEnv({ TLS_CERT_FILE: cert, TLS_KEY_FILE: key, SHUTDOWN_TIMEOUT_SECONDS: '1' }),
    );
  });

  afterAll(async () => {
    await service?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  /** Completes a handshake at exactly this TLS version, or reports the error. */
  function handshake(
    port: number,
    version: SecureVersion,
    ciphers = 'DEFAULT@SECLEVEL=0',
  ): Promise<string> {
    return new Promise((resolve) => {
      const socket = connect({
        host: '127.0.0.1',
        port,
        ca: readFileSync(cert),
        minVersion: version,
        maxVersion: version,
        // OpenSSL 3 refuses TLS 1.1 at its default security level even as a client.
        ciphers,
      });
      socket.once('secureConnect', () => {
        resolve(`ok ${socket.getProtocol()}`);
        socket.destroy();
      });
      socket.once('error', (error) => resolve(`refused: ${error.message}`));
    });
  }

  it('serves HTTPS and refuses TLS 1.0 and 1.1 handshakes', async () => {
    expect(service.url).toMatch(/^https:/);
    const port = Number(new URL(service.url).port);
    const health = await new Promise<number>((resolve, reject) => {
      request(`${service.url}/health`, { ca: readFileSync(cert) }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      })
        .on('error', reject)
        .end();
    });
    expect(health).toBe(200);
    expect(await handshake(port, 'TLSv1.2')).toBe('ok TLSv1.2');
    expect(await handshake(port, 'TLSv1.3')).toBe('ok TLSv1.3');
    expect(await handshake(port, 'TLSv1.1')).toMatch(/^refused/);
    expect(await handshake(port, 'TLSv1')).toMatch(/^refused/);
  });

  // Until 2026-12-06 TLS 1.2 took Node's default suites: static RSA (no forward secrecy), ARIA,
  // CHACHA20 and AES-CCM besides ECDHE with AES-GCM, the only ones NIST SP 800-52r2 keeps here.
  it('with TLS 1.2, accepts ECDHE with AES-GCM only', async () => {
    const port = Number(new URL(service.url).port);
    expect(await handshake(port, 'TLSv1.2', 'ECDHE-RSA-AES128-GCM-SHA256')).toBe('ok TLSv1.2');
    for (const suite of [
      'AES128-GCM-SHA256',
      'ECDHE-RSA-CHACHA20-POLY1305',
      'ECDHE-ARIA128-GCM-SHA256',
    ]) {
      expect([suite, await handshake(port, 'TLSv1.2', suite)]).toEqual([
        suite,
        expect.stringMatching(/^refused/),
      ]);
    }
  });

  it('control: the same TLS 1.1 client does connect to a server that allows TLS 1.1', async () => {
    const legacy = createServer({
      cert: readFileSync(cert),
      key: readFileSync(key),
      minVersion: 'TLSv1.1',
      ciphers: 'DEFAULT@SECLEVEL=0',
    });
    await new Promise<void>((resolve) => legacy.listen(0, '127.0.0.1', resolve));
    try {
      const port = (legacy.address() as { port: number }).port;
      expect(await handshake(port, 'TLSv1.1')).toBe('ok TLSv1.1');
    } finally {
      legacy.close();
    }
  });

  // Until 2026-12-06 it waited Node's 120 s for a handshake: a client that connected and said
  // nothing held its socket for two minutes.
  it('closes a connection that has not finished its TLS handshake after 10 s', async () => {
    const silent = createConnection(Number(new URL(service.url).port), '127.0.0.1');
    silent.on('error', () => undefined);
    await new Promise((resolve) => silent.once('connect', resolve));
    const started = Date.now();
    const closed = await Promise.race([
      new Promise<'closed'>((resolve) => silent.once('close', () => resolve('closed'))),
      new Promise<'open'>((resolve) => setTimeout(() => resolve('open'), 30_000)),
    ]);
    silent.destroy();
    expect(closed).toBe('closed');
    expect(Date.now() - started).toBeGreaterThanOrEqual(9_000);
  });

  // Until 2026-12-06 the stop closed the HTTP connections after SHUTDOWN_TIMEOUT_SECONDS, but not
  // a TCP connection still in its TLS handshake (not an HTTP one yet): a client that connected
  // and said nothing held the stop for Node's 120 s handshake timeout, past the grace periods
  // of docker stop and Kubernetes, which then kill before the pool and the audit checkpoint close.
  it('stops within SHUTDOWN_TIMEOUT_SECONDS while a client sits in its TLS handshake', async () => {
    const silent = createConnection(Number(new URL(service.url).port), '127.0.0.1');
    silent.on('error', () => undefined);
    await new Promise((resolve) => silent.once('connect', resolve));
    const started = Date.now();
    try {
      const stopped = await Promise.race([
        service.stop(),
        new Promise<'still running'>((resolve) => setTimeout(() => resolve('still running'), 6000)),
      ]);
      expect(stopped).toEqual({ code: 0, signal: null });
      expect(Date.now() - started).toBeLessThan(4000);
    } finally {
      silent.destroy();
    }
  });
});

/** A port on 127.0.0.1 where nothing listens: bound by the system, then closed. */
function closedPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createNetServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

/** Needs no Redis: REDIS_URL names a port where nothing listens. */
describe('rate limits while Redis is unreachable (REDIS_URL)', () => {
  const metricsToken = randomBytes(32).toString('hex');
  let dir: string;
  let service: RunningService;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'carevault-redis-down-'));
    await writeFile(join(dir, 'metrics-token'), `${metricsToken}\n`, { mode: 0o600 });
    service = await startService(
      serviceEnv({
        REDIS_URL: `redis://127.0.0.1:${await closedPort()}`,
        LOGIN_RATE_LIMIT_PER_MINUTE: '3',
        RATE_LIMIT_PER_MINUTE: '20',
        METRICS_TOKEN_FILE: join(dir, 'metrics-token'),
      }),
    );
  });

  afterAll(async () => {
    await service?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it('answers every request and keeps the limits in this process', async () => {
    // Past the 20-a-minute limit: probes are never throttled, so an orchestrator does not
    // restart an instance that works.
    for (let i = 0; i < 12; i++) {
      expect((await http('GET', `${service.url}/health`)).status).toBe(200);
      expect((await http('GET', `${service.url}/health/ready`)).status).toBe(200);
    }
    const statuses = [];
    for (let i = 0; i < 4; i++) {
      statuses.push(
        (
          await http('POST', `${service.url}/auth/login`, {
            body: { username: 'nobody-here', password: 'wrong-password' },
            headers: json,
          })
        ).status,
      );
    }
    expect(statuses).toEqual([401, 401, 401, 429]);
    const metrics = await http('GET', `${service.url}/metrics`, {
      headers: { authorization: `Bearer ${metricsToken}` },
    });
    expect(metrics.status).toBe(200);
    expect(metrics.text).toMatch(/^carevault_rate_limit_fallback 1$/m);
    // One line for the outage, not one per request or per reconnection attempt.
    expect(service.output().match(/Rate-limit counters: Redis unreachable/g)).toHaveLength(1);
    expect(service.output()).not.toContain('Unhandled error event');
  });
});

/** Needs a Redis server: CI sets TEST_REDIS_URL when the machine runs one (.ci/run). */
const redisUrl = process.env['TEST_REDIS_URL'];
(redisUrl ? describe : describe.skip)('rate limits shared through Redis (REDIS_URL)', () => {
  let first: RunningService;
  let second: RunningService;

  beforeAll(async () => {
    const env = serviceEnv({
      REDIS_URL: redisUrl!,
      LOGIN_RATE_LIMIT_PER_MINUTE: '3',
      TRUSTED_PROXIES: '127.0.0.1',
    });
    [first, second] = await Promise.all([startService(env), startService(env)]);
  });

  afterAll(async () => {
    await Promise.all([first?.stop(), second?.stop()]);
  });

  it('counts a client across instances', async () => {
    // A client address of its own, so that earlier runs' counters in the same Redis do not count.
    const client = `10.${Math.floor(Math.random() * 250)}.${Math.floor(Math.random() * 250)}.${Math.floor(Math.random() * 250)}`;
    const attempt = (service: RunningService) =>
      http('POST', `${service.url}/auth/login`, {
        body: { username: 'nobody-here', password: 'wrong-password' },
        headers: { ...json, 'x-forwarded-for': client },
      });
    expect((await attempt(first)).status).toBe(401);
    expect((await attempt(second)).status).toBe(401);
    expect((await attempt(first)).status).toBe(401);
    const limited = await attempt(second);
    expect(limited.status).toBe(429);
    expect(Number(limited.headers.get('retry-after'))).toBeGreaterThan(0);
  });
});
