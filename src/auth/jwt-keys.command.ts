import { generateKeyPairSync } from 'node:crypto';
import { calculateJwkThumbprint, exportJWK } from 'jose';
import { Command, CommandRunner } from 'nest-commander';
import { AuditTrail } from '../audit/audit-trail.js';
import { rotateSigningKey } from '../common/key-files.js';
import { AppConfig } from '../config/config.js';
import { JWT_KEYS_RELOAD_MS, jwtKeyFiles } from './signing-keys.js';

@Command({
  name: 'keys:rotate-jwt',
  description:
    'New ES256 access-token signing key; the old public key stays accepted and in the JWKS until the last token it signed has expired',
})
export class JwtKeyRotateCommand extends CommandRunner {
  constructor(
    private readonly config: AppConfig,
    private readonly trail: AuditTrail,
  ) {
    super();
  }

  async run(): Promise<void> {
    const files = jwtKeyFiles(this.config);
    const now = Date.now();
    // Instances sign with the old key until they re-read the file; each token lives its TTL.
    const expires = new Date(
      now + this.config.accessTokenTtl * 1000 + 2 * JWT_KEYS_RELOAD_MS,
    ).toISOString();
    const { retired, current } = await this.trail
      .command(
        'keys:rotate-jwt',
        (rotated) => ({ detail: `retired=${rotated.retiredKid} current=${rotated.currentKid}` }),
        async () => {
          const rotated = await rotateSigningKey({
            privateKeyFile: files.signing,
            acceptedKeysFile: files.verification,
            generate: () => generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey,
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
      `New JWT signing key ${current} in ${files.signing}. Instances switch within ${JWT_KEYS_RELOAD_MS / 1000} s; ` +
        `the old key ${retired} stays accepted and published until ${expires} (${files.verification})\n`,
    );
  }
}
