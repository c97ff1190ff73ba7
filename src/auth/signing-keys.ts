import { Injectable, Logger, OnModuleDestroy, OnModuleInit } from '@nestjs/common';
import { createPublicKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { calculateJwkThumbprint, decodeProtectedHeader, exportJWK, type JWK } from 'jose';
import { readPublicKeys } from '../common/key-files.js';
import { readPrivateKey, type PrivateKeyFile } from '../common/private-key-file.js';
import { AppConfig } from '../config/config.js';

export const ACCESS_TOKEN_TYPE = 'at+jwt';
const ALGORITHM = 'ES256';
/** SMART App Launch: the server SHALL support RS256 for id_tokens (apps may know no other). */
export const ID_TOKEN_ALGORITHM = 'RS256';
/** An id_token is read once, when the app receives it. */
export const ID_TOKEN_TTL_SECONDS = 300;
const RSA_MIN_BITS = 2048;

interface SigningKey {
  kid: string;
  privateKey: KeyObject;
  publicKey: KeyObject;
  publicJwk: JWK;
}

export class TokenHeaderError extends Error {
  override readonly name: string = 'TokenHeaderError';
}

/** A token signed by a key this instance does not accept (or does not hold yet). */
class UnknownKeyError extends TokenHeaderError {
  override readonly name = 'UnknownKeyError';
}

/** How often instances re-read the key files, so a rotation reaches them without a restart. */
export const JWT_KEYS_RELOAD_MS = 30_000;

/** The signing keys and the accepted public keys; under DATA_DIR in development. */
export function jwtKeyFiles(config: AppConfig): {
  signing: string;
  idTokenSigning: string;
  verification: string;
} {
  return {
    signing: config.jwtSigningKeyFile ?? join(config.dataDir, 'jwt-signing-key.pem'),
    idTokenSigning:
      config.idTokenSigningKeyFile ?? join(config.dataDir, 'id-token-signing-key.pem'),
    verification:
      config.jwtVerificationKeysFile ?? join(config.dataDir, 'jwt-verification-keys.pem'),
  };
}

/** The ES256 signing key's file, configured or (outside production) generated under DATA_DIR. */
export function jwtSigningKeyFile(config: AppConfig): PrivateKeyFile {
  return {
    configured: config.jwtSigningKeyFile,
    fallback: jwtKeyFiles(config).signing,
    variable: 'JWT_SIGNING_KEY_FILE',
    generate: () => generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey,
    kind: 'an EC P-256 private key (ES256)',
    accepts: isP256,
  };
}

/** The RS256 id_token signing key's file, configured or (outside production) generated. */
export function idTokenSigningKeyFile(config: AppConfig): PrivateKeyFile {
  return {
    configured: config.idTokenSigningKeyFile,
    fallback: jwtKeyFiles(config).idTokenSigning,
    variable: 'ID_TOKEN_SIGNING_KEY_FILE',
    generate: generateIdTokenKey,
    kind: `an RSA private key of ${RSA_MIN_BITS} bits or more (RS256)`,
    accepts: isRsa,
  };
}

export function generateIdTokenKey(): KeyObject {
  return generateKeyPairSync('rsa', { modulusLength: RSA_MIN_BITS }).privateKey;
}

/**
 * The public keys in a file of accepted token keys (JWT_VERIFICATION_KEYS_FILE): EC P-256 keys
 * verify access tokens, RSA keys (retired id_token keys) are only published, for apps.
 */
export function readJwtVerificationKeys(file: string | undefined): Promise<KeyObject[]> {
  return readPublicKeys(file, 'JWT_VERIFICATION_KEYS_FILE', {
    kind: `an EC P-256 key or an RSA key of ${RSA_MIN_BITS} bits or more`,
    accepts: (key) => isP256(key) || isRsa(key),
  });
}

/**
 * The ES256 key that signs access tokens: from JWT_SIGNING_KEY_FILE (required in production) or,
 * elsewhere, generated once under DATA_DIR. Verification accepts this key and the EC public keys
 * in JWT_VERIFICATION_KEYS_FILE (retired keys, until the tokens they signed expire, and a next
 * key published ahead of a switch), and only those; all of them are in the JWKS. The RS256 key
 * that signs id_tokens (ID_TOKEN_SIGNING_KEY_FILE, kept the same way) and the file's RSA keys
 * are in the JWKS too, for apps, but verify no access token: CareVault reads no id_token.
 */
@Injectable()
export class SigningKeys implements OnModuleInit, OnModuleDestroy {
  private readonly logger = new Logger('SigningKeys');
  private key: SigningKey | undefined;
  private accepted = new Map<string, SigningKey | Omit<SigningKey, 'privateKey'>>();
  private idTokenKey: SigningKey | undefined;
  /** Retired (or next) id_token keys, published until the id_tokens they signed expire. */
  private idTokenPublished: JWK[] = [];
  private timer: NodeJS.Timeout | undefined;
  /** The key files as last read (inode, size, time), to tell whether they changed since. */
  private loadedFiles = '';
  private unknownKidReload: Promise<void> | undefined;
  /** Changes whenever the set of accepted keys does (see VerifiedTokens). */
  generation = 0;

  constructor(private readonly config: AppConfig) {}

  async onModuleInit(): Promise<void> {
    await this.reload();
    this.timer = setInterval(() => {
      this.reload().catch((error: unknown) =>
        this.logger.error(`JWT keys not reloaded: ${(error as Error).message}`),
      );
    }, JWT_KEYS_RELOAD_MS);
    this.timer.unref();
  }

  onModuleDestroy(): void {
    clearInterval(this.timer);
  }

  /** Re-reads the signing key and the verification keys (at start, and every 30 s). */
  async reload(): Promise<void> {
    const files = await this.filesStamp();
    const privateKey = await readPrivateKey(jwtSigningKeyFile(this.config));
    const key = { ...(await describe(createPublicKey(privateKey))), privateKey };
    const idTokenPrivateKey = await readPrivateKey(idTokenSigningKeyFile(this.config));
    const idTokenKey = {
      ...(await describe(createPublicKey(idTokenPrivateKey))),
      privateKey: idTokenPrivateKey,
    };
    const accepted = new Map<string, SigningKey | Omit<SigningKey, 'privateKey'>>();
    const idTokenPublished = new Map<string, JWK>();
    for (const publicKey of await readJwtVerificationKeys(this.verificationKeysFile)) {
      const described = await describe(publicKey);
      if (isRsa(publicKey)) {
        idTokenPublished.set(described.kid, described.publicJwk);
      } else {
        accepted.set(described.kid, described);
      }
    }
    accepted.set(key.kid, key);
    idTokenPublished.delete(idTokenKey.kid);
    const before = [...this.accepted.keys()].sort().join();
    this.key = key;
    this.accepted = accepted;
    this.idTokenKey = idTokenKey;
    this.idTokenPublished = [...idTokenPublished.values()];
    this.loadedFiles = files;
    if ([...accepted.keys()].sort().join() !== before) {
      this.generation += 1;
    }
  }

  private get verificationKeysFile(): string {
    return jwtKeyFiles(this.config).verification;
  }

  get current(): { kid: string; privateKey: KeyObject; publicKey: KeyObject } {
    return this.loaded();
  }

  /** The RS256 key that signs id_tokens. */
  get idToken(): { kid: string; privateKey: KeyObject } {
    this.loaded();
    return this.idTokenKey!;
  }

  /**
   * The public keys as a JWK Set, for /.well-known/jwks.json: the current access-token key
   * first, then the current id_token key, then retired and next keys.
   */
  jwks(): { keys: JWK[] } {
    const current = this.loaded();
    return {
      keys: [
        current.publicJwk,
        this.idTokenKey!.publicJwk,
        ...[...this.accepted.values()]
          .filter((key) => key.kid !== current.kid)
          .map((key) => key.publicJwk),
        ...this.idTokenPublished,
      ],
    };
  }

  /**
   * The public key to verify a raw access token with, after checking its header: the
   * algorithm is pinned, the type must be an access token, the key must be one of ours, and a
   * token may not bring its own key (jwk, jku, x5u, x5c).
   */
  verificationKeyFor(rawJwt: string): KeyObject {
    let header: ReturnType<typeof decodeProtectedHeader>;
    try {
      header = decodeProtectedHeader(rawJwt);
    } catch {
      throw new TokenHeaderError('Malformed token');
    }
    if (header.alg !== ALGORITHM) {
      throw new TokenHeaderError('Unexpected token algorithm');
    }
    if (header.typ !== ACCESS_TOKEN_TYPE) {
      throw new TokenHeaderError('Not an access token');
    }
    if (
      'jwk' in header ||
      'jku' in header ||
      'x5u' in header ||
      'x5c' in header ||
      'crit' in header
    ) {
      throw new TokenHeaderError('Token headers may not carry keys');
    }
    const key = typeof header.kid === 'string' ? this.accepted.get(header.kid) : undefined;
    if (!key) {
      throw new UnknownKeyError('Unknown signing key');
    }
    // The KeyObject itself: handing jsonwebtoken a PEM made it parse the key on every request
    // (about a fifth of a search request's CPU in the profile).
    return key.publicKey;
  }

  /** As verificationKeyFor, re-reading the key files first when the token's kid is unknown. */
  async verificationKeyForAny(rawJwt: string): Promise<KeyObject> {
    try {
      return this.verificationKeyFor(rawJwt);
    } catch (error) {
      if (!(error instanceof UnknownKeyError)) throw error;
      await this.reloadForUnknownKid();
      return this.verificationKeyFor(rawJwt);
    }
  }

  /** The public key of an accepted kid, for tokens this service signed (MFA tokens). */
  async publicKeyFor(kid: string | undefined): Promise<KeyObject | undefined> {
    if (kid === undefined) return undefined;
    if (!this.accepted.has(kid)) await this.reloadForUnknownKid();
    return this.accepted.get(kid)?.publicKey;
  }

  /**
   * A token naming a key this instance does not hold: another instance may have rotated and
   * sign with the new key already. The files are read again if they changed since the last
   * read; a stream of tokens with made-up kids costs a stat of three files each.
   */
  private reloadForUnknownKid(): Promise<void> {
    this.unknownKidReload ??= (async () => {
      if ((await this.filesStamp()) !== this.loadedFiles) await this.reload();
    })()
      .catch((error: unknown) =>
        this.logger.error(`JWT keys not reloaded: ${(error as Error).message}`),
      )
      .finally(() => (this.unknownKidReload = undefined));
    return this.unknownKidReload;
  }

  private async filesStamp(): Promise<string> {
    const { signing, idTokenSigning, verification } = jwtKeyFiles(this.config);
    const stamps = await Promise.all(
      [signing, idTokenSigning, verification].map((file) =>
        stat(file).then(
          (found) => `${found.ino}:${found.size}:${found.mtimeMs}`,
          () => 'none',
        ),
      ),
    );
    return stamps.join('|');
  }

  private loaded(): SigningKey {
    if (!this.key) {
      throw new Error('Signing keys are not loaded yet');
    }
    return this.key;
  }
}

function isP256(key: KeyObject): boolean {
  return key.asymmetricKeyType === 'ec' && key.asymmetricKeyDetails?.namedCurve === 'prime256v1';
}

function isRsa(key: KeyObject): boolean {
  return (
    key.asymmetricKeyType === 'rsa' &&
    (key.asymmetricKeyDetails?.modulusLength ?? 0) >= RSA_MIN_BITS
  );
}

async function describe(publicKey: KeyObject): Promise<Omit<SigningKey, 'privateKey'>> {
  const jwk = await exportJWK(publicKey);
  const kid = await calculateJwkThumbprint(jwk);
  const alg = isRsa(publicKey) ? ID_TOKEN_ALGORITHM : ALGORITHM;
  return { kid, publicKey, publicJwk: { ...jwk, kid, alg, use: 'sig' } };
}
