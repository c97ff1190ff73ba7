import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { parse } from 'yaml';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const run = promisify(execFile);

interface Service {
  image?: string;
  build?: unknown;
  user?: string;
  read_only?: boolean;
  cap_drop?: string[];
  security_opt?: string[];
  healthcheck?: { test: unknown };
  environment?: Record<string, string | number>;
  secrets?: string[];
  command?: string[];
  depends_on?: Record<string, { condition: string }>;
}

/** `docker compose` (v2 plugin) or `docker-compose` (Debian's v1), whichever is installed. */
async function composeCommand(): Promise<string[] | undefined> {
  for (const command of [['docker', 'compose'], ['docker-compose']]) {
    try {
      await run(command[0]!, [...command.slice(1), 'version'], { timeout: 20_000 });
      return command;
    } catch {
      // not this one
    }
  }
  return undefined;
}

describe('docker-compose.yml (production-like deployment)', () => {
  let services: Record<string, Service>;
  let compose: { secrets: Record<string, { file: string }> };

  beforeAll(async () => {
    compose = parse(await readFile(`${ROOT}docker-compose.yml`, 'utf8'), { merge: true });
    services = (compose as unknown as { services: Record<string, Service> }).services;
  });

  it('is valid for docker compose config', async () => {
    const command = await composeCommand();
    if (!command) {
      // The structure is checked below either way; .ci/run installs docker-compose.
      process.stderr.write(
        'docker compose config not run: install docker-compose (apt-get install docker-compose)\n',
      );
      return;
    }
    const { stdout } = await run(
      command[0]!,
      [...command.slice(1), '-f', `${ROOT}docker-compose.yml`, 'config'],
      { timeout: 60_000, env: { PATH: process.env['PATH'] ?? '' } },
    );
    const rendered = parse(stdout) as { services: Record<string, Service> };
    expect(Object.keys(rendered.services).sort()).toEqual(['app', 'migrate', 'postgres', 'redis']);
    expect(rendered.services['app']!.read_only).toBe(true);
  });

  it('runs every service with a healthcheck or as a one-shot job, on a read-only root', () => {
    for (const [name, service] of Object.entries(services)) {
      expect({ name, readOnly: service.read_only }).toEqual({ name, readOnly: true });
      expect(service.security_opt).toContain('no-new-privileges:true');
      if (name !== 'migrate') {
        expect({ name, healthcheck: Boolean(service.healthcheck?.test) }).toEqual({
          name,
          healthcheck: true,
        });
      }
    }
    expect(services['app']!.depends_on).toEqual({
      migrate: { condition: 'service_completed_successfully' },
      redis: { condition: 'service_healthy' },
    });
    expect(services['migrate']!.depends_on).toEqual({
      postgres: { condition: 'service_healthy' },
    });
  });

  it('configures CareVault as the compliance report expects of production: wrapped keys, TLS', () => {
    const env = services['app']!.environment!;
    expect(env).toMatchObject({
      NODE_ENV: 'production',
      KEY_CUSTODY: 'local',
      KEK_FILE: '/run/secrets/kek',
      TLS_CERT_FILE: '/run/secrets/tls-cert',
      TLS_KEY_FILE: '/run/secrets/tls-key',
      HL7_TLS_CERT_FILE: '/run/secrets/tls-cert',
      HL7_TLS_KEY_FILE: '/run/secrets/tls-key',
      JWT_SIGNING_KEY_FILE: '/run/secrets/jwt-signing-key',
      ID_TOKEN_SIGNING_KEY_FILE: '/run/secrets/id-token-signing-key',
      AUDIT_SIGNING_KEY_FILE: '/run/secrets/audit-signing-key',
    });
    // The wrapped keys live in a volume, the KEK in a secret: never on the same mount.
    expect(String(env['PHI_KEY_FILE'])).toMatch(/^\/var\/lib\/carevault\//);
    expect(env).not.toHaveProperty('PHI_MASTER_KEY_FILE');
  });

  it('runs CareVault and Redis as unprivileged users with no capabilities', () => {
    for (const name of ['app', 'migrate', 'redis']) {
      const service = services[name]!;
      expect(service.user).toMatch(/^[1-9]\d*:[1-9]\d*$/);
      expect(service.cap_drop).toEqual(['ALL']);
    }
  });

  it('takes every secret from a file, none from the environment', () => {
    const secretLike = /PASSWORD|KEY|TOKEN|SECRET|DATABASE_URL|REDIS_URL/;
    for (const [name, service] of Object.entries(services)) {
      for (const [variable, value] of Object.entries(service.environment ?? {})) {
        // A public key, a file of keys useless without the KEK (a secret), and a setting.
        if (
          !secretLike.test(variable) ||
          ['BACKUP_RECIPIENT', 'PHI_KEY_FILE', 'KEY_CUSTODY'].includes(variable)
        ) {
          continue;
        }
        // A secret variable may only name a mounted secret file.
        expect({ name, variable, value }).toEqual({
          name,
          variable: expect.stringMatching(/_FILE$/) as unknown,
          value: expect.stringMatching(/^\/run\/secrets\//) as unknown,
        });
        const secret = String(value).replace('/run/secrets/', '');
        expect(service.secrets).toContain(secret);
      }
    }
    for (const [name, secret] of Object.entries(compose.secrets)) {
      expect({ name, file: secret.file }).toEqual({
        name,
        file: expect.stringMatching(/^\.\/secrets\//) as unknown,
      });
    }
  });
});
