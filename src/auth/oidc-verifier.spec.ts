import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import type { AppConfig } from '../config/config.js';
import { OidcVerifier } from './oidc-verifier.js';

const ISSUER = 'https://kc.example.org/realms/hospital';

describe('OidcVerifier', () => {
  const realFetch = globalThis.fetch;
  afterEach(() => {
    globalThis.fetch = realFetch;
  });

  // Keycloak behind a TLS proxy that it was not told about advertises http:// URLs. Until
  // 2026-12-06 the keys were then fetched in the clear, and whoever sat on that path could
  // serve their own and sign tokens with any role.
  it('refuses a discovered JWKS that is not https', async () => {
    const { publicKey, privateKey } = await generateKeyPair('RS256');
    const jwk = { ...(await exportJWK(publicKey)), kid: 'k1', alg: 'RS256' };
    const fetched: string[] = [];
    globalThis.fetch = (input: string | URL | Request) => {
      const url = input instanceof Request ? input.url : String(input);
      fetched.push(url);
      const body = url.endsWith('/openid-configuration')
        ? { issuer: ISSUER, jwks_uri: 'http://kc.example.org/realms/hospital/certs' }
        : { keys: [jwk] };
      return Promise.resolve(
        new Response(JSON.stringify(body), { headers: { 'content-type': 'application/json' } }),
      );
    };
    const config = {
      oidc: { issuer: ISSUER, audience: 'cv', rolesClaim: 'roles', roleMap: new Map() },
    } as unknown as AppConfig;
    const token = await new SignJWT({ roles: ['doctor'] })
      .setProtectedHeader({ alg: 'RS256', kid: 'k1' })
      .setIssuer(ISSUER)
      .setAudience('cv')
      .setSubject('mallory')
      .setExpirationTime('5m')
      .sign(privateKey);

    await expect(new OidcVerifier(config).verify(token)).rejects.toThrow(
      'OIDC discovery failed: jwks_uri http://kc.example.org/realms/hospital/certs is not https',
    );
    expect(fetched).toEqual([`${ISSUER}/.well-known/openid-configuration`]);
  });
});
