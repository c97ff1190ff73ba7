import { Injectable } from '@nestjs/common';
import { existsSync } from 'node:fs';
import { dirname, join, resolve, sep } from 'node:path';
import { AuditVerifier } from '../audit/audit-verifier.js';
import { MIN_PASSWORD_LENGTH } from '../auth/password.js';
import { openToOthers } from '../common/files.js';
import { SOFTWARE_VERSION } from '../common/software.js';
import { AppConfig } from '../config/config.js';
import { GENERATED_KEY_FILE, holdsPlaintextKeys } from '../crypto/key-store.js';
import { describeDatabase } from '../database/database-options.js';
import {
  fail,
  pass,
  type ComplianceCheck,
  type ComplianceReport,
  type Outcome,
} from './compliance-report.js';
import { transmissionSecurity } from './transmission-security.js';
import { ComplianceRepository, type PhiSample, type UserFacts } from './compliance.repository.js';

/** Rows sampled per PHI column to prove encryption at rest. */
const SAMPLE_ROWS = 200;
/** A nightly backup, with slack for a slow night. */
const BACKUP_MAX_AGE_HOURS = 26;

/**
 * Checks each technical safeguard of 45 CFR 164.312 (and the backups of 164.308(a)(7)) against
 * the configuration this process runs with and the database it reaches: live facts, not a
 * questionnaire. Run it with the service's own configuration.
 */
@Injectable()
export class ComplianceService {
  constructor(
    private readonly config: AppConfig,
    private readonly repository: ComplianceRepository,
    private readonly verifier: AuditVerifier,
  ) {}

  async report(): Promise<ComplianceReport> {
    const users = await this.repository.users();
    const samples = await this.repository.samplePhi(SAMPLE_ROWS);
    const checks: ComplianceCheck[] = [
      {
        id: 'unique-user-identification',
        safeguard: '164.312(a)(2)(i)',
        title: 'Unique user identification',
        control: 'src/auth/users.service.ts (one account per person; usernames unique)',
        ...(users.active === 0
          ? fail('No active user accounts')
          : users.distinctNames < 0
            ? fail('Two accounts share a username (case-insensitively)')
            : pass(`${users.active} active accounts, every username distinct`)),
      },
      {
        id: 'emergency-access',
        safeguard: '164.312(a)(2)(ii)',
        title: 'Emergency access procedure (break-glass)',
        control: 'src/access/break-glass.service.ts',
        ...this.emergencyAccess(await this.repository.breakGlassGrants(30)),
      },
      {
        id: 'automatic-logoff',
        safeguard: '164.312(a)(2)(iii)',
        title: 'Automatic logoff',
        control: 'src/auth/refresh-tokens.ts (idle and absolute session limits)',
        ...this.automaticLogoff(),
      },
      {
        id: 'encryption-at-rest',
        safeguard: '164.312(a)(2)(iv)',
        title: 'Encryption of ePHI at rest (sampled rows)',
        control: 'src/crypto/phi.subscriber.ts, src/crypto/field-cipher.ts (AES-256-GCM)',
        ...this.encryptionAtRest(samples),
      },
      {
        id: 'key-custody',
        safeguard: '164.312(a)(2)(iv)',
        title: 'PHI master keys kept apart from the data',
        control: 'src/crypto/custody/ (KEY_CUSTODY: PKCS#11 HSM or local KEK)',
        ...this.keyCustody(),
      },
      {
        id: 'key-separation',
        safeguard: '164.312(a)(2)(iv)',
        title: 'One key per purpose, none generated beside the data',
        control:
          'JWT_SIGNING_KEY_FILE, ID_TOKEN_SIGNING_KEY_FILE, AUDIT_SIGNING_KEY_FILE, BACKUP_RECIPIENT, PHI_KEY_FILE',
        ...this.keySeparation(),
      },
      ...(await this.auditControls()),
      {
        id: 'integrity',
        safeguard: '164.312(c)(2)',
        title: 'Mechanism to authenticate ePHI',
        control:
          'src/crypto/field-cipher.ts (GCM tag over each value, bound to its row and version)',
        ...this.integrity(samples),
      },
      {
        id: 'mfa-for-admins',
        safeguard: '164.312(d)',
        title: 'Multi-factor authentication for administrators',
        control: 'src/auth/auth.service.ts (TOTP); admin routes require a recent MFA step-up',
        ...(users.adminsWithoutMfa.length > 0
          ? fail(
              `${users.adminsWithoutMfa.length} of ${users.activeAdmins} active admins without MFA: ${users.adminsWithoutMfa.join(', ')}`,
            )
          : users.activeAdmins === 0
            ? fail('No active administrator account')
            : pass(`All ${users.activeAdmins} active admins have MFA enabled`)),
      },
      {
        id: 'password-policy',
        safeguard: '164.312(d)',
        title: 'Password policy and storage',
        control: 'src/auth/password.ts (argon2id), LOGIN_MAX_ATTEMPTS lockout',
        ...this.passwordPolicy(users),
      },
      {
        id: 'token-lifetimes',
        safeguard: '164.312(d)',
        title: 'Token lifetimes',
        control: 'src/auth/token.service.ts (ES256 access tokens), ACCESS_TOKEN_TTL',
        ...this.tokenLifetimes(),
      },
      {
        id: 'transmission-security',
        safeguard: '164.312(e)(1)',
        title: 'Transmission security (TLS 1.2 minimum)',
        control:
          'src/common/http/https-options.ts, src/hl7/mllp/ (minVersion TLSv1.2), DATABASE_URL sslmode',
        ...transmissionSecurity(this.config, await this.repository.databaseTransport(), Date.now()),
      },
      {
        id: 'backups',
        safeguard: '164.308(a)(7)(ii)(A)',
        title: 'Data backup plan: a recent encrypted backup',
        control: 'src/backup/ (npm run cli -- backup)',
        ...(await this.backups()),
      },
    ];
    const count = (status: ComplianceCheck['status']): number =>
      checks.filter((check) => check.status === status).length;
    return {
      generatedAt: new Date().toISOString(),
      software: SOFTWARE_VERSION,
      environment: this.config.nodeEnv,
      database: this.config.databaseUrl ? describeDatabase(this.config.databaseUrl) : 'embedded',
      summary: { pass: count('pass'), warn: count('warn'), fail: count('fail') },
      checks,
    };
  }

  private emergencyAccess(grants: number): Outcome {
    const minutes = this.config.breakGlassMinutes;
    return minutes <= 240
      ? pass(
          `Break-glass grants last ${minutes} min, each with a reason and audited; ${grants} in the last 30 days`,
        )
      : fail(`Break-glass grants last ${minutes} min: more than 4 hours`);
  }

  private automaticLogoff(): Outcome {
    const idle = this.config.refreshIdleTtl;
    const absolute = this.config.refreshAbsoluteTtl;
    const text = `sessions end after ${idle} s idle and ${absolute} s in all`;
    return idle <= 1800 && absolute <= 43_200
      ? pass(text)
      : fail(`${text}: more than 30 min idle or 12 h in all`);
  }

  private encryptionAtRest(samples: PhiSample[]): Outcome {
    if (this.config.encryptionSkippedForBenchmark) {
      return fail('PHI_ENCRYPTION_BENCHMARK_SKIP is set: new PHI is stored unencrypted');
    }
    const sampled = samples.reduce((sum, sample) => sum + sample.sampled, 0);
    const plain = counted(samples, 'notEnvelopes');
    // Shaped as envelopes (the CHECK constraints let them in), but the body is the plaintext.
    const benchmark = counted(samples, 'unencrypted');
    const columns = samples.map((sample) => `${sample.table}.${sample.column}`).join(', ');
    const problems = [
      ...(plain ? [`Values that are not encrypted in ${plain}`] : []),
      ...(benchmark
        ? [
            `Values stored unencrypted by the benchmark switch PHI_ENCRYPTION_BENCHMARK_SKIP in ${benchmark}`,
          ]
        : []),
    ];
    if (problems.length > 0) {
      return fail(problems.join('; '));
    }
    return sampled === 0
      ? pass(`No PHI stored yet; every PHI column (${columns}) only accepts encrypted values`)
      : pass(`${sampled} sampled values of ${columns}: every one an AES-256-GCM envelope`);
  }

  /**
   * Fails on values that do not authenticate, and on those the benchmark switch wrote, which
   * have no tag to authenticate them: counted apart, for they are a benchmark's data in this
   * database (the switch is refused in production), not a sign that someone altered a record.
   */
  private integrity(samples: PhiSample[]): Outcome {
    const broken = counted(samples, 'undecryptable');
    const benchmark = counted(samples, 'unencrypted');
    const sampled = samples.reduce((sum, sample) => sum + sample.sampled, 0);
    const problems = [
      ...(broken ? [`Values whose authentication tag does not verify in ${broken}`] : []),
      ...(benchmark
        ? [
            `Values written unencrypted by the benchmark switch PHI_ENCRYPTION_BENCHMARK_SKIP (refused in production), which carry no authentication tag, in ${benchmark}`,
          ]
        : []),
    ];
    return problems.length > 0
      ? fail(problems.join('; '))
      : pass(`${sampled} sampled values decrypted and authenticated under their row's AAD`);
  }

  private keyCustody(): Outcome {
    const custody = this.config.keyCustody;
    const keyFile = this.config.phiKeyFile ?? '';
    // The signing keys are no PHI keys, but whoever may read one signs as the deployment:
    // access tokens for any user, id_tokens, audit checkpoints that vouch for a rewritten chain.
    const signing = Object.entries({
      JWT_SIGNING_KEY_FILE: this.config.jwtSigningKeyFile,
      ID_TOKEN_SIGNING_KEY_FILE: this.config.idTokenSigningKeyFile,
      AUDIT_SIGNING_KEY_FILE: this.config.auditSigningKeyFile,
    }).flatMap(([name, file]) => {
      const mode = file ? openToOthers(file) : undefined;
      return mode
        ? [`${name} ${file} is open to group or others (mode ${mode}): chmod 600 it`]
        : [];
    });
    if (!custody) {
      return fail(
        [
          'PHI master keys are held in plaintext (PHI_MASTER_KEY or an unwrapped key file): set KEY_CUSTODY',
          ...signing,
        ].join('; '),
      );
    }
    const problems: string[] = [...signing];
    // keys:wrap --from leaves its source in place, for the operator to delete (README, "Key
    // custody"): while it stays, a copy of the data directory holds every PHI key in plaintext.
    const generated = join(this.config.dataDir, GENERATED_KEY_FILE);
    if (resolve(generated) !== resolve(keyFile) && holdsPlaintextKeys(generated)) {
      problems.push(
        `A plaintext PHI key file (version 1) is still at ${generated}: delete it once its keys are wrapped in ${keyFile} (keys:wrap --from)`,
      );
    }
    if (custody.provider === 'local') {
      const kek = custody.kekFile ?? '';
      if (within(kek, this.config.dataDir) || dirname(kek) === dirname(keyFile)) {
        problems.push(`The KEK file ${kek} sits beside the data or the key file`);
      }
      const mode = openToOthers(kek);
      if (mode) {
        problems.push(
          `The KEK file ${kek} is open to group or others (mode ${mode}): chmod 600 it`,
        );
      }
    }
    if (problems.length > 0) {
      return fail(problems.join('; '));
    }
    return custody.provider === 'pkcs11'
      ? pass(
          `PHI keys in ${keyFile} are wrapped by the HSM key ${custody.pkcs11?.keyLabel} (token ${custody.pkcs11?.tokenLabel}), which never leaves the HSM`,
        )
      : pass(
          `PHI keys in ${keyFile} are wrapped by the KEK in ${custody.kekFile}, kept on another path and private to its owner`,
        );
  }

  private keySeparation(): Outcome {
    const problems: string[] = [];
    const files = {
      JWT_SIGNING_KEY_FILE: this.config.jwtSigningKeyFile,
      ID_TOKEN_SIGNING_KEY_FILE: this.config.idTokenSigningKeyFile,
      AUDIT_SIGNING_KEY_FILE: this.config.auditSigningKeyFile,
    };
    for (const [name, file] of Object.entries(files)) {
      if (!file) problems.push(`${name} unset (a key generated under DATA_DIR)`);
    }
    if (this.config.phiMasterKeys.length === 0 && !this.config.phiKeyFile) {
      problems.push('PHI key generated under DATA_DIR');
    }
    if (!this.config.backupRecipient) {
      problems.push('BACKUP_RECIPIENT unset (backups use a development identity under DATA_DIR)');
    }
    const paths = [...Object.values(files), this.config.phiKeyFile].filter(Boolean);
    if (new Set(paths).size !== paths.length) {
      problems.push('two purposes share one key file');
    }
    return problems.length > 0
      ? fail(problems.join('; '))
      : pass(
          'Separate keys for PHI encryption, token signing (ES256), id_token signing (RS256), audit signing (Ed25519) and backups (age X25519)',
        );
  }

  private async auditControls(): Promise<ComplianceCheck[]> {
    const control = 'src/audit/ (hash chain, signed checkpoints, audit:verify)';
    const source = await this.verifier.databaseSource();
    const head = source.head!;
    const latest = source.checkpoints.at(-1);
    const report = await this.verifier.verify(source);
    const interval = this.config.auditCheckpointMinutes;
    const age = latest ? (Date.now() - latest.createdAt.getTime()) / 60_000 : Infinity;
    const chain: Outcome = this.config.auditSkippedForBenchmark
      ? fail('AUDIT_BENCHMARK_SKIP is set: requests are not audited')
      : report.ok
        ? pass(
            `Audit chain verified: ${report.rows} rows, ${report.checkpoints} signed checkpoints`,
          )
        : fail(`Audit chain broken: ${report.problem}`);
    const checkpoint: Outcome = !latest
      ? fail('No signed checkpoint: a rewritten chain could not be told from this one')
      : latest.chainSeq === head.seq || age <= 2 * interval
        ? pass(
            `Last signed checkpoint at row ${latest.chainSeq} of ${head.seq}, ${Math.round(age)} min ago (every ${interval} min while writes happen)`,
          )
        : fail(
            `Last signed checkpoint at row ${latest.chainSeq} of ${head.seq}, ${Math.round(age)} min ago: more than twice AUDIT_CHECKPOINT_MINUTES`,
          );
    return [
      {
        id: 'audit-chain',
        safeguard: '164.312(b)',
        title: 'Audit controls: tamper-evident trail',
        control,
        ...chain,
      },
      {
        id: 'audit-checkpoint',
        safeguard: '164.312(b)',
        title: 'Audit controls: recent signed checkpoint',
        control: 'src/audit/audit-checkpoint.scheduler.ts, AUDIT_CHECKPOINT_FILE',
        ...checkpoint,
      },
    ];
  }

  private passwordPolicy(users: UserFacts): Outcome {
    const weak = Object.entries(users.hashAlgorithms).filter(([name]) => name !== 'argon2id');
    const attempts = this.config.loginMaxAttempts;
    if (weak.length > 0) {
      return fail(
        `Passwords not hashed with argon2id: ${weak.map(([a, n]) => `${n} ${a || 'unknown'}`).join(', ')}`,
      );
    }
    if (this.config.passwordHashTestFast) {
      return fail('PASSWORD_HASH_TEST_FAST is set: new passwords are hashed at 1 MiB, 1 pass');
    }
    if (users.hashesBelowDefault > 0) {
      return fail(
        `${users.hashesBelowDefault} active accounts' passwords are hashed below 64 MiB and 3 passes (PASSWORD_HASH_TEST_FAST or older settings): give them new ones (user:set-password)`,
      );
    }
    return attempts <= 10
      ? pass(
          `At least ${MIN_PASSWORD_LENGTH} characters, not repetitive, not the username; argon2id (64 MiB, 3 passes), account locks after ${attempts} failures`,
        )
      : fail(`Accounts lock only after ${attempts} failed passwords: more than 10`);
  }

  private tokenLifetimes(): Outcome {
    const access = this.config.accessTokenTtl;
    const text = `Access tokens live ${access} s; refresh tokens rotate on use and end with the session (${this.config.refreshAbsoluteTtl} s)`;
    return access <= 900 ? pass(text) : fail(`${text}: access tokens over 15 min`);
  }

  private async backups(): Promise<Outcome> {
    const last = await this.repository.lastBackup();
    if (!last) {
      return fail('No backup has been made (npm run cli -- backup <file>)');
    }
    const hours = (Date.now() - last.recordedAt.getTime()) / 3_600_000;
    const file = /file=(\S+)/.exec(last.detail)?.[1];
    if (hours > BACKUP_MAX_AGE_HOURS) {
      return fail(
        `The last backup is ${Math.round(hours)} h old (${last.recordedAt.toISOString()})`,
      );
    }
    if (!file || !existsSync(file) || !existsSync(`${file}.manifest.json`)) {
      return fail(
        `The last backup (${last.recordedAt.toISOString()}) is not at ${file ?? 'its recorded path'} any more`,
      );
    }
    return pass(
      `Last backup ${last.recordedAt.toISOString()} (${hours.toFixed(1)} h ago) at ${file}, with its manifest`,
    );
  }
}

/** The columns with values of that kind, with how many: `resource.content (2), …`; or ''. */
function counted(
  samples: PhiSample[],
  kind: 'notEnvelopes' | 'unencrypted' | 'undecryptable',
): string {
  return samples
    .filter((sample) => sample[kind] > 0)
    .map((sample) => `${sample.table}.${sample.column} (${sample[kind]})`)
    .join(', ');
}

function within(path: string, directory: string): boolean {
  return resolve(path).startsWith(resolve(directory) + sep);
}
