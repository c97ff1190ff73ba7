import { Injectable, Logger, OnModuleDestroy, OnModuleInit } from '@nestjs/common';
import {
  createHash,
  createPublicKey,
  generateKeyPairSync,
  sign,
  verify,
  type KeyObject,
} from 'node:crypto';
import { join } from 'node:path';
import { readPublicKeys } from '../common/key-files.js';
import { readPrivateKey, type PrivateKeyFile } from '../common/private-key-file.js';
import { AppConfig } from '../config/config.js';

/**
 * What a checkpoint or archive boundary asserts: row `seq` of the chain has hash `hash`. A
 * backup's: the backup taken at that chain head has the content digest `hash`.
 */
export interface SignedStatement {
  kind: 'checkpoint' | 'archive' | 'backup';
  chainId: string;
  seq: number;
  hash: string;
  at: Date;
}

/**
 * What an export file's seal asserts: the rows after `afterSeq` (which has hash `startHash`)
 * through `lastSeq` (hash `lastHash`) of the chain are the rows asked for by `range`. Signing the
 * start and the range too means rows cut off the front, or a header edited to match, no longer
 * verify (a checkpoint seals only the end).
 */
export interface ExportStatement {
  kind: 'export';
  chainId: string;
  afterSeq: number;
  startHash: string;
  lastSeq: number;
  lastHash: string;
  /** The range or filters asked for, canonical (see exportRangeText). */
  range: string;
  at: Date;
}

export function statementBytes(statement: SignedStatement | ExportStatement): Buffer {
  if (statement.kind === 'export') {
    return Buffer.from(
      `cv-audit-export-1|${statement.chainId}|${statement.afterSeq}|${statement.startHash}|${statement.lastSeq}|${statement.lastHash}|${statement.range}|${statement.at.toISOString()}`,
    );
  }
  return Buffer.from(
    `cv-audit-${statement.kind}-1|${statement.chainId}|${statement.seq}|${statement.hash}|${statement.at.toISOString()}`,
  );
}

function isEd25519(key: KeyObject): boolean {
  return key.asymmetricKeyType === 'ed25519';
}

/** How often instances re-read the key files, so a rotation reaches them without a restart. */
const RELOAD_MS = 30_000;

/** The audit signing key's file, configured or (outside production) generated under DATA_DIR. */
export function auditSigningKeyFile(config: AppConfig): PrivateKeyFile {
  return {
    configured: config.auditSigningKeyFile,
    fallback: join(config.dataDir, 'audit-signing-key.pem'),
    variable: 'AUDIT_SIGNING_KEY_FILE',
    generate: () => generateKeyPairSync('ed25519').privateKey,
    kind: 'an Ed25519 private key',
    accepts: isEd25519,
  };
}

/** The public keys in a file of trusted checkpoint keys (AUDIT_TRUSTED_KEYS_FILE). */
export function readAuditTrustedKeys(file: string | undefined): Promise<KeyObject[]> {
  return readPublicKeys(file, 'AUDIT_TRUSTED_KEYS_FILE', {
    kind: 'an Ed25519 key',
    accepts: isEd25519,
  });
}

/**
 * The Ed25519 key that signs audit checkpoints: from AUDIT_SIGNING_KEY_FILE (required in
 * production) or, elsewhere, generated once under DATA_DIR. Whoever can rewrite the database
 * but does not hold this key cannot produce checkpoints that match a rewritten chain.
 */
@Injectable()
export class AuditSigner implements OnModuleInit, OnModuleDestroy {
  private readonly logger = new Logger('AuditSigner');
  private privateKey: KeyObject | undefined;
  private id = '';
  /** Keys whose checkpoints are believed: our own, and those in the trusted keys file. */
  private trusted = new Map<string, KeyObject>();
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly config: AppConfig) {}

  async onModuleInit(): Promise<void> {
    await this.reload();
    this.timer = setInterval(() => {
      this.reload().catch((error: unknown) =>
        this.logger.error(`Audit keys not reloaded: ${(error as Error).message}`),
      );
    }, RELOAD_MS);
    this.timer.unref();
  }

  onModuleDestroy(): void {
    clearInterval(this.timer);
  }

  /** Re-reads the signing key and the trusted keys (at start, and every 30 s). */
  async reload(): Promise<void> {
    const privateKey = await readPrivateKey(auditSigningKeyFile(this.config));
    const publicKey = createPublicKey(privateKey);
    const trusted = new Map<string, KeyObject>([[keyIdOf(publicKey), publicKey]]);
    // Public keys of other instances or of earlier keys, from outside the database.
    for (const key of await readAuditTrustedKeys(this.trustedKeysFile)) {
      trusted.set(keyIdOf(key), key);
    }
    this.privateKey = privateKey;
    this.id = keyIdOf(publicKey);
    this.trusted = trusted;
  }

  /** Retired keys and other instances' keys; under DATA_DIR in development. */
  get trustedKeysFile(): string {
    return this.config.auditTrustedKeysFile ?? join(this.config.dataDir, 'audit-trusted-keys.pem');
  }

  get keyId(): string {
    return this.id;
  }

  sign(statement: SignedStatement | ExportStatement): string {
    return sign(null, statementBytes(statement), this.privateKey!).toString('base64');
  }

  isTrusted(keyId: string): boolean {
    return this.trusted.has(keyId);
  }

  /** True when `signature` was made over the statement by the trusted key `keyId`. */
  verify(statement: SignedStatement | ExportStatement, keyId: string, signature: string): boolean {
    const key = this.trusted.get(keyId);
    if (!key) {
      return false;
    }
    try {
      return verify(null, statementBytes(statement), key, Buffer.from(signature, 'base64'));
    } catch {
      return false;
    }
  }
}

/** A key's id: the start of the SHA-256 of its public key (SPKI DER). */
export function keyIdOf(publicKey: KeyObject): string {
  return createHash('sha256')
    .update(publicKey.export({ type: 'spki', format: 'der' }))
    .digest('hex')
    .slice(0, 16);
}
