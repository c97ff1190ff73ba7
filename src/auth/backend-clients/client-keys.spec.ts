import { generateKeyPairSync } from 'node:crypto';
import { exportJWK, generateKeyPair } from 'jose';
import { clientKeySet, keyAlgorithm } from './client-keys.js';

async function publicJwk(alg: string) {
  const { publicKey, privateKey } = await generateKeyPair(alg, { extractable: true });
  return { public: await exportJWK(publicKey), private: await exportJWK(privateKey) };
}

describe('backend client keys', () => {
  it('keeps the public members of EC and RSA signing keys', async () => {
    const ec = await publicJwk('ES384');
    const rsa = await publicJwk('RS384');
    const set = clientKeySet({
      keys: [
        { ...ec.public, kid: 'ec', use: 'sig', key_ops: ['verify'] },
        { ...rsa.public, kid: 'rsa', alg: 'RS384' },
      ],
    });
    expect(set.keys.map((key) => Object.keys(key).sort())).toEqual([
      ['crv', 'kid', 'kty', 'use', 'x', 'y'],
      ['alg', 'e', 'kid', 'kty', 'n'],
    ]);
    expect(set.keys.map(keyAlgorithm)).toEqual(['ES384', 'RS384']);
  });

  it('refuses private, symmetric, weak, unnamed and misfit keys, saying which and why', async () => {
    const ec = await publicJwk('ES256');
    // jose refuses to make a key this weak; node:crypto does not.
    const weak = generateKeyPairSync('rsa', { modulusLength: 1024 }).publicKey.export({
      format: 'jwk',
    });
    const cases: [unknown, RegExp][] = [
      [{ keys: [{ ...ec.private, kid: 'a' }] }, /key 1 has "d": register public keys only/],
      [{ keys: [{ kty: 'oct', k: 'c2VjcmV0', kid: 'a' }] }, /key 1 has "k"/],
      [{ keys: [{ ...weak, kid: 'a' }] }, /2048 bits at least/],
      [{ keys: [{ ...ec.public }] }, /key 1 needs a "kid"/],
      [
        {
          keys: [
            { ...ec.public, kid: 'a' },
            { ...ec.public, kid: 'a' },
          ],
        },
        /"kid" a is used twice/,
      ],
      [{ keys: [{ ...ec.public, kid: 'a', alg: 'ES384' }] }, /does not fit curve P-256/],
      [{ keys: [{ ...ec.public, kid: 'a', use: 'enc' }] }, /"use" must be "sig"/],
      [{ keys: [{ kty: 'OKP', crv: 'Ed25519', x: 'x', kid: 'a' }] }, /"kty" must be EC or RSA/],
      [{ keys: [] }, /1 to 10 keys/],
      [[], /1 to 10 keys/],
    ];
    for (const [value, message] of cases) {
      expect(() => clientKeySet(value)).toThrow(message);
    }
  });
});
