import { jest } from '@jest/globals';
import type { AuditVerifier, ChainSource, VerifyReport } from '../audit/audit-verifier.js';
import type { AppConfig } from '../config/config.js';
import type { ComplianceRepository, DatabaseTransport } from './compliance.repository.js';
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

async function transmissionWith(
  database: DatabaseTransport,
  config: AppConfig = configWith(),
): Promise<{ status: string; evidence: string }> {
  const repository: Repository = {
    users: jest.fn<ComplianceRepository['users']>().mockResolvedValue({
      active: 1,
      distinctNames: 1,
      adminsWithoutMfa: [],
      activeAdmins: 1,
      hashAlgorithms: { argon2id: 1 },
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
  return report.checks.find((check) => check.id === 'transmission-security')!;
}

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
