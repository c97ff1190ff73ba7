import { Inject, Injectable, Optional } from '@nestjs/common';
import { ConfigService } from '@nestjs/config';
import { existsSync } from 'node:fs';
import { isAbsolute, join, resolve } from 'node:path';
import { EnvironmentVariables, facilityTimeZones, validateEnv } from './env.schema.js';
import { hl7Destinations, type Hl7Destination } from './hl7-destinations.js';
import { DEFAULT_TLS_CIPHERS } from '../common/tls-ciphers.js';
import type { CustodySettings } from '../crypto/custody/key-custodian.js';
import type { DatabasePool } from '../database/database-options.js';

/** Reads and validates the process environment; the only reader of `process.env` for settings. */
export function readEnv(options?: { requireKeys: boolean }): EnvironmentVariables {
  loadEnvFile();
  return validateEnv(process.env, options);
}

/**
 * Settings read from validated variables alone, outside Nest (the preflight, key set-up):
 * ConfigService would otherwise fall back to process.env, where a variable set empty is ''
 * rather than unset (see AppConfigModule).
 */
export function appConfigOf(env: EnvironmentVariables): AppConfig {
  const service = new ConfigService<EnvironmentVariables, true>(env);
  (service as unknown as { skipProcessEnv: boolean }).skipProcessEnv = true;
  return new AppConfig(service);
}

let envFileLoaded = false;

/**
 * Loads `./.env` into the environment once, without overriding variables already set, so the
 * service, the CLI and the migration scripts all see the same settings. Never in tests.
 */
export function loadEnvFile(): void {
  if (envFileLoaded || process.env['NODE_ENV'] === 'test') {
    return;
  }
  envFileLoaded = true;
  const path = resolve(process.cwd(), '.env');
  if (existsSync(path)) {
    process.loadEnvFile(path);
  }
}

/**
 * This process's environment plus overrides, for a child process such as the TypeORM CLI. An
 * override replaces its `_FILE` form too (DATABASE_URL_FILE), which would otherwise clash.
 */
export function childEnv(overrides: Record<string, string>): Record<string, string | undefined> {
  const env: Record<string, string | undefined> = { ...process.env, ...overrides };
  for (const name of Object.keys(overrides)) {
    delete env[`${name}_FILE`];
  }
  return env;
}

/** Which process reads the settings: the service, or the admin CLI. */
export type ProcessRole = 'service' | 'cli';
export const PROCESS_ROLE = Symbol('PROCESS_ROLE');
/** Set for the admin commands that work on any schema (see AppConfig.checksSchema). */
export const ANY_SCHEMA = Symbol('ANY_SCHEMA');

/** Typed, validated settings. Features depend on this, never on `process.env`. */
@Injectable()
export class AppConfig {
  /** HL7_FACILITY_TIME_ZONES and HL7_IGNORE, parsed once: they are read for every message. */
  private facilityZones: Map<string, string> | undefined;
  private ignoredTypes: ReadonlySet<string> | undefined;

  constructor(
    private readonly config: ConfigService<EnvironmentVariables, true>,
    @Optional() @Inject(PROCESS_ROLE) private readonly role: ProcessRole = 'service',
    @Optional() @Inject(ANY_SCHEMA) private readonly anySchema = false,
  ) {}

  get nodeEnv(): EnvironmentVariables['NODE_ENV'] {
    return this.config.get('NODE_ENV', { infer: true });
  }

  get isProduction(): boolean {
    return this.nodeEnv === 'production';
  }

  get port(): number {
    return this.config.get('PORT', { infer: true });
  }

  get host(): string {
    return this.config.get('HOST', { infer: true });
  }

  /** Set when an external PostgreSQL is used; unset means the embedded server. */
  get databaseUrl(): string | undefined {
    return this.config.get('DATABASE_URL', { infer: true });
  }

  /**
   * Connections the service holds at most, how long a request waits for one, and how long one
   * of its statements may run. The admin CLI's statements have no limit: a backup's COPY of a
   * table, or a key rotation's pass, runs as long as the data takes.
   */
  get databasePool(): DatabasePool {
    return {
      size: this.config.get('DATABASE_POOL_SIZE', { infer: true }),
      waitMs: this.config.get('DATABASE_WAIT_MS', { infer: true }),
      statementTimeoutMs:
        this.role === 'cli' ? 0 : this.config.get('DATABASE_STATEMENT_TIMEOUT_MS', { infer: true }),
    };
  }

  /**
   * How long a search's statements may run (SEARCH_TIMEOUT_MS), 0 for the connection's own
   * limit: shorter than DATABASE_STATEMENT_TIMEOUT_MS, so that costly searches cannot hold the
   * pool for a minute while clinicians' requests wait for a connection. Never longer than it.
   */
  get searchTimeoutMs(): number {
    return this.config.get('SEARCH_TIMEOUT_MS', { infer: true });
  }

  get dataDir(): string {
    return absolute(this.config.get('DATA_DIR', { infer: true }));
  }

  /** PUBLIC_URL: the origin clients reach the service at, when configured. */
  get publicUrl(): string | undefined {
    return this.config.get('PUBLIC_URL', { infer: true });
  }

  get isService(): boolean {
    return this.role === 'service';
  }

  /**
   * Whether this process refuses a schema other than its own, behind or ahead of it: the service
   * and every command but backup and restore, which work on one (a backup before an upgrade, a
   * restore into an empty database).
   */
  get checksSchema(): boolean {
    return this.isService || !this.anySchema;
  }

  /** Embedded mode always migrates on start; an external database only when asked to. */
  get runMigrationsOnStart(): boolean {
    return this.databaseUrl === undefined || this.config.get('MIGRATIONS_RUN', { infer: true });
  }

  get logLevel(): EnvironmentVariables['LOG_LEVEL'] {
    return this.config.get('LOG_LEVEL', { infer: true });
  }

  get phiMasterKeys(): string[] {
    const raw = this.config.get('PHI_MASTER_KEY', { infer: true });
    return raw ? raw.split(',').map((key) => key.trim()) : [];
  }

  get phiKeyFile(): string | undefined {
    const file = this.config.get('PHI_KEY_FILE', { infer: true });
    return file ? absolute(file) : undefined;
  }

  get jwtIssuer(): string {
    return this.config.get('JWT_ISSUER', { infer: true });
  }

  get jwtAudience(): string {
    return this.config.get('JWT_AUDIENCE', { infer: true });
  }

  /** The ES256 signing key (PKCS#8 PEM); unset outside production means one generated under DATA_DIR. */
  get jwtSigningKeyFile(): string | undefined {
    const file = this.config.get('JWT_SIGNING_KEY_FILE', { infer: true });
    return file ? absolute(file) : undefined;
  }

  /** The RS256 id_token key (PKCS#8 PEM); unset outside production means one under DATA_DIR. */
  get idTokenSigningKeyFile(): string | undefined {
    const file = this.config.get('ID_TOKEN_SIGNING_KEY_FILE', { infer: true });
    return file ? absolute(file) : undefined;
  }

  get accessTokenTtl(): number {
    return this.config.get('ACCESS_TOKEN_TTL', { infer: true });
  }

  get refreshIdleTtl(): number {
    return this.config.get('REFRESH_IDLE_TTL', { infer: true });
  }

  get refreshAbsoluteTtl(): number {
    return this.config.get('REFRESH_ABSOLUTE_TTL', { infer: true });
  }

  get loginMaxAttempts(): number {
    return this.config.get('LOGIN_MAX_ATTEMPTS', { infer: true });
  }

  get loginLockoutSeconds(): number {
    return this.config.get('LOGIN_LOCKOUT_SECONDS', { infer: true });
  }

  /** The external OIDC issuer, when one is configured. */
  get oidc():
    | {
        issuer: string;
        audience: string;
        jwksUri?: string;
        rolesClaim: string;
        roleMap: Map<string, string>;
      }
    | undefined {
    const issuer = this.config.get('OIDC_ISSUER', { infer: true });
    const audience = this.config.get('OIDC_AUDIENCE', { infer: true });
    if (!issuer || !audience) {
      return undefined;
    }
    const jwksUri = this.config.get('OIDC_JWKS_URI', { infer: true });
    return {
      issuer,
      audience,
      ...(jwksUri ? { jwksUri } : {}),
      rolesClaim: this.config.get('OIDC_ROLES_CLAIM', { infer: true }),
      roleMap: new Map(
        list(this.config.get('OIDC_ROLE_MAP', { infer: true })).map((pair) => {
          const [from, to] = pair.split('=');
          return [from!.trim(), to!.trim()];
        }),
      ),
    };
  }

  get corsOrigins(): string[] {
    return list(this.config.get('CORS_ORIGINS', { infer: true }));
  }

  get trustedProxies(): string[] {
    return list(this.config.get('TRUSTED_PROXIES', { infer: true }));
  }

  get tls(): { certFile: string; keyFile: string } | undefined {
    const cert = this.config.get('TLS_CERT_FILE', { infer: true });
    const key = this.config.get('TLS_KEY_FILE', { infer: true });
    return cert && key ? { certFile: absolute(cert), keyFile: absolute(key) } : undefined;
  }

  /** The cipher suites of every TLS endpoint, HTTPS and MLLP, inbound and outbound. */
  get tlsCiphers(): string {
    return this.config.get('TLS_CIPHERS', { infer: true }) ?? DEFAULT_TLS_CIPHERS;
  }

  get redisUrl(): string | undefined {
    return this.config.get('REDIS_URL', { infer: true });
  }

  get rateLimitPerMinute(): number {
    return this.config.get('RATE_LIMIT_PER_MINUTE', { infer: true });
  }

  get loginRateLimitPerMinute(): number {
    return this.config.get('LOGIN_RATE_LIMIT_PER_MINUTE', { infer: true });
  }

  get breakGlassMinutes(): number {
    return this.config.get('BREAK_GLASS_MINUTES', { infer: true });
  }

  get referentialIntegrity(): boolean {
    return this.config.get('FHIR_REFERENTIAL_INTEGRITY', { infer: true });
  }

  get cascadeMax(): number {
    return this.config.get('FHIR_CASCADE_MAX', { infer: true });
  }

  get indexRowsMax(): number {
    return this.config.get('FHIR_INDEX_ROWS_MAX', { infer: true });
  }

  get docsEnabled(): boolean {
    return !this.isProduction || this.config.get('DOCS_IN_PRODUCTION', { infer: true });
  }

  get jwtVerificationKeysFile(): string | undefined {
    const file = this.config.get('JWT_VERIFICATION_KEYS_FILE', { infer: true });
    return file ? absolute(file) : undefined;
  }

  get bodyLimit(): number {
    return this.config.get('BODY_LIMIT', { infer: true });
  }

  /** Unset outside production means a key generated under DATA_DIR. */
  get auditSigningKeyFile(): string | undefined {
    const file = this.config.get('AUDIT_SIGNING_KEY_FILE', { infer: true });
    return file ? absolute(file) : undefined;
  }

  get auditCheckpointFile(): string {
    const file = this.config.get('AUDIT_CHECKPOINT_FILE', { infer: true });
    return file ? absolute(file) : join(this.dataDir, 'audit-checkpoints.jsonl');
  }

  /** How the PHI keys in PHI_KEY_FILE are wrapped; undefined means they are plaintext. */
  get keyCustody(): CustodySettings | undefined {
    const provider = this.config.get('KEY_CUSTODY', { infer: true });
    if (!provider) {
      return undefined;
    }
    const file = (name: 'KEK_FILE' | 'PKCS11_PIN_FILE'): string =>
      absolute(this.config.get(name, { infer: true }) ?? '');
    return provider === 'local'
      ? { provider, kekFile: file('KEK_FILE') }
      : {
          provider,
          pkcs11: {
            module: this.config.get('PKCS11_MODULE', { infer: true }) ?? '',
            tokenLabel: this.config.get('PKCS11_TOKEN_LABEL', { infer: true }) ?? '',
            pinFile: file('PKCS11_PIN_FILE'),
            keyLabel: this.config.get('PKCS11_KEY_LABEL', { infer: true }),
          },
        };
  }

  get metricsTokenFile(): string | undefined {
    const file = this.config.get('METRICS_TOKEN_FILE', { infer: true });
    return file ? absolute(file) : undefined;
  }

  get backupRecipient(): string | undefined {
    return this.config.get('BACKUP_RECIPIENT', { infer: true });
  }

  get backupIdentityFile(): string | undefined {
    const file = this.config.get('BACKUP_IDENTITY_FILE', { infer: true });
    return file ? absolute(file) : undefined;
  }

  get auditTrustedKeysFile(): string | undefined {
    const file = this.config.get('AUDIT_TRUSTED_KEYS_FILE', { infer: true });
    return file ? absolute(file) : undefined;
  }

  get shutdownTimeoutSeconds(): number {
    return this.config.get('SHUTDOWN_TIMEOUT_SECONDS', { infer: true });
  }

  get auditCheckpointMinutes(): number {
    return this.config.get('AUDIT_CHECKPOINT_MINUTES', { infer: true });
  }

  get auditRetentionDays(): number {
    return this.config.get('AUDIT_RETENTION_DAYS', { infer: true });
  }

  get exportRetentionSeconds(): number {
    return this.config.get('EXPORT_RETENTION_SECONDS', { infer: true });
  }

  /** How long an audit row may wait for a lock before its request fails closed. */
  get auditWriteTimeoutMs(): number {
    return this.config.get('AUDIT_WRITE_TIMEOUT_MS', { infer: true });
  }

  get passwordHashTestFast(): boolean {
    return this.config.get('PASSWORD_HASH_TEST_FAST', { infer: true });
  }

  get auditSkippedForBenchmark(): boolean {
    return this.config.get('AUDIT_BENCHMARK_SKIP', { infer: true });
  }

  get encryptionSkippedForBenchmark(): boolean {
    return this.config.get('PHI_ENCRYPTION_BENCHMARK_SKIP', { infer: true });
  }

  /** TLS of the MLLP listener, and the CAs of client certificates when senders must have one. */
  get hl7Tls(): { certFile: string; keyFile: string; clientCaFile?: string } | undefined {
    const certFile = this.config.get('HL7_TLS_CERT_FILE', { infer: true });
    const keyFile = this.config.get('HL7_TLS_KEY_FILE', { infer: true });
    const clientCaFile = this.config.get('HL7_TLS_CLIENT_CA_FILE', { infer: true });
    return certFile && keyFile
      ? { certFile, keyFile, ...(clientCaFile ? { clientCaFile } : {}) }
      : undefined;
  }

  /** The time zone of HL7 v2 times sent without a UTC offset, when the deployment names one. */
  get hl7TimeZone(): string | undefined {
    return this.config.get('HL7_TIME_ZONE', { infer: true });
  }

  /**
   * The zone of a sending facility's times without an offset: its own (HL7_FACILITY_TIME_ZONES,
   * by MSH-4's namespace or universal id), else HL7_TIME_ZONE.
   */
  hl7TimeZoneOf(facilityIds: readonly string[]): string | undefined {
    this.facilityZones ??= facilityTimeZones(
      this.config.get('HL7_FACILITY_TIME_ZONES', { infer: true }),
    );
    for (const id of facilityIds) {
      const zone = this.facilityZones.get(id.toUpperCase());
      if (zone) return zone;
    }
    return this.hl7TimeZone;
  }

  /** Message types (`ADT^A29`) and message codes (`DFT`) acknowledged and kept unmapped. */
  get hl7Ignored(): ReadonlySet<string> {
    this.ignoredTypes ??= new Set(
      (this.config.get('HL7_IGNORE', { infer: true }) ?? '')
        .split(',')
        .map((type) => type.trim().toUpperCase())
        .filter(Boolean),
    );
    return this.ignoredTypes;
  }

  /**
   * The MSH-11 processing ids taken: a training or debugging message written into production
   * records would be a patient's chart holding a made-up visit.
   */
  get hl7ProcessingIds(): ReadonlySet<string> {
    const listed = this.config.get('HL7_PROCESSING_IDS', { infer: true });
    const ids = listed ?? (this.isProduction ? 'P' : 'P,T,D');
    return new Set(ids.split(',').map((id) => id.trim().toUpperCase()));
  }

  /** Where the MLLP listener binds, or undefined when it is off. */
  get hl7Mllp():
    | {
        port: number;
        host: string;
        maxFrameBytes: number;
        idleSeconds: number;
        frameTimeoutMs: number;
        maxConnections: number;
        bufferBytes: number;
      }
    | undefined {
    const port = this.config.get('HL7_MLLP_PORT', { infer: true });
    return port < 0
      ? undefined
      : {
          port,
          host: this.config.get('HL7_MLLP_HOST', { infer: true }),
          maxFrameBytes: this.config.get('HL7_MAX_FRAME_BYTES', { infer: true }),
          idleSeconds: this.config.get('HL7_IDLE_SECONDS', { infer: true }),
          frameTimeoutMs: this.config.get('HL7_MLLP_FRAME_TIMEOUT_MS', { infer: true }),
          maxConnections: this.config.get('HL7_MLLP_MAX_CONNECTIONS', { infer: true }),
          bufferBytes: this.config.get('HL7_MLLP_BUFFER_BYTES', { infer: true }),
        };
  }

  /** How long processing an inbound HL7 message may hold its row without a statement, in ms. */
  get hl7ProcessingHoldMs(): number {
    return this.config.get('HL7_PROCESSING_HOLD_SECONDS', { infer: true }) * 1000;
  }

  get hl7Outbound(): {
    destinations: Hl7Destination[];
    facility: string;
    processingId: string;
    tls: { caFile?: string; certFile?: string; keyFile?: string; ciphers?: string };
    ackTimeoutMs: number;
    maxAttempts: number;
    retryMs: number;
    pollMs: number;
  } {
    const get = <K extends keyof EnvironmentVariables>(key: K) =>
      this.config.get(key, { infer: true });
    const caFile = get('HL7_OUTBOUND_TLS_CA_FILE');
    const certFile = get('HL7_OUTBOUND_TLS_CERT_FILE');
    const keyFile = get('HL7_OUTBOUND_TLS_KEY_FILE');
    return {
      // validateEnv has refused a list this cannot read.
      destinations: hl7Destinations(
        get('HL7_OUTBOUND'),
        get('HL7_OUTBOUND_SENDERS'),
      ) as Hl7Destination[],
      facility: get('HL7_OUTBOUND_FACILITY'),
      processingId: get('HL7_OUTBOUND_PROCESSING_ID'),
      tls: {
        ...(caFile ? { caFile } : {}),
        ...(certFile && keyFile ? { certFile, keyFile } : {}),
        ciphers: this.tlsCiphers,
      },
      ackTimeoutMs: get('HL7_OUTBOUND_ACK_TIMEOUT_SECONDS') * 1000,
      maxAttempts: get('HL7_OUTBOUND_MAX_ATTEMPTS'),
      retryMs: get('HL7_OUTBOUND_RETRY_MS'),
      pollMs: get('HL7_OUTBOUND_POLL_MS'),
    };
  }

  get subscriptions(): {
    endpoints: string[];
    maxAttempts: number;
    retryMs: number;
    pollMs: number;
  } {
    const get = <K extends keyof EnvironmentVariables>(key: K) =>
      this.config.get(key, { infer: true });
    return {
      endpoints: list(get('SUBSCRIPTION_ENDPOINTS')),
      maxAttempts: get('SUBSCRIPTION_MAX_ATTEMPTS'),
      retryMs: get('SUBSCRIPTION_RETRY_MS'),
      pollMs: get('SUBSCRIPTION_POLL_MS'),
    };
  }
}

/** DATA_DIR as an absolute path, for code that runs before the Nest container exists. */
export function dataDirOf(env: EnvironmentVariables): string {
  return absolute(env.DATA_DIR);
}

/** A comma-separated setting as a list, without blanks. */
export function list(value: string | undefined): string[] {
  return (value ?? '')
    .split(',')
    .map((item) => item.trim())
    .filter((item) => item.length > 0);
}

function absolute(path: string): string {
  return isAbsolute(path) ? path : resolve(process.cwd(), path);
}
