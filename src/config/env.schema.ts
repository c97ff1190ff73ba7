import { plainToInstance, Transform } from 'class-transformer';
import {
  IsBoolean,
  IsIn,
  IsInt,
  IsOptional,
  IsString,
  IsTimeZone,
  isTimeZone,
  Matches,
  Max,
  Min,
  MinLength,
  validateSync,
  ValidateBy,
} from 'class-validator';
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { authenticatedUrl } from '../common/http/loopback.js';
import { isCipherList } from '../common/tls-ciphers.js';
import { HL7_OUTBOUND_LIST, hl7Destinations } from './hl7-destinations.js';

export const NODE_ENVS = ['development', 'production', 'test'] as const;
export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

/** Variables whose values must never be echoed back, even in a validation error. */
const SECRET_VARIABLES = new Set(['DATABASE_URL', 'PHI_MASTER_KEY', 'REDIS_URL']);

/** Variables without a default (absent from a fresh EnvironmentVariables). */
const OPTIONAL_VARIABLES = [
  'DATABASE_URL',
  'PHI_MASTER_KEY',
  'PHI_KEY_FILE',
  'JWT_SIGNING_KEY_FILE',
  'ID_TOKEN_SIGNING_KEY_FILE',
  'JWT_VERIFICATION_KEYS_FILE',
  'OIDC_ISSUER',
  'OIDC_AUDIENCE',
  'OIDC_JWKS_URI',
  'OIDC_ROLE_MAP',
  'CORS_ORIGINS',
  'PUBLIC_URL',
  'TRUSTED_PROXIES',
  'TLS_CERT_FILE',
  'TLS_KEY_FILE',
  'TLS_CIPHERS',
  'HL7_TLS_CERT_FILE',
  'HL7_TLS_KEY_FILE',
  'HL7_TLS_CLIENT_CA_FILE',
  'HL7_TIME_ZONE',
  'HL7_FACILITY_TIME_ZONES',
  'HL7_IGNORE',
  'HL7_PROCESSING_IDS',
  'HL7_OUTBOUND',
  'HL7_OUTBOUND_SENDERS',
  'HL7_OUTBOUND_TLS_CA_FILE',
  'HL7_OUTBOUND_TLS_CERT_FILE',
  'HL7_OUTBOUND_TLS_KEY_FILE',
  'SUBSCRIPTION_ENDPOINTS',
  'REDIS_URL',
  'AUDIT_SIGNING_KEY_FILE',
  'AUDIT_CHECKPOINT_FILE',
  'AUDIT_TRUSTED_KEYS_FILE',
  'BACKUP_RECIPIENT',
  'BACKUP_IDENTITY_FILE',
  'METRICS_TOKEN_FILE',
  'KEY_CUSTODY',
  'KEK_FILE',
  'PKCS11_MODULE',
  'PKCS11_TOKEN_LABEL',
  'PKCS11_PIN_FILE',
];

const toBoolean = ({ value }: { value: unknown }): unknown => {
  if (typeof value !== 'string') {
    return value;
  }
  const normalized = value.trim().toLowerCase();
  if (['true', '1', 'yes'].includes(normalized)) {
    return true;
  }
  if (['false', '0', 'no', ''].includes(normalized)) {
    return false;
  }
  return value;
};

const toInteger = ({ value }: { value: unknown }): unknown =>
  typeof value === 'string' && /^-?\d+$/.test(value.trim()) ? Number(value.trim()) : value;

/**
 * Every environment variable CareVault reads. Defaults live here so that the documented
 * configuration table (README) and the code cannot drift apart.
 */
export class EnvironmentVariables {
  @IsIn(NODE_ENVS, { message: `NODE_ENV must be one of ${NODE_ENVS.join(', ')}` })
  NODE_ENV: (typeof NODE_ENVS)[number] = 'development';

  @Transform(toInteger)
  @IsInt({ message: 'PORT must be an integer between 0 and 65535' })
  @Min(0, { message: 'PORT must be an integer between 0 and 65535' })
  @Max(65535, { message: 'PORT must be an integer between 0 and 65535' })
  PORT = 3000;

  @IsString()
  @MinLength(1, { message: 'HOST must not be empty' })
  HOST = '127.0.0.1';

  @IsOptional()
  @Matches(/^postgres(ql)?:\/\/\S+$/, {
    message: 'DATABASE_URL must be a postgres:// or postgresql:// connection URL',
  })
  DATABASE_URL?: string;

  @IsString()
  @MinLength(1, { message: 'DATA_DIR must not be empty' })
  DATA_DIR = './.data';

  @Transform(toBoolean)
  @IsBoolean({ message: 'MIGRATIONS_RUN must be true or false' })
  MIGRATIONS_RUN = false;

  @Transform(toInteger)
  @IsInt({ message: 'DATABASE_POOL_SIZE must be an integer between 1 and 1000' })
  @Min(1, { message: 'DATABASE_POOL_SIZE must be an integer between 1 and 1000' })
  @Max(1000, { message: 'DATABASE_POOL_SIZE must be an integer between 1 and 1000' })
  DATABASE_POOL_SIZE = 20;

  @Transform(toInteger)
  @IsInt({ message: 'DATABASE_WAIT_MS must be a number of milliseconds between 100 and 600000' })
  @Min(100, { message: 'DATABASE_WAIT_MS must be a number of milliseconds between 100 and 600000' })
  @Max(600_000, {
    message: 'DATABASE_WAIT_MS must be a number of milliseconds between 100 and 600000',
  })
  DATABASE_WAIT_MS = 5000;

  @Transform(toInteger)
  @IsInt({
    message:
      'DATABASE_STATEMENT_TIMEOUT_MS must be a number of milliseconds between 0 (no limit) and 3600000',
  })
  @Min(0, {
    message:
      'DATABASE_STATEMENT_TIMEOUT_MS must be a number of milliseconds between 0 (no limit) and 3600000',
  })
  @Max(3_600_000, {
    message:
      'DATABASE_STATEMENT_TIMEOUT_MS must be a number of milliseconds between 0 (no limit) and 3600000',
  })
  DATABASE_STATEMENT_TIMEOUT_MS = 60_000;

  @Transform(toInteger)
  @IsInt({
    message:
      'SEARCH_TIMEOUT_MS must be a number of milliseconds between 0 (no limit but DATABASE_STATEMENT_TIMEOUT_MS) and 3600000',
  })
  @Min(0, {
    message:
      'SEARCH_TIMEOUT_MS must be a number of milliseconds between 0 (no limit but DATABASE_STATEMENT_TIMEOUT_MS) and 3600000',
  })
  @Max(3_600_000, {
    message:
      'SEARCH_TIMEOUT_MS must be a number of milliseconds between 0 (no limit but DATABASE_STATEMENT_TIMEOUT_MS) and 3600000',
  })
  SEARCH_TIMEOUT_MS = 15_000;

  @IsIn(LOG_LEVELS, { message: `LOG_LEVEL must be one of ${LOG_LEVELS.join(', ')}` })
  LOG_LEVEL: (typeof LOG_LEVELS)[number] = 'info';

  @IsOptional()
  @Matches(/^\s*[A-Za-z0-9+/]{43}=\s*(,\s*[A-Za-z0-9+/]{43}=\s*)*$/, {
    message:
      'PHI_MASTER_KEY must be one or more comma-separated base64 keys of 32 bytes (openssl rand -base64 32)',
  })
  PHI_MASTER_KEY?: string;

  @IsOptional()
  @IsString()
  @MinLength(1, { message: 'PHI_KEY_FILE must not be empty' })
  PHI_KEY_FILE?: string;

  /** Who holds the key-encryption key that wraps the PHI keys in PHI_KEY_FILE. */
  @IsOptional()
  @IsIn(['local', 'pkcs11'], { message: 'KEY_CUSTODY must be local or pkcs11' })
  KEY_CUSTODY?: 'local' | 'pkcs11';

  /** KEY_CUSTODY=local: the KEK, base64 of 32 bytes, on another mount than the data. */
  @IsOptional()
  @IsString()
  @MinLength(1, { message: 'KEK_FILE must not be empty' })
  KEK_FILE?: string;

  /** KEY_CUSTODY=pkcs11: the HSM vendor's PKCS#11 library (.so). */
  @IsOptional()
  @IsString()
  @MinLength(1, { message: 'PKCS11_MODULE must not be empty' })
  PKCS11_MODULE?: string;

  @IsOptional()
  @IsString()
  @MinLength(1, { message: 'PKCS11_TOKEN_LABEL must not be empty' })
  PKCS11_TOKEN_LABEL?: string;

  /** The token user's PIN, in a file. */
  @IsOptional()
  @IsString()
  @MinLength(1, { message: 'PKCS11_PIN_FILE must not be empty' })
  PKCS11_PIN_FILE?: string;

  /** Label of the KEK inside the token. */
  @IsString()
  @MinLength(1, { message: 'PKCS11_KEY_LABEL must not be empty' })
  PKCS11_KEY_LABEL = 'carevault-kek';

  @IsString()
  @MinLength(1, { message: 'JWT_ISSUER must not be empty' })
  JWT_ISSUER = 'carevault';

  @IsString()
  @MinLength(1, { message: 'JWT_AUDIENCE must not be empty' })
  JWT_AUDIENCE = 'carevault-api';

  @IsOptional()
  @IsString()
  @MinLength(1, { message: 'JWT_SIGNING_KEY_FILE must not be empty' })
  JWT_SIGNING_KEY_FILE?: string;

  /** RSA private key (PEM) that signs OpenID Connect id_tokens (RS256, as SMART requires). */
  @IsOptional()
  @IsString()
  @MinLength(1, { message: 'ID_TOKEN_SIGNING_KEY_FILE must not be empty' })
  ID_TOKEN_SIGNING_KEY_FILE?: string;

  /** Public keys (PEM) also accepted and published: retired keys, and a next key. */
  @IsOptional()
  @IsString()
  @MinLength(1, { message: 'JWT_VERIFICATION_KEYS_FILE must not be empty' })
  JWT_VERIFICATION_KEYS_FILE?: string;

  @Transform(toInteger)
  @IsInt({ message: 'ACCESS_TOKEN_TTL must be a number of seconds between 60 and 3600' })
  @Min(60, { message: 'ACCESS_TOKEN_TTL must be a number of seconds between 60 and 3600' })
  @Max(3600, { message: 'ACCESS_TOKEN_TTL must be a number of seconds between 60 and 3600' })
  ACCESS_TOKEN_TTL = 900;

  @Transform(toInteger)
  @IsInt({ message: 'REFRESH_IDLE_TTL must be a number of seconds between 60 and 86400' })
  @Min(60, { message: 'REFRESH_IDLE_TTL must be a number of seconds between 60 and 86400' })
  @Max(86_400, { message: 'REFRESH_IDLE_TTL must be a number of seconds between 60 and 86400' })
  REFRESH_IDLE_TTL = 1800;

  @Transform(toInteger)
  @IsInt({ message: 'REFRESH_ABSOLUTE_TTL must be a number of seconds between 300 and 604800' })
  @Min(300, { message: 'REFRESH_ABSOLUTE_TTL must be a number of seconds between 300 and 604800' })
  @Max(604_800, {
    message: 'REFRESH_ABSOLUTE_TTL must be a number of seconds between 300 and 604800',
  })
  REFRESH_ABSOLUTE_TTL = 43_200;

  @Transform(toInteger)
  @IsInt({ message: 'LOGIN_MAX_ATTEMPTS must be an integer between 1 and 100' })
  @Min(1, { message: 'LOGIN_MAX_ATTEMPTS must be an integer between 1 and 100' })
  @Max(100, { message: 'LOGIN_MAX_ATTEMPTS must be an integer between 1 and 100' })
  LOGIN_MAX_ATTEMPTS = 5;

  @Transform(toInteger)
  @IsInt({ message: 'LOGIN_LOCKOUT_SECONDS must be a number of seconds between 1 and 86400' })
  @Min(1, { message: 'LOGIN_LOCKOUT_SECONDS must be a number of seconds between 1 and 86400' })
  @Max(86_400, { message: 'LOGIN_LOCKOUT_SECONDS must be a number of seconds between 1 and 86400' })
  LOGIN_LOCKOUT_SECONDS = 300;

  /**
   * The origin clients reach the service at (`https://ehr.example.org`): every absolute URL
   * given (Bundle links, Location, SMART discovery) and the token endpoint's audience for
   * client assertions. Unset, the request's Host header gives them, which its sender chooses.
   */
  @IsOptional()
  @Matches(/^https?:\/\/[^/?#\s]+\/?$/, {
    message: 'PUBLIC_URL must be an origin such as https://ehr.example.org (no path)',
  })
  PUBLIC_URL?: string;

  /** An external OpenID Connect issuer (Keycloak...) whose tokens are accepted too. */
  @IsOptional()
  @Matches(/^https?:\/\/\S+$/, { message: 'OIDC_ISSUER must be an http(s) URL' })
  OIDC_ISSUER?: string;

  @IsOptional()
  @IsString()
  @MinLength(1, { message: 'OIDC_AUDIENCE must not be empty' })
  OIDC_AUDIENCE?: string;

  /** Where the issuer's keys are; unset means discovery (`/.well-known/openid-configuration`). */
  @IsOptional()
  @Matches(/^https?:\/\/\S+$/, { message: 'OIDC_JWKS_URI must be an http(s) URL' })
  OIDC_JWKS_URI?: string;

  /** Dotted path of the claim that lists the user's roles at the issuer. */
  @IsString()
  @MinLength(1, { message: 'OIDC_ROLES_CLAIM must not be empty' })
  OIDC_ROLES_CLAIM = 'realm_access.roles';

  /** Issuer role to CareVault role, e.g. `physician=doctor,ward-nurse=nurse`; unmapped roles grant nothing. */
  @IsOptional()
  @Matches(/^\s*[^=,\s]+=[a-z]+\s*(,\s*[^=,\s]+=[a-z]+\s*)*$/, {
    message: 'OIDC_ROLE_MAP must be a comma-separated list of issuer-role=carevault-role pairs',
  })
  OIDC_ROLE_MAP?: string;

  /** Browser origins allowed to call the API (comma-separated); unset means no CORS. */
  @IsOptional()
  @Matches(/^\s*https?:\/\/[^\s,]+\s*(,\s*https?:\/\/[^\s,]+\s*)*$/, {
    message: 'CORS_ORIGINS must be a comma-separated list of http(s) origins',
  })
  CORS_ORIGINS?: string;

  /** Proxy addresses or CIDRs whose X-Forwarded-For is believed (comma-separated); unset means none. */
  @IsOptional()
  @ValidateBy(
    { name: 'proxyList', validator: { validate: isProxyList } },
    {
      message:
        'TRUSTED_PROXIES must be a comma-separated list of IP addresses or CIDRs (or loopback, ' +
        'linklocal, uniquelocal)',
    },
  )
  TRUSTED_PROXIES?: string;

  @IsOptional()
  @IsString()
  @MinLength(1, { message: 'TLS_CERT_FILE must not be empty' })
  TLS_CERT_FILE?: string;

  @IsOptional()
  @IsString()
  @MinLength(1, { message: 'TLS_KEY_FILE must not be empty' })
  TLS_KEY_FILE?: string;

  /** The suites of HTTPS and MLLP, both ways; unset means DEFAULT_TLS_CIPHERS. */
  @IsOptional()
  @ValidateBy(
    { name: 'cipherList', validator: { validate: isCipherList } },
    {
      message:
        'TLS_CIPHERS must be an OpenSSL cipher list that Node accepts, e.g. ' +
        'TLS_AES_128_GCM_SHA256:ECDHE-RSA-AES128-GCM-SHA256',
    },
  )
  TLS_CIPHERS?: string;

  /** Shared rate-limit counters for several instances; unset means in-process counters. */
  @IsOptional()
  @Matches(/^rediss?:\/\/\S+$/, { message: 'REDIS_URL must be a redis:// or rediss:// URL' })
  REDIS_URL?: string;

  @Transform(toInteger)
  @IsInt({ message: 'RATE_LIMIT_PER_MINUTE must be an integer between 1 and 1000000' })
  @Min(1, { message: 'RATE_LIMIT_PER_MINUTE must be an integer between 1 and 1000000' })
  @Max(1_000_000, { message: 'RATE_LIMIT_PER_MINUTE must be an integer between 1 and 1000000' })
  RATE_LIMIT_PER_MINUTE = 6000;

  @Transform(toInteger)
  @IsInt({ message: 'LOGIN_RATE_LIMIT_PER_MINUTE must be an integer between 1 and 10000' })
  @Min(1, { message: 'LOGIN_RATE_LIMIT_PER_MINUTE must be an integer between 1 and 10000' })
  @Max(10_000, { message: 'LOGIN_RATE_LIMIT_PER_MINUTE must be an integer between 1 and 10000' })
  LOGIN_RATE_LIMIT_PER_MINUTE = 10;

  @Transform(toInteger)
  @IsInt({ message: 'BREAK_GLASS_MINUTES must be an integer between 1 and 1440' })
  @Min(1, { message: 'BREAK_GLASS_MINUTES must be an integer between 1 and 1440' })
  @Max(1440, { message: 'BREAK_GLASS_MINUTES must be an integer between 1 and 1440' })
  BREAK_GLASS_MINUTES = 60;

  /**
   * Relative references must name existing resources, and referred-to resources cannot be
   * deleted; off only to load records whose targets come later.
   */
  @Transform(toBoolean)
  @IsBoolean({ message: 'FHIR_REFERENTIAL_INTEGRITY must be true or false' })
  FHIR_REFERENTIAL_INTEGRITY = true;

  /**
   * How many resources one `_cascade=delete` may remove besides its target, in one
   * transaction that holds a row lock on each until it commits.
   */
  @Transform(toInteger)
  @IsInt({ message: 'FHIR_CASCADE_MAX must be an integer between 1 and 100000' })
  @Min(1, { message: 'FHIR_CASCADE_MAX must be an integer between 1 and 100000' })
  @Max(100_000, { message: 'FHIR_CASCADE_MAX must be an integer between 1 and 100000' })
  FHIR_CASCADE_MAX = 5000;

  /**
   * The most search index rows one resource version may have: each costs the event loop a
   * keyed hash or more before the write, so one resource repeating an element tens of thousands
   * of times held every other request for seconds. The largest Synthea resource has 129.
   */
  @Transform(toInteger)
  @IsInt({ message: 'FHIR_INDEX_ROWS_MAX must be an integer between 100 and 1000000' })
  @Min(100, { message: 'FHIR_INDEX_ROWS_MAX must be an integer between 100 and 1000000' })
  @Max(1_000_000, { message: 'FHIR_INDEX_ROWS_MAX must be an integer between 100 and 1000000' })
  FHIR_INDEX_ROWS_MAX = 20_000;

  /** Serve Swagger UI at /docs when NODE_ENV=production (always on elsewhere). */
  @Transform(toBoolean)
  @IsBoolean({ message: 'DOCS_IN_PRODUCTION must be true or false' })
  DOCS_IN_PRODUCTION = false;

  @Transform(toInteger)
  @IsInt({ message: 'BODY_LIMIT must be a number of bytes between 1024 and 104857600' })
  @Min(1024, { message: 'BODY_LIMIT must be a number of bytes between 1024 and 104857600' })
  @Max(104_857_600, { message: 'BODY_LIMIT must be a number of bytes between 1024 and 104857600' })
  BODY_LIMIT = 1_048_576;

  /** Below the grace periods of `docker stop` (10 s) and Kubernetes (30 s), which then kill. */
  @Transform(toInteger)
  @IsInt({ message: 'SHUTDOWN_TIMEOUT_SECONDS must be an integer between 1 and 3600' })
  @Min(1, { message: 'SHUTDOWN_TIMEOUT_SECONDS must be an integer between 1 and 3600' })
  @Max(3600, { message: 'SHUTDOWN_TIMEOUT_SECONDS must be an integer between 1 and 3600' })
  SHUTDOWN_TIMEOUT_SECONDS = 8;

  /** Ed25519 private key (PKCS#8 PEM) that signs audit checkpoints; required in production. */
  @IsOptional()
  @IsString()
  AUDIT_SIGNING_KEY_FILE?: string;

  /** Where signed checkpoints are appended outside the database (JSON lines). */
  @IsOptional()
  @IsString()
  AUDIT_CHECKPOINT_FILE?: string;

  /** Ed25519 public keys (PEM) of other instances or earlier keys whose checkpoints count. */
  @IsOptional()
  @IsString()
  AUDIT_TRUSTED_KEYS_FILE?: string;

  /** Bearer token (in a file) that Prometheus presents at GET /metrics; unset turns it off. */
  @IsOptional()
  @IsString()
  @MinLength(1, { message: 'METRICS_TOKEN_FILE must not be empty' })
  METRICS_TOKEN_FILE?: string;

  /** The age public key (age1...) backups are encrypted to; public, so it may sit beside the data. */
  @IsOptional()
  @Matches(/^age1[02-9ac-hj-np-z]{58}$/, {
    message: 'BACKUP_RECIPIENT must be an age X25519 public key (age1..., see README: backups)',
  })
  BACKUP_RECIPIENT?: string;

  /** The age identity (AGE-SECRET-KEY-1...) that decrypts backups: needed only to restore. */
  @IsOptional()
  @IsString()
  @MinLength(1, { message: 'BACKUP_IDENTITY_FILE must not be empty' })
  BACKUP_IDENTITY_FILE?: string;

  @Transform(toInteger)
  @IsInt({ message: 'AUDIT_CHECKPOINT_MINUTES must be an integer between 1 and 1440' })
  @Min(1, { message: 'AUDIT_CHECKPOINT_MINUTES must be an integer between 1 and 1440' })
  @Max(1440, { message: 'AUDIT_CHECKPOINT_MINUTES must be an integer between 1 and 1440' })
  AUDIT_CHECKPOINT_MINUTES = 5;

  /** HIPAA keeps documentation six years (164.316(b)(2)); rows go only through audit:archive. */
  @Transform(toInteger)
  @IsInt({ message: 'AUDIT_RETENTION_DAYS must be an integer between 1 and 36500' })
  @Min(1, { message: 'AUDIT_RETENTION_DAYS must be an integer between 1 and 36500' })
  @Max(36_500, { message: 'AUDIT_RETENTION_DAYS must be an integer between 1 and 36500' })
  AUDIT_RETENTION_DAYS = 2190;

  /**
   * How long an audit row may wait for a lock (the chain's, or one held on audit_event) before
   * its request fails closed with a 503 rather than waiting for as long as the lock is held.
   */
  @Transform(toInteger)
  @IsInt({
    message: 'AUDIT_WRITE_TIMEOUT_MS must be a number of milliseconds between 100 and 600000',
  })
  @Min(100, {
    message: 'AUDIT_WRITE_TIMEOUT_MS must be a number of milliseconds between 100 and 600000',
  })
  @Max(600_000, {
    message: 'AUDIT_WRITE_TIMEOUT_MS must be a number of milliseconds between 100 and 600000',
  })
  AUDIT_WRITE_TIMEOUT_MS = 5000;

  /** Bulk Data export files (encrypted) are removed this long after the export completes. */
  @Transform(toInteger)
  @IsInt({ message: 'EXPORT_RETENTION_SECONDS must be an integer between 1 and 604800' })
  @Min(1, { message: 'EXPORT_RETENTION_SECONDS must be an integer between 1 and 604800' })
  @Max(604_800, { message: 'EXPORT_RETENTION_SECONDS must be an integer between 1 and 604800' })
  EXPORT_RETENTION_SECONDS = 3600;

  /** The MLLP listener for HL7 v2 feeds; 0 takes any free port (tests), -1 turns it off. */
  @Transform(toInteger)
  @IsInt({ message: 'HL7_MLLP_PORT must be an integer between -1 and 65535' })
  @Min(-1, { message: 'HL7_MLLP_PORT must be an integer between -1 and 65535' })
  @Max(65535, { message: 'HL7_MLLP_PORT must be an integer between -1 and 65535' })
  HL7_MLLP_PORT = 2575;

  @IsString()
  @MinLength(1, { message: 'HL7_MLLP_HOST must not be empty' })
  HL7_MLLP_HOST = '127.0.0.1';

  @Transform(toInteger)
  @IsInt({ message: 'HL7_MAX_FRAME_BYTES must be a number of bytes between 1024 and 268435456' })
  @Min(1024, {
    message: 'HL7_MAX_FRAME_BYTES must be a number of bytes between 1024 and 268435456',
  })
  @Max(268_435_456, {
    message: 'HL7_MAX_FRAME_BYTES must be a number of bytes between 1024 and 268435456',
  })
  HL7_MAX_FRAME_BYTES = 16_777_216;

  /** TLS on the MLLP listener (TLS 1.2 minimum): PEM certificate and key. */
  @IsOptional()
  @IsString()
  @MinLength(1, { message: 'HL7_TLS_CERT_FILE must not be empty' })
  HL7_TLS_CERT_FILE?: string;

  @IsOptional()
  @IsString()
  @MinLength(1, { message: 'HL7_TLS_KEY_FILE must not be empty' })
  HL7_TLS_KEY_FILE?: string;

  /** With it, senders must present a certificate issued by these CAs (mutual TLS). */
  @IsOptional()
  @IsString()
  @MinLength(1, { message: 'HL7_TLS_CLIENT_CA_FILE must not be empty' })
  HL7_TLS_CLIENT_CA_FILE?: string;

  /**
   * The IANA time zone (America/Chicago) of the times HL7 v2 senders give without a UTC offset,
   * as most feeds do. Unset, such a time cannot be placed and only its date is kept.
   */
  @IsOptional()
  @IsTimeZone({ message: 'HL7_TIME_ZONE must be an IANA time zone, such as America/Chicago' })
  HL7_TIME_ZONE?: string;

  /**
   * Sending facilities whose feeds are in another zone than HL7_TIME_ZONE's, each as its MSH-4
   * namespace or universal id and its IANA zone:
   * `EAST=America/New_York,2.16.840.1.5=America/Denver`.
   */
  @IsOptional()
  @Matches(/^\s*[^=,\s]+\s*=\s*[^=,\s]+\s*(,\s*[^=,\s]+\s*=\s*[^=,\s]+\s*)*$/, {
    message:
      'HL7_FACILITY_TIME_ZONES must be a comma-separated list of facility=zone pairs, such as EAST=America/New_York',
  })
  HL7_FACILITY_TIME_ZONES?: string;

  /**
   * Message types to acknowledge (AA) and keep without mapping them (`ADT^A29,BAR^P02`, or
   * `DFT` for all of its events): those a feed sends that this deployment does not want, where an
   * AR would stop the sender's queue.
   */
  @IsOptional()
  @Matches(/^\s*[A-Za-z0-9]{3}(\^[A-Za-z0-9]{3})?(\s*,\s*[A-Za-z0-9]{3}(\^[A-Za-z0-9]{3})?)*\s*$/, {
    message:
      'HL7_IGNORE must list message types separated by commas, such as ADT^A29,BAR^P02 or DFT',
  })
  HL7_IGNORE?: string;

  /**
   * The processing ids (MSH-11: P production, T training, D debugging) whose messages are
   * taken; others are refused (AR, ERR 202). Unset: P alone in production, all elsewhere.
   */
  @IsOptional()
  @Matches(/^\s*[PTDptd](\s*,\s*[PTDptd])*\s*$/, {
    message: 'HL7_PROCESSING_IDS must list processing ids (P, T, D) separated by commas, such as P',
  })
  HL7_PROCESSING_IDS?: string;

  /** An MLLP connection silent this long is closed. */
  @Transform(toInteger)
  @IsInt({ message: 'HL7_IDLE_SECONDS must be a number of seconds between 1 and 86400' })
  @Min(1, { message: 'HL7_IDLE_SECONDS must be a number of seconds between 1 and 86400' })
  @Max(86_400, { message: 'HL7_IDLE_SECONDS must be a number of seconds between 1 and 86400' })
  HL7_IDLE_SECONDS = 300;

  /**
   * How long processing an inbound HL7 message may hold the message's row without a statement
   * (Hl7MessageRepository.lockOutcome): an instance frozen meanwhile has its session ended by
   * PostgreSQL, and the resend another instance received is answered. A resend waiting for the
   * row spends DATABASE_STATEMENT_TIMEOUT_MS meanwhile: keep this below it, and far over any
   * pause between the statements of a healthy instance (a live one stalled as long is cut off
   * too, and its message processed again from the resend).
   */
  @Transform(toInteger)
  @IsInt({ message: 'HL7_PROCESSING_HOLD_SECONDS must be a number of seconds between 1 and 3600' })
  @Min(1, { message: 'HL7_PROCESSING_HOLD_SECONDS must be a number of seconds between 1 and 3600' })
  @Max(3_600, {
    message: 'HL7_PROCESSING_HOLD_SECONDS must be a number of seconds between 1 and 3600',
  })
  HL7_PROCESSING_HOLD_SECONDS = 30;

  /**
   * A started MLLP frame must end within this many milliseconds, else its connection is
   * closed: the idle timeout alone lets a peer that trickles a byte now and then hold a
   * half-sent frame, and its buffer, forever.
   */
  @Transform(toInteger)
  @IsInt({
    message: 'HL7_MLLP_FRAME_TIMEOUT_MS must be a number of milliseconds between 100 and 3600000',
  })
  @Min(100, {
    message: 'HL7_MLLP_FRAME_TIMEOUT_MS must be a number of milliseconds between 100 and 3600000',
  })
  @Max(3_600_000, {
    message: 'HL7_MLLP_FRAME_TIMEOUT_MS must be a number of milliseconds between 100 and 3600000',
  })
  HL7_MLLP_FRAME_TIMEOUT_MS = 60_000;

  /**
   * MLLP connections held at once; past it a new one is closed as it opens. Enough for every
   * feed of a hospital; a bound on sockets and file descriptors an unauthenticated peer holds.
   */
  @Transform(toInteger)
  @IsInt({ message: 'HL7_MLLP_MAX_CONNECTIONS must be a number between 1 and 100000' })
  @Min(1, { message: 'HL7_MLLP_MAX_CONNECTIONS must be a number between 1 and 100000' })
  @Max(100_000, { message: 'HL7_MLLP_MAX_CONNECTIONS must be a number between 1 and 100000' })
  HL7_MLLP_MAX_CONNECTIONS = 2_000;

  /**
   * Bytes the MLLP listener holds, all connections together, for frames not yet ended or not
   * yet processed. Each connection is bounded by HL7_MAX_FRAME_BYTES, but a hundred peers each
   * holding most of a 16 MiB frame held 1.7 GB; the connection that would pass this is closed.
   */
  @Transform(toInteger)
  @IsInt({
    message: 'HL7_MLLP_BUFFER_BYTES must be a number of bytes between 1024 and 17179869184',
  })
  @Min(1024, {
    message: 'HL7_MLLP_BUFFER_BYTES must be a number of bytes between 1024 and 17179869184',
  })
  @Max(17_179_869_184, {
    message: 'HL7_MLLP_BUFFER_BYTES must be a number of bytes between 1024 and 17179869184',
  })
  HL7_MLLP_BUFFER_BYTES = 268_435_456;

  /**
   * Where Patient changes made through the FHIR API go as ADT^A04/A08/A29: a comma-separated list
   * of host:port, each with an optional tls:// prefix and an optional /application/facility for
   * MSH-5 and MSH-6 (see hl7-destinations.ts).
   */
  @IsOptional()
  @Matches(HL7_OUTBOUND_LIST, {
    message:
      'HL7_OUTBOUND must be a comma-separated list of host:port, each optionally tls://host:port, and optionally followed by /receiving-application/receiving-facility',
  })
  HL7_OUTBOUND?: string;

  /**
   * Which inbound senders each destination is (`host:port=MSH-3[/MSH-4]`, comma-separated, one
   * destination as often as it has senders): a change an HL7 feed made goes to the destinations
   * named here that did not send it, and to no other (validated with HL7_OUTBOUND).
   */
  @IsOptional()
  @IsString()
  HL7_OUTBOUND_SENDERS?: string;

  /** CAs trusted for tls:// destinations (else Node's bundled ones); a client certificate and key for mutual TLS. */
  @IsOptional()
  @IsString()
  @MinLength(1, { message: 'HL7_OUTBOUND_TLS_CA_FILE must not be empty' })
  HL7_OUTBOUND_TLS_CA_FILE?: string;

  @IsOptional()
  @IsString()
  @MinLength(1, { message: 'HL7_OUTBOUND_TLS_CERT_FILE must not be empty' })
  HL7_OUTBOUND_TLS_CERT_FILE?: string;

  @IsOptional()
  @IsString()
  @MinLength(1, { message: 'HL7_OUTBOUND_TLS_KEY_FILE must not be empty' })
  HL7_OUTBOUND_TLS_KEY_FILE?: string;

  /**
   * MSH-4 of outbound messages: this CareVault's name to the systems it sends to, an HD
   * (`CAREVAULT`, or `CAREVAULT^2.16.840.1.113883.19.99^ISO` with a universal id).
   */
  @IsString()
  @MinLength(1, { message: 'HL7_OUTBOUND_FACILITY must not be empty' })
  HL7_OUTBOUND_FACILITY = 'CAREVAULT';

  /**
   * MSH-11 of outbound messages: P (production), T (training) or D (debugging). A staging or
   * training instance says T or D, so that a receiver filtering on it keeps its test patients
   * out of production charts (until 2026-12-07 every instance said P).
   */
  @Matches(/^[PTD]$/, {
    message: 'HL7_OUTBOUND_PROCESSING_ID must be P (production), T (training) or D (debugging)',
  })
  HL7_OUTBOUND_PROCESSING_ID = 'P';

  /** How long a sent message waits for its ACK before the attempt counts as failed. */
  @Transform(toInteger)
  @IsInt({
    message: 'HL7_OUTBOUND_ACK_TIMEOUT_SECONDS must be a number of seconds between 1 and 600',
  })
  @Min(1, {
    message: 'HL7_OUTBOUND_ACK_TIMEOUT_SECONDS must be a number of seconds between 1 and 600',
  })
  @Max(600, {
    message: 'HL7_OUTBOUND_ACK_TIMEOUT_SECONDS must be a number of seconds between 1 and 600',
  })
  HL7_OUTBOUND_ACK_TIMEOUT_SECONDS = 30;

  /** Failed attempts after which a message is set aside as dead. */
  @Transform(toInteger)
  @IsInt({ message: 'HL7_OUTBOUND_MAX_ATTEMPTS must be an integer between 1 and 1000' })
  @Min(1, { message: 'HL7_OUTBOUND_MAX_ATTEMPTS must be an integer between 1 and 1000' })
  @Max(1000, { message: 'HL7_OUTBOUND_MAX_ATTEMPTS must be an integer between 1 and 1000' })
  HL7_OUTBOUND_MAX_ATTEMPTS = 10;

  /** The first retry's delay; each next one doubles, up to five minutes. */
  @Transform(toInteger)
  @IsInt({
    message: 'HL7_OUTBOUND_RETRY_MS must be a number of milliseconds between 10 and 300000',
  })
  @Min(10, {
    message: 'HL7_OUTBOUND_RETRY_MS must be a number of milliseconds between 10 and 300000',
  })
  @Max(300_000, {
    message: 'HL7_OUTBOUND_RETRY_MS must be a number of milliseconds between 10 and 300000',
  })
  HL7_OUTBOUND_RETRY_MS = 1000;

  /** How often an idle sender looks for new outbox rows. */
  @Transform(toInteger)
  @IsInt({ message: 'HL7_OUTBOUND_POLL_MS must be a number of milliseconds between 10 and 60000' })
  @Min(10, {
    message: 'HL7_OUTBOUND_POLL_MS must be a number of milliseconds between 10 and 60000',
  })
  @Max(60_000, {
    message: 'HL7_OUTBOUND_POLL_MS must be a number of milliseconds between 10 and 60000',
  })
  HL7_OUTBOUND_POLL_MS = 500;

  /**
   * Where FHIR Subscription notifications may go: a comma-separated list of URL prefixes
   * (`https://hooks.example.org/fhir/`). Unset, Subscriptions are refused: the server would
   * otherwise call any address a user names (server-side request forgery).
   */
  @IsOptional()
  @Matches(/^\s*https?:\/\/[^\s,]+(\s*,\s*https?:\/\/[^\s,]+)*\s*$/, {
    message: 'SUBSCRIPTION_ENDPOINTS must be a comma-separated list of http(s):// URL prefixes',
  })
  SUBSCRIPTION_ENDPOINTS?: string;

  /** Failed deliveries of a notification before the Subscription is set to error. */
  @Transform(toInteger)
  @IsInt({ message: 'SUBSCRIPTION_MAX_ATTEMPTS must be an integer between 1 and 1000' })
  @Min(1, { message: 'SUBSCRIPTION_MAX_ATTEMPTS must be an integer between 1 and 1000' })
  @Max(1000, { message: 'SUBSCRIPTION_MAX_ATTEMPTS must be an integer between 1 and 1000' })
  SUBSCRIPTION_MAX_ATTEMPTS = 10;

  /** The first retry's delay; each next one doubles, up to five minutes. */
  @Transform(toInteger)
  @IsInt({
    message: 'SUBSCRIPTION_RETRY_MS must be a number of milliseconds between 10 and 300000',
  })
  @Min(10, {
    message: 'SUBSCRIPTION_RETRY_MS must be a number of milliseconds between 10 and 300000',
  })
  @Max(300_000, {
    message: 'SUBSCRIPTION_RETRY_MS must be a number of milliseconds between 10 and 300000',
  })
  SUBSCRIPTION_RETRY_MS = 5000;

  /** How often the notifier looks for due notifications, and re-reads the Subscriptions. */
  @Transform(toInteger)
  @IsInt({ message: 'SUBSCRIPTION_POLL_MS must be a number of milliseconds between 10 and 60000' })
  @Min(10, {
    message: 'SUBSCRIPTION_POLL_MS must be a number of milliseconds between 10 and 60000',
  })
  @Max(60_000, {
    message: 'SUBSCRIPTION_POLL_MS must be a number of milliseconds between 10 and 60000',
  })
  SUBSCRIPTION_POLL_MS = 1000;

  /**
   * Test suites only: hash new passwords at 1 MiB and 1 pass instead of 64 MiB and 3, about a
   * millisecond instead of 0.1-0.4 s, because a suite signs in hundreds of accounts. Refused when
   * NODE_ENV=production; compliance:report fails while it is set and counts the accounts it hashed.
   */
  @Transform(toBoolean)
  @IsBoolean({ message: 'PASSWORD_HASH_TEST_FAST must be true or false' })
  PASSWORD_HASH_TEST_FAST = false;

  /** Benchmark only: skip audit writes to measure their cost. Refused when NODE_ENV=production. */
  @Transform(toBoolean)
  @IsBoolean({ message: 'AUDIT_BENCHMARK_SKIP must be true or false' })
  AUDIT_BENCHMARK_SKIP = false;

  /**
   * Benchmark only: store PHI columns unencrypted (in an envelope marked as such, which a
   * service without this switch refuses to read) to measure encryption's cost. Refused when
   * NODE_ENV=production.
   */
  @Transform(toBoolean)
  @IsBoolean({ message: 'PHI_ENCRYPTION_BENCHMARK_SKIP must be true or false' })
  PHI_ENCRYPTION_BENCHMARK_SKIP = false;
}

/**
 * Every variable validateEnv reads: the settings, and the `_FILE` forms of the secrets. The
 * README's configuration table and `.env.example` list exactly these (env-documentation.spec.ts).
 */
export function knownVariables(): string[] {
  return [
    ...Object.keys(new EnvironmentVariables()),
    ...OPTIONAL_VARIABLES,
    ...[...SECRET_VARIABLES].map((name) => `${name}_FILE`),
  ];
}

export class ConfigError extends Error {
  override readonly name = 'ConfigError';
}

/** HL7_FACILITY_TIME_ZONES as facility (upper case, as matched) to zone. */
export function facilityTimeZones(list: string | undefined): Map<string, string> {
  return new Map(
    (list ?? '')
      .split(',')
      .filter((pair) => pair.includes('='))
      .map((pair) => {
        const [facility = '', zone = ''] = pair.split('=').map((part) => part.trim());
        return [facility.toUpperCase(), zone];
      }),
  );
}

/**
 * Validates raw environment values. Throws a ConfigError whose message is one line naming the
 * first offending variable, without echoing secret values. `requireKeys: false` is for tools
 * that never touch PHI, such as the migration CLI.
 */
export function validateEnv(
  raw: Record<string, unknown>,
  options: { requireKeys: boolean } = { requireKeys: true },
): EnvironmentVariables {
  raw = withSecretFiles(raw);
  // Unset and empty-string variables both mean "use the default".
  const present = Object.fromEntries(
    Object.keys(new EnvironmentVariables())
      .concat(OPTIONAL_VARIABLES)
      .filter((key) => raw[key] !== undefined && raw[key] !== '')
      .map((key) => [key, raw[key]]),
  );
  const env = plainToInstance(EnvironmentVariables, present);
  const errors = validateSync(env, { skipMissingProperties: false });
  const first = errors[0];
  if (first) {
    const message = Object.values(first.constraints ?? {})[0] ?? `${first.property} is invalid`;
    const shown = SECRET_VARIABLES.has(first.property) ? '' : ` (got "${String(first.value)}")`;
    throw new ConfigError(`Invalid configuration: ${message}${shown}`);
  }
  if (env.REFRESH_IDLE_TTL < env.ACCESS_TOKEN_TTL) {
    // Automatic logoff (164.312(a)(2)(iii)) ends a session idle this long; an access token
    // outliving it keeps the idle session open until the token expires.
    throw new ConfigError(
      `Invalid configuration: REFRESH_IDLE_TTL (${env.REFRESH_IDLE_TTL}) must be at least ACCESS_TOKEN_TTL (${env.ACCESS_TOKEN_TTL}), or an idle session's access token would outlive its logoff`,
    );
  }
  if (env.HL7_MLLP_BUFFER_BYTES < env.HL7_MAX_FRAME_BYTES) {
    throw new ConfigError(
      `Invalid configuration: HL7_MLLP_BUFFER_BYTES (${env.HL7_MLLP_BUFFER_BYTES}) must be at least HL7_MAX_FRAME_BYTES (${env.HL7_MAX_FRAME_BYTES}), or no frame of the largest size could be taken`,
    );
  }
  const destinations = hl7Destinations(env.HL7_OUTBOUND, env.HL7_OUTBOUND_SENDERS);
  if (typeof destinations === 'string') {
    const prefix = destinations.startsWith('HL7_OUTBOUND_SENDERS') ? '' : 'HL7_OUTBOUND: ';
    throw new ConfigError(`Invalid configuration: ${prefix}${destinations}`);
  }
  for (const [facility, zone] of facilityTimeZones(env.HL7_FACILITY_TIME_ZONES)) {
    if (!isTimeZone(zone)) {
      throw new ConfigError(
        `Invalid configuration: HL7_FACILITY_TIME_ZONES gives ${facility} "${zone}", which is not an IANA time zone, such as America/New_York`,
      );
    }
  }
  // Without a configured key the service would generate one, which only makes sense for a
  // developer's embedded database: elsewhere a lost generated key means lost records.
  if (options.requireKeys && !env.PHI_MASTER_KEY && !env.PHI_KEY_FILE) {
    if (env.NODE_ENV === 'production') {
      throw new ConfigError(
        'Invalid configuration: PHI_MASTER_KEY or PHI_KEY_FILE must be set when NODE_ENV=production',
      );
    }
    if (env.DATABASE_URL) {
      throw new ConfigError(
        'Invalid configuration: PHI_MASTER_KEY or PHI_KEY_FILE must be set when DATABASE_URL is set',
      );
    }
  }
  // Tokens signed with a generated key would stop verifying on the next host: production
  // configures its key (a tool without PHI access, such as the migration CLI, needs none).
  if (options.requireKeys && env.NODE_ENV === 'production' && !env.JWT_SIGNING_KEY_FILE) {
    throw new ConfigError(
      'Invalid configuration: JWT_SIGNING_KEY_FILE must be set when NODE_ENV=production',
    );
  }
  if (options.requireKeys && env.NODE_ENV === 'production' && !env.ID_TOKEN_SIGNING_KEY_FILE) {
    throw new ConfigError(
      'Invalid configuration: ID_TOKEN_SIGNING_KEY_FILE must be set when NODE_ENV=production',
    );
  }
  if (options.requireKeys && env.NODE_ENV === 'production' && !env.AUDIT_SIGNING_KEY_FILE) {
    throw new ConfigError(
      'Invalid configuration: AUDIT_SIGNING_KEY_FILE must be set when NODE_ENV=production',
    );
  }
  const notForProduction = [
    ['AUDIT_BENCHMARK_SKIP', 'benchmarks'],
    ['PHI_ENCRYPTION_BENCHMARK_SKIP', 'benchmarks'],
    ['PASSWORD_HASH_TEST_FAST', 'test suites'],
  ] as const;
  for (const [name, purpose] of notForProduction) {
    if (env.NODE_ENV === 'production' && env[name]) {
      throw new ConfigError(
        `Invalid configuration: ${name} is for ${purpose} and is refused when NODE_ENV=production`,
      );
    }
  }
  if (
    env.KEY_CUSTODY === 'pkcs11' &&
    !(env.PKCS11_MODULE && env.PKCS11_TOKEN_LABEL && env.PKCS11_PIN_FILE)
  ) {
    throw new ConfigError(
      'Invalid configuration: KEY_CUSTODY=pkcs11 needs PKCS11_MODULE, PKCS11_TOKEN_LABEL and PKCS11_PIN_FILE',
    );
  }
  if (env.KEY_CUSTODY === 'local' && !env.KEK_FILE) {
    throw new ConfigError('Invalid configuration: KEY_CUSTODY=local needs KEK_FILE');
  }
  if (env.KEY_CUSTODY && !env.PHI_KEY_FILE) {
    throw new ConfigError(
      'Invalid configuration: KEY_CUSTODY needs PHI_KEY_FILE, the file of wrapped PHI keys (npm run cli -- keys:init)',
    );
  }
  if (Boolean(env.OIDC_ISSUER) !== Boolean(env.OIDC_AUDIENCE)) {
    throw new ConfigError(
      'Invalid configuration: OIDC_ISSUER and OIDC_AUDIENCE must be set together',
    );
  }
  // The provider's keys decide who a token is: fetched in the clear, whoever is on the path
  // can serve theirs and sign any role. Plain http only to this machine.
  for (const variable of ['OIDC_ISSUER', 'OIDC_JWKS_URI'] as const) {
    const url = env[variable];
    if (url && !authenticatedUrl(url)) {
      throw new ConfigError(
        `Invalid configuration: ${variable} must be an https URL (http only on a loopback host), as the provider's keys are fetched from it`,
      );
    }
  }
  if (Boolean(env.TLS_CERT_FILE) !== Boolean(env.TLS_KEY_FILE)) {
    throw new ConfigError(
      'Invalid configuration: TLS_CERT_FILE and TLS_KEY_FILE must be set together',
    );
  }
  if (Boolean(env.HL7_TLS_CERT_FILE) !== Boolean(env.HL7_TLS_KEY_FILE)) {
    throw new ConfigError(
      'Invalid configuration: HL7_TLS_CERT_FILE and HL7_TLS_KEY_FILE must be set together',
    );
  }
  if (env.HL7_TLS_CLIENT_CA_FILE && !env.HL7_TLS_CERT_FILE) {
    throw new ConfigError(
      'Invalid configuration: HL7_TLS_CLIENT_CA_FILE needs HL7_TLS_CERT_FILE and HL7_TLS_KEY_FILE',
    );
  }
  return env;
}

/**
 * Secrets may come from files, the way container secrets are mounted: `DATABASE_URL_FILE`,
 * `PHI_MASTER_KEY_FILE` and `REDIS_URL_FILE` name a file whose content (trailing newline
 * dropped) is the value. A value in the environment shows in `docker inspect` and in every
 * child process; a file does not.
 */
function withSecretFiles(raw: Record<string, unknown>): Record<string, unknown> {
  const resolved = { ...raw };
  for (const name of SECRET_VARIABLES) {
    const file = raw[`${name}_FILE`];
    if (typeof file !== 'string' || file === '') {
      continue;
    }
    if (raw[name] !== undefined && raw[name] !== '') {
      throw new ConfigError(`Invalid configuration: set ${name} or ${name}_FILE, not both`);
    }
    try {
      resolved[name] = readFileSync(file, 'utf8').trim();
    } catch (error) {
      // The errno code, as common/files.ts gives it (which imports this file, hence not shared).
      const reason = (error as NodeJS.ErrnoException).code ?? 'unreadable';
      throw new ConfigError(
        `Invalid configuration: ${name}_FILE ${file} cannot be read (${reason})`,
      );
    }
  }
  return resolved;
}

/**
 * What Fastify's trustProxy (proxy-addr) accepts; anything else made it throw a TypeError with a
 * stack at start, naming no variable.
 */
function isProxyList(value: unknown): boolean {
  const names = new Set(['loopback', 'linklocal', 'uniquelocal']);
  const entries = typeof value === 'string' ? value.split(',').map((entry) => entry.trim()) : [];
  return (
    entries.length > 0 &&
    entries.every((entry) => {
      if (names.has(entry)) return true;
      const [address = '', prefix, ...rest] = entry.split('/');
      const version = isIP(address);
      if (version === 0 || rest.length > 0) return false;
      if (prefix === undefined) return true;
      const bits = /^\d{1,3}$/.test(prefix) ? Number(prefix) : -1;
      return bits >= 0 && bits <= (version === 4 ? 32 : 128);
    })
  );
}
