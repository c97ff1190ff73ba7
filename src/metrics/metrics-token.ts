import { createHash, timingSafeEqual } from 'node:crypto';
import { readConfiguredFile } from '../common/files.js';
import { ConfigError } from '../config/env.schema.js';

/** Shorter than this, a token could be guessed by a patient attacker. */
const MIN_LENGTH = 32;

/** The scraper's bearer token, read once from METRICS_TOKEN_FILE. */
export class MetricsToken {
  private readonly digest: Buffer | undefined;

  constructor(file: string | undefined) {
    if (!file) {
      return;
    }
    const token = readConfiguredFile('METRICS_TOKEN_FILE', file).toString('utf8').trim();
    if (token.length < MIN_LENGTH) {
      throw new ConfigError(
        `Invalid configuration: the token in METRICS_TOKEN_FILE must be at least ${MIN_LENGTH} characters (openssl rand -hex 32)`,
      );
    }
    this.digest = sha256(token);
  }

  get configured(): boolean {
    return this.digest !== undefined;
  }

  /** Compares digests in constant time, so the answer's timing says nothing about the token. */
  accepts(authorization: string | undefined): boolean {
    const match = /^Bearer (\S+)$/i.exec(authorization ?? '');
    return this.digest !== undefined && !!match && timingSafeEqual(sha256(match[1]!), this.digest);
  }
}

function sha256(text: string): Buffer {
  return createHash('sha256').update(text).digest();
}
