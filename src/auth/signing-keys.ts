import { Injectable, OnModuleInit } from '@nestjs/common';
import {
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  type KeyObject,
} from 'node:crypto';
import { join } from 'node:path';
import { calculateJwkThumbprint, decodeProtectedHeader, exportJWK, type JWK } from 'jose';
import { readOrCreatePrivateKey } from '../common/private-key-file.js';
import { AppConfig } from '../config/config.js';

export const ACCESS_TOKEN_TYPE = 'at+jwt';
const ALGORITHM = 'ES256';

interface SigningKey {
  kid: string;
  privateKey: KeyObject;
  publicKey: KeyObject;
  publicJwk: JWK;
}

export class TokenHeaderError extends Error {
  override readonly name = 'TokenHeaderError';
}

/**
 * The ES256 key that signs access tokens: from JWT_SIGNING_KEY_FILE (required in production) or,
 * elsewhere, generated once under DATA_DIR. Verification accepts only keys listed here.
 */
@Injectable()
export class SigningKeys implements OnModuleInit {
  private key: SigningKey | undefined;

  constructor(private readonly config: AppConfig) {}

  async onModuleInit(): Promise<void> {
    const pem = await readOrCreatePrivateKey({
      configured: this.config.jwtSigningKeyFile,
      fallback: join(this.config.dataDir, 'jwt-signing-key.pem'),
      variable: 'JWT_SIGNING_KEY_FILE',
      generate: () => generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey,
    });
    const privateKey = createPrivateKey(pem);
    if (
      privateKey.asymmetricKeyType !== 'ec' ||
      privateKey.asymmetricKeyDetails?.namedCurve !== 'prime256v1'
    ) {
      throw new Error('The JWT signing key must be an EC P-256 private key (ES256)');
    }
    const publicKey = createPublicKey(privateKey);
    const publicJwk = await exportJWK(publicKey);
    const kid = await calculateJwkThumbprint(publicJwk);
    this.key = {
      kid,
      privateKey,
      publicKey,
      publicJwk: { ...publicJwk, kid, alg: ALGORITHM, use: 'sig' },
    };
  }

  get current(): { kid: string; privateKey: KeyObject; publicKey: KeyObject } {
    return this.loaded();
  }

  /** The public keys as a JWK Set, for /.well-known/jwks.json. */
  jwks(): { keys: JWK[] } {
    return { keys: [this.loaded().publicJwk] };
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
    const key = this.loaded();
    if (header.kid !== key.kid) {
      throw new TokenHeaderError('Unknown signing key');
    }
    // The KeyObject itself: handing jsonwebtoken a PEM made it parse the key on every request
    // (about a fifth of a search request's CPU in the profile).
    return key.publicKey;
  }

  private loaded(): SigningKey {
    if (!this.key) {
      throw new Error('Signing keys are not loaded yet');
    }
    return this.key;
  }
}
