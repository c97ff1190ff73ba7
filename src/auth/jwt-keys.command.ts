import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { calculateJwkThumbprint, exportJWK } from 'jose';
import { Command, CommandRunner, Option } from 'nest-commander';
import { AuditTrail } from '../audit/audit-trail.js';
import { rotateSigningKey } from '../common/key-files.js';
import { AppConfig } from '../config/config.js';
import {
  generateIdTokenKey,
  ID_TOKEN_TTL_SECONDS,
  JWT_KEYS_RELOAD_MS,
  jwtKeyFiles,
} from './signing-keys.js';

@Command({
  name: 'keys:rotate-jwt',
  description:
    'New ES256 access-token signing key (with --id-token: new RS256 id_token key); the old public key stays accepted and in the JWKS until the last token it signed has expired',
})
export class JwtKeyRotateCommand extends CommandRunner {
  constructor(
    private readonly config: AppConfig,
    private readonly trail: AuditTrail,
  ) {
    super();
  }

  async run(_params: string[], options: { idToken?: boolean }): Promise<void> {
    const files = jwtKeyFiles(this.config);
    const which = options.idToken
      ? {
          name: 'id_token signing key',
          file: files.idTokenSigning,
          ttl: ID_TOKEN_TTL_SECONDS,
          generate: generateIdTokenKey,
        }
      : {
          name: 'JWT signing key',
          file: files.signing,
          ttl: this.config.accessTokenTtl,
          generate: (): KeyObject => generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey,
        };
    const now = Date.now();
    // Instances sign with the old key until they re-read the file; each token lives its TTL.
    const expires = new Date(now + which.ttl * 1000 + 2 * JWT_KEYS_RELOAD_MS).toISOString();
    const { retired, current } = await this.trail
      .command(
        'keys:rotate-jwt',
        (rotated) => ({ detail: `retired=${rotated.retiredKid} current=${rotated.currentKid}` }),
        async () => {
          const rotated = await rotateSigningKey({
            privateKeyFile: which.file,
            acceptedKeysFile: files.verification,
            generate: which.generate,
            note: `retired ${new Date(now).toISOString()}; expires ${expires}`,
          });
          return {
            ...rotated,
            retiredKid: await calculateJwkThumbprint(await exportJWK(rotated.retired)),
            currentKid: await calculateJwkThumbprint(await exportJWK(rotated.current)),
          };
        },
      )
      .then((rotated) => ({ retired: rotated.retiredKid, current: rotated.currentKid }));
    process.stdout.write(
      `New ${which.name} ${current} in ${which.file}. Instances switch within ${JWT_KEYS_RELOAD_MS / 1000} s; ` +
        `the old key ${retired} stays ${options.idToken ? '' : 'accepted and '}published until ${expires} (${files.verification})\n`,
    );
  }

  @Option({
    flags: '--id-token',
    description: 'Rotate the RS256 key that signs id_tokens instead of the access-token key',
  })
  parseIdToken(): boolean {
    return true;
  }
}
