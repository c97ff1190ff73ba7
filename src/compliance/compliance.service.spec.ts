import { afterAll, afterEach, beforeAll, jest } from '@jest/globals';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { selfSignedCertificate } from '../../test/support/certificates.js';
import type { AuditVerifier, ChainSource, VerifyReport } from '../audit/audit-verifier.js';
import { DEFAULT_TLS_CIPHERS } from '../common/tls-ciphers.js';
import type { AppConfig } from '../config/config.js';
import type {
  ComplianceRepository,
  DatabaseTransport,
  UserFacts,
} from './compliance.repository.js';
import { ComplianceService } from './compliance.service.js';

type Repository = jest.Mocked<
  Pick<
    ComplianceRepository,
    'users' | 'samplePhi' | 'breakGlassGrants' | 'lastBackup' | 'databaseTransport'
  >
>;
type Verifier = jest.Mocked<Pick<AuditVerifier, 'databaseSource' | 'verify'>>;

/** A configuration whose transport settings pass: behind a TLS proxy, MLLP off. */
function configWith(overrides: Partial<Record<keyof AppConfig, unknown>> = {}): AppConfig {
  return {
    nodeEnv: 'production',
    databaseUrl: 'postgres://carevault@db.example.org:5432/carevault',
    breakGlassMinutes: 60,
    refreshIdleTtl: 900,
    refreshAbsoluteTtl: 28_800,
    encryptionSkippedForBenchmark: false,
    passwordHashTestFast: false,
    tlsCiphers: DEFAULT_TLS_CIPHERS,
    auditSkippedForBenchmark: false,
    auditCheckpointMinutes: 15,
    keyCustody: undefined,
    phiMasterKeys: [],
    dataDir: '/nonexistent',
    loginMaxAttempts: 5,
    accessTokenTtl: 300,
    tls: undefined,
    trustedProxies: ['10.0.0.1'],
    host: '127.0.0.1',
    port: 3000,
    hl7Mllp: undefined,
    hl7Tls: undefined,
    hl7Outbound: { destinations: [] },
    subscriptions: { endpoints: [] },
    ...overrides,
  } as unknown as AppConfig;
}

/** PostgreSQL on loopback: the transport that passes without TLS. */
const LOOPBACK: DatabaseTransport = {
  host: '127.0.0.1',
  tlsVersion: undefined,
  verifiesServer: false,
};

/** One check of the report, with these facts (the others pass). */
async function checkWith(
  id: string,
  database: DatabaseTransport,
  config: AppConfig = configWith(),
  users: Partial<UserFacts> = {},
): Promise<{ status: string; evidence: string }> {
  const repository: Repository = {
    users: jest.fn<ComplianceRepository['users']>().mockResolvedValue({
      active: 1,
      distinctNames: 1,
      adminsWithoutMfa: [],
      activeAdmins: 1,
      hashAlgorithms: { argon2id: 1 },
      hashesBelowDefault: 0,
      ...users,
    }),
    samplePhi: jest.fn<ComplianceRepository['samplePhi']>().mockResolvedValue([]),
    breakGlassGrants: jest.fn<ComplianceRepository['breakGlassGrants']>().mockResolvedValue(0),
    lastBackup: jest.fn<ComplianceRepository['lastBackup']>().mockResolvedValue(undefined),
    databaseTransport: jest
      .fn<ComplianceRepository['databaseTransport']>()
      .mockResolvedValue(database),
  };
  const verifier: Verifier = {
    databaseSource: jest
      .fn<AuditVerifier['databaseSource']>()
      .mockResolvedValue({ head: { seq: 0 }, checkpoints: [] } as unknown as ChainSource),
    verify: jest
      .fn<AuditVerifier['verify']>()
      .mockResolvedValue({ ok: true, rows: 0, checkpoints: 0 } as VerifyReport),
  };
  const service = new ComplianceService(
    config,
    repository as unknown as ComplianceRepository,
    verifier as unknown as AuditVerifier,
  );
  const report = await service.report();
  return report.checks.find((check) => check.id === id)!;
}

const transmissionWith = (database: DatabaseTransport, config?: AppConfig) =>
  checkWith('transmission-security', database, config);

describe('ComplianceService transmission security', () => {
  it('fails a plain-text connection to PostgreSQL on another host', async () => {
    const check = await transmissionWith({
      host: 'db.example.org',
      tlsVersion: undefined,
      verifiesServer: true,
    });
    expect(check.status).toBe('fail');
    expect(check.evidence).toMatch(/PostgreSQL on db\.example\.org is not TLS/);
  });

  it('fails TLS to PostgreSQL that does not verify the server (sslmode=no-verify)', async () => {
    const check = await transmissionWith({
      host: 'db.example.org',
      tlsVersion: 'TLSv1.3',
      verifiesServer: false,
    });
    expect(check.status).toBe('fail');
    expect(check.evidence).toMatch(/TLSv1\.3 without verifying the server's certificate/);
  });

  it('passes verified TLS to another host, and loopback or a Unix socket without TLS', async () => {
    const verified = await transmissionWith({
      host: 'db.example.org',
      tlsVersion: 'TLSv1.3',
      verifiesServer: true,
    });
    expect(verified).toMatchObject({ status: 'pass' });
    expect(verified.evidence).toMatch(/PostgreSQL on db\.example\.org over TLSv1\.3, server/);
    for (const host of ['127.0.0.1', '::1', 'localhost', '/var/run/postgresql']) {
      const local = await transmissionWith({ host, tlsVersion: undefined, verifiesServer: false });
      expect(local).toMatchObject({ status: 'pass' });
    }
  });
});

describe('ComplianceService TLS suites', () => {
  it('names the suites, and warns of a TLS_CIPHERS beyond NIST SP 800-52r2', async () => {
    expect(await transmissionWith(LOOPBACK)).toMatchObject({
      status: 'pass',
      evidence: expect.stringContaining('TLS suites: NIST SP 800-52r2'),
    });
    const narrower = configWith({
      tlsCiphers: 'TLS_AES_256_GCM_SHA384:ECDHE-RSA-AES256-GCM-SHA384',
    });
    expect(await transmissionWith(LOOPBACK, narrower)).toMatchObject({
      status: 'pass',
      evidence: expect.stringContaining("of NIST SP 800-52r2's"),
    });
    const noTls13 = configWith({ tlsCiphers: 'ECDHE-RSA-AES256-GCM-SHA384' });
    expect(await transmissionWith(LOOPBACK, noTls13)).toMatchObject({
      status: 'warn',
      evidence: expect.stringMatching(/^TLS_CIPHERS names no TLS 1\.3 suite/),
    });
    const wider = configWith({ tlsCiphers: 'DEFAULT:TLS_AES_128_GCM_SHA256' });
    expect(await transmissionWith(LOOPBACK, wider)).toMatchObject({
      status: 'warn',
      evidence: expect.stringMatching(
        /^TLS_CIPHERS names suites beyond NIST SP 800-52r2's: DEFAULT/,
      ),
    });
  });
});

describe('ComplianceService password storage', () => {
  it('fails while PASSWORD_HASH_TEST_FAST is set, and while accounts keep hashes it made', async () => {
    expect(await checkWith('password-policy', LOOPBACK)).toMatchObject({ status: 'pass' });
    expect(
      await checkWith('password-policy', LOOPBACK, configWith({ passwordHashTestFast: true })),
    ).toMatchObject({
      status: 'fail',
      evidence: expect.stringMatching(/^PASSWORD_HASH_TEST_FAST is set/),
    });
    expect(
      await checkWith('password-policy', LOOPBACK, configWith(), { hashesBelowDefault: 2 }),
    ).toMatchObject({
      status: 'fail',
      evidence: expect.stringMatching(/^2 active accounts' passwords are hashed below 64 MiB/),
    });
  });
});

describe('ComplianceService certificate expiry', () => {
  const DAY = 86_400_000;
  let dir: string;
  let soon: { cert: string; key: string };
  let later: { cert: string; key: string };
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'carevault-compliance-spec-'));
    soon = selfSignedCertificate(dir, 'soon', 'ehr.example.org', 10);
    later = selfSignedCertificate(dir, 'later', 'mllp.example.org', 90);
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  afterEach(() => {
    jest.restoreAllMocks();
  });

  const withCertificates = (https: string, mllp: string): AppConfig =>
    configWith({
      tls: { certFile: https, keyFile: soon.key },
      hl7Mllp: { host: '0.0.0.0', port: 2575 },
      hl7Tls: { certFile: mllp, keyFile: later.key },
    });

  it('warns of an HTTPS certificate expiring within 30 days, with its subject and date', async () => {
    const check = await transmissionWith(LOOPBACK, withCertificates(soon.cert, later.cert));
    expect(check.status).toBe('warn');
    expect(check.evidence).toMatch(
      /the HTTPS certificate \(TLS_CERT_FILE, CN=ehr\.example\.org\) expires on \d{4}-\d\d-\d\dT.*, in 10 days/,
    );
  });

  it('fails an expired MLLP certificate, and passes certificates valid beyond 30 days', async () => {
    jest.spyOn(Date, 'now').mockReturnValue(Date.now() + 91 * DAY);
    const expired = await transmissionWith(LOOPBACK, withCertificates(later.cert, soon.cert));
    expect(expired.status).toBe('fail');
    expect(expired.evidence).toMatch(
      /the MLLP certificate \(HL7_TLS_CERT_FILE, CN=ehr\.example\.org\) expired on \d{4}-/,
    );
    expect(expired.evidence).toMatch(/the HTTPS certificate .*expired on/);
    jest.restoreAllMocks();
    const valid = await transmissionWith(LOOPBACK, withCertificates(later.cert, later.cert));
    expect(valid.status).toBe('pass');
    expect(valid.evidence).toMatch(/HTTPS with TLS 1\.2\+, certificate valid until/);
    expect(valid.evidence).toMatch(/MLLP with TLS 1\.2\+, certificate valid until/);
  });
});
