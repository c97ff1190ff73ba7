import { randomBytes } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigError, facilityTimeZones, validateEnv } from './env.schema.js';

describe('validateEnv', () => {
  it('applies the documented defaults', () => {
    const env = validateEnv({});
    expect(env).toMatchObject({
      NODE_ENV: 'development',
      PORT: 3000,
      HOST: '127.0.0.1',
      DATA_DIR: './.data',
      MIGRATIONS_RUN: false,
      LOG_LEVEL: 'info',
      BODY_LIMIT: 1_048_576,
    });
    expect(env.DATABASE_URL).toBeUndefined();
  });

  it('converts numbers and booleans', () => {
    expect(validateEnv({ PORT: '8080', MIGRATIONS_RUN: 'true', BODY_LIMIT: '2048' })).toMatchObject(
      {
        PORT: 8080,
        MIGRATIONS_RUN: true,
        BODY_LIMIT: 2048,
      },
    );
  });

  it.each([
    [{ PORT: 'eighty' }, 'PORT'],
    [{ PORT: '70000' }, 'PORT'],
    [{ NODE_ENV: 'staging' }, 'NODE_ENV'],
    [{ LOG_LEVEL: 'loud' }, 'LOG_LEVEL'],
    [{ MIGRATIONS_RUN: 'maybe' }, 'MIGRATIONS_RUN'],
    [{ BODY_LIMIT: '10' }, 'BODY_LIMIT'],
    [{ DATABASE_URL: 'mysql://x', PHI_KEY_FILE: 'k' }, 'DATABASE_URL'],
    [{ PHI_MASTER_KEY: 'c2hvcnQ=' }, 'PHI_MASTER_KEY'],
    [{ OIDC_ISSUER: 'http://kc.example.org/realms/h', OIDC_AUDIENCE: 'cv' }, 'OIDC_ISSUER'],
    [
      {
        OIDC_ISSUER: 'https://kc.example.org/h',
        OIDC_AUDIENCE: 'cv',
        OIDC_JWKS_URI: 'http://kc/k',
      },
      'OIDC_JWKS_URI',
    ],
  ])('rejects %j with one line naming %s', (raw, variable) => {
    let error: unknown;
    try {
      validateEnv(raw);
    } catch (caught) {
      error = caught;
    }
    expect(error).toBeInstanceOf(ConfigError);
    const message = (error as Error).message;
    expect(message).toMatch(new RegExp(`^Invalid configuration: ${variable} `));
    expect(message).not.toContain('\n');
  });

  it('requires a configured PHI key in production and with an external database', () => {
    expect(() => validateEnv({ NODE_ENV: 'production' })).toThrow(
      'Invalid configuration: PHI_MASTER_KEY or PHI_KEY_FILE must be set when NODE_ENV=production',
    );
    expect(() => validateEnv({ DATABASE_URL: 'postgres://db/x' })).toThrow(
      /must be set when DATABASE_URL is set$/,
    );
    expect(
      validateEnv({ DATABASE_URL: 'postgres://db/x', PHI_KEY_FILE: '/keys.json' }).PHI_KEY_FILE,
    ).toBe('/keys.json');
  });

  it('requires an id_token signing key in production', () => {
    expect(() =>
      validateEnv({
        NODE_ENV: 'production',
        PHI_MASTER_KEY: Buffer.alloc(32, 7).toString('base64'),
        JWT_SIGNING_KEY_FILE: '/jwt.pem',
        AUDIT_SIGNING_KEY_FILE: '/audit.pem',
      }),
    ).toThrow(
      'Invalid configuration: ID_TOKEN_SIGNING_KEY_FILE must be set when NODE_ENV=production',
    );
  });

  it('requires an audit signing key in production and refuses the benchmark switch there', () => {
    const production = {
      NODE_ENV: 'production',
      PHI_MASTER_KEY: Buffer.alloc(32, 7).toString('base64'),
      JWT_SIGNING_KEY_FILE: '/jwt.pem',
      ID_TOKEN_SIGNING_KEY_FILE: '/id-token.pem',
    };
    expect(() => validateEnv(production)).toThrow(
      'Invalid configuration: AUDIT_SIGNING_KEY_FILE must be set when NODE_ENV=production',
    );
    const complete = { ...production, AUDIT_SIGNING_KEY_FILE: '/audit.pem' };
    expect(validateEnv(complete).AUDIT_RETENTION_DAYS).toBe(2190);
    expect(() => validateEnv({ ...complete, AUDIT_BENCHMARK_SKIP: 'true' })).toThrow(
      /AUDIT_BENCHMARK_SKIP is for benchmarks and is refused when NODE_ENV=production/,
    );
    expect(validateEnv({ AUDIT_BENCHMARK_SKIP: 'true' }).AUDIT_BENCHMARK_SKIP).toBe(true);
    expect(() => validateEnv({ ...complete, PHI_ENCRYPTION_BENCHMARK_SKIP: 'true' })).toThrow(
      /PHI_ENCRYPTION_BENCHMARK_SKIP is for benchmarks and is refused when NODE_ENV=production/,
    );
    expect(() => validateEnv({ ...complete, PASSWORD_HASH_TEST_FAST: 'true' })).toThrow(
      /PASSWORD_HASH_TEST_FAST is for test suites and is refused when NODE_ENV=production/,
    );
    expect(validateEnv({ PASSWORD_HASH_TEST_FAST: 'true' }).PASSWORD_HASH_TEST_FAST).toBe(true);
  });

  it('never echoes secret values', () => {
    expect(() => validateEnv({ PHI_MASTER_KEY: 'c2VjcmV0' })).toThrow(/^((?!c2VjcmV0).)*$/);
    expect(() => validateEnv({ DATABASE_URL: 'mysql://user:hunter2@db' })).toThrow(
      /^((?!hunter2).)*$/,
    );
  });

  it('reads secrets from _FILE variables, refuses both forms at once, and names an unreadable file', () => {
    const dir = mkdtempSync(join(tmpdir(), 'carevault-env-'));
    const key = randomBytes(32).toString('base64');
    writeFileSync(join(dir, 'key'), `${key}\n`);
    writeFileSync(join(dir, 'url'), 'postgres://carevault:pw@db:5432/carevault\n');
    const env = validateEnv({
      PHI_MASTER_KEY_FILE: join(dir, 'key'),
      DATABASE_URL_FILE: join(dir, 'url'),
    });
    expect(env.PHI_MASTER_KEY).toBe(key);
    expect(env.DATABASE_URL).toBe('postgres://carevault:pw@db:5432/carevault');
    expect(() =>
      validateEnv({ PHI_MASTER_KEY: key, PHI_MASTER_KEY_FILE: join(dir, 'key') }),
    ).toThrow('set PHI_MASTER_KEY or PHI_MASTER_KEY_FILE, not both');
    // The reason, as for every other file a variable names: ENOENT and EACCES call for
    // different fixes.
    expect(() => validateEnv({ REDIS_URL_FILE: join(dir, 'missing') })).toThrow(
      `REDIS_URL_FILE ${join(dir, 'missing')} cannot be read (ENOENT)`,
    );
  });

  it('takes an IANA zone for HL7 times without an offset, and names a wrong one', () => {
    expect(validateEnv({ HL7_TIME_ZONE: 'America/Chicago' }).HL7_TIME_ZONE).toBe('America/Chicago');
    expect(validateEnv({}).HL7_TIME_ZONE).toBeUndefined();
    expect(() => validateEnv({ HL7_TIME_ZONE: 'Central' })).toThrow(
      'HL7_TIME_ZONE must be an IANA time zone, such as America/Chicago',
    );
  });

  it('takes the zones of facilities whose feeds are elsewhere, and names a wrong one', () => {
    const env = validateEnv({
      HL7_FACILITY_TIME_ZONES: 'east=America/New_York, 2.16.9 = Asia/Kolkata',
    });
    expect(facilityTimeZones(env.HL7_FACILITY_TIME_ZONES)).toEqual(
      new Map([
        ['EAST', 'America/New_York'],
        ['2.16.9', 'Asia/Kolkata'],
      ]),
    );
    expect(() => validateEnv({ HL7_FACILITY_TIME_ZONES: 'America/New_York' })).toThrow(
      'HL7_FACILITY_TIME_ZONES must be a comma-separated list of facility=zone pairs',
    );
    expect(() => validateEnv({ HL7_FACILITY_TIME_ZONES: 'EAST=Eastern' })).toThrow(
      'HL7_FACILITY_TIME_ZONES gives EAST "Eastern", which is not an IANA time zone',
    );
  });

  it('takes a list of HL7 message types to acknowledge unmapped, and names a wrong one', () => {
    expect(validateEnv({ HL7_IGNORE: 'ADT^A29, bar^p02,DFT' }).HL7_IGNORE).toBe(
      'ADT^A29, bar^p02,DFT',
    );
    for (const wrong of ['ADT-A29', 'ADT^A29,', 'ADT^A29^ADT_A21', 'AD']) {
      expect(() => validateEnv({ HL7_IGNORE: wrong })).toThrow(
        'HL7_IGNORE must list message types separated by commas',
      );
    }
  });

  it('refuses an idle logoff shorter than an access token lives', () => {
    expect(() => validateEnv({ REFRESH_IDLE_TTL: '60', ACCESS_TOKEN_TTL: '900' })).toThrow(
      'REFRESH_IDLE_TTL (60) must be at least ACCESS_TOKEN_TTL (900)',
    );
    expect(validateEnv({ REFRESH_IDLE_TTL: '300', ACCESS_TOKEN_TTL: '300' }).REFRESH_IDLE_TTL).toBe(
      300,
    );
  });

  it('takes a list of HL7 processing ids, and names a wrong one', () => {
    expect(validateEnv({ HL7_PROCESSING_IDS: 'P, t' }).HL7_PROCESSING_IDS).toBe('P, t');
    for (const wrong of ['X', 'P,', 'PT', 'P;T']) {
      expect(() => validateEnv({ HL7_PROCESSING_IDS: wrong })).toThrow(
        'HL7_PROCESSING_IDS must list processing ids (P, T, D) separated by commas',
      );
    }
  });

  it('takes an outbound processing id, P unless set, and names a wrong one', () => {
    expect(validateEnv({}).HL7_OUTBOUND_PROCESSING_ID).toBe('P');
    expect(validateEnv({ HL7_OUTBOUND_PROCESSING_ID: 'T' }).HL7_OUTBOUND_PROCESSING_ID).toBe('T');
    for (const wrong of ['X', 'p', 'P,T', 'PT']) {
      expect(() => validateEnv({ HL7_OUTBOUND_PROCESSING_ID: wrong })).toThrow(
        'HL7_OUTBOUND_PROCESSING_ID must be P (production), T (training) or D (debugging)',
      );
    }
  });

  it('takes HL7_MLLP_PORT=-1 as documented: the listener off', () => {
    expect(validateEnv({ HL7_MLLP_PORT: '-1' }).HL7_MLLP_PORT).toBe(-1);
    expect(() => validateEnv({ HL7_MLLP_PORT: '-2' })).toThrow('between -1 and 65535');
    expect(() => validateEnv({ PORT: '-1' })).toThrow('between 0 and 65535');
  });

  it('gives an MLLP frame a minute to arrive unless HL7_MLLP_FRAME_TIMEOUT_MS says otherwise', () => {
    expect(validateEnv({}).HL7_MLLP_FRAME_TIMEOUT_MS).toBe(60_000);
    expect(validateEnv({ HL7_MLLP_FRAME_TIMEOUT_MS: '5000' }).HL7_MLLP_FRAME_TIMEOUT_MS).toBe(5000);
    for (const wrong of ['0', '99', '3600001', 'soon']) {
      expect(() => validateEnv({ HL7_MLLP_FRAME_TIMEOUT_MS: wrong })).toThrow(
        'HL7_MLLP_FRAME_TIMEOUT_MS must be a number of milliseconds between 100 and 3600000',
      );
    }
  });

  it('gives a search 15 s of statements unless SEARCH_TIMEOUT_MS says otherwise', () => {
    expect(validateEnv({}).SEARCH_TIMEOUT_MS).toBe(15_000);
    expect(validateEnv({ SEARCH_TIMEOUT_MS: '0' }).SEARCH_TIMEOUT_MS).toBe(0);
    for (const wrong of ['-1', '3600001', '1.5', 'soon']) {
      expect(() => validateEnv({ SEARCH_TIMEOUT_MS: wrong })).toThrow(
        'SEARCH_TIMEOUT_MS must be a number of milliseconds between 0 (no limit but DATABASE_STATEMENT_TIMEOUT_MS) and 3600000',
      );
    }
  });

  it('bounds the MLLP listener to 2,000 connections and 256 MiB of frames, never below the frame limit', () => {
    expect(validateEnv({}).HL7_MLLP_MAX_CONNECTIONS).toBe(2000);
    expect(validateEnv({}).HL7_MLLP_BUFFER_BYTES).toBe(268_435_456);
    expect(() => validateEnv({ HL7_MLLP_MAX_CONNECTIONS: '0' })).toThrow(
      'HL7_MLLP_MAX_CONNECTIONS must be a number between 1 and 100000',
    );
    expect(() =>
      validateEnv({ HL7_MAX_FRAME_BYTES: '2048', HL7_MLLP_BUFFER_BYTES: '1024' }),
    ).toThrow('HL7_MLLP_BUFFER_BYTES (1024) must be at least HL7_MAX_FRAME_BYTES (2048)');
  });
});
