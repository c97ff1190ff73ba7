import { Injectable } from '@nestjs/common';
import type { FastifyRequest } from 'fastify';
import type { Strategy } from 'passport-jwt';
import type { AuthenticatedUser } from './authenticated-user.js';
import { bearerToken } from './bearer-token.js';
import { JwtStrategy } from './jwt.strategy.js';
import { OidcVerifier } from './oidc-verifier.js';
import { SigningKeys } from './signing-keys.js';
import { VerifiedTokens } from './verified-tokens.js';

/**
 * Who an access token stands for, shared by the authentication guard and by the audit rows of
 * requests refused before the guard ran (a body that does not parse, an unknown route): those
 * rows must name the user who sent them, as every other row does (45 CFR 164.312(b)).
 */
@Injectable()
export class RequestIdentity {
  private readonly verified = new VerifiedTokens();

  constructor(
    private readonly oidc: OidcVerifier,
    private readonly keys: SigningKeys,
    private readonly jwt: JwtStrategy,
  ) {}

  /** The user of a token this process has verified before and that has not expired. */
  remembered(token: string): AuthenticatedUser | undefined {
    return this.verified.get(token, this.keys.generation);
  }

  remember(token: string, user: AuthenticatedUser): void {
    this.verified.remember(token, user);
  }

  /** Whether the token names the external OIDC issuer, whose keys alone may verify it. */
  isExternal(token: string): boolean {
    return this.oidc.claims(token);
  }

  /** The user of a valid external token; throws on any defect. */
  external(token: string): Promise<AuthenticatedUser> {
    return this.oidc.verify(token);
  }

  /**
   * The user a request's token stands for, with the same checks the guard makes, or undefined
   * for no token or one that fails them. Never throws: it only names who sent a request that
   * is already being refused. `verify: false` looks only at tokens verified before, for
   * refusals that must stay cheap (a client over its rate limit).
   */
  async identify(
    request: FastifyRequest,
    options: { verify: boolean },
  ): Promise<AuthenticatedUser | undefined> {
    const token = bearerToken(request);
    if (!token) return undefined;
    const known = this.remembered(token);
    if (known || !options.verify) return known;
    if (this.isExternal(token)) {
      return this.external(token).catch(() => undefined);
    }
    const user = await this.ownToken(request);
    if (user) this.remember(token, user);
    return user;
  }

  /**
   * The user of one of CareVault's own access tokens, verified as the guard verifies a bearer
   * token (header, signature, issuer, audience, expiry), or undefined; the caller checks its
   * liveness (TokenLiveness). External issuers' tokens are not read here.
   */
  async ownAccessToken(token: string): Promise<AuthenticatedUser | undefined> {
    if (this.isExternal(token)) return undefined;
    const known = this.remembered(token);
    if (known) return known;
    // The strategy reads the token from a request's Authorization header, as bearerToken does
    // (which also counts the raw headers).
    const authorization = `Bearer ${token}`;
    const user = await this.ownToken({
      headers: { authorization },
      raw: { rawHeaders: ['Authorization', authorization] },
    } as unknown as FastifyRequest);
    if (user) this.remember(token, user);
    return user;
  }

  /**
   * passport-jwt's strategy run outside a guard, the way passport's own middleware runs one:
   * an instance of it whose outcome callbacks settle a promise.
   */
  private ownToken(request: FastifyRequest): Promise<AuthenticatedUser | undefined> {
    return new Promise((resolve) => {
      const run = Object.create(this.jwt) as Pick<Strategy, 'authenticate'> & {
        success(user: AuthenticatedUser): void;
        fail(): void;
        error(): void;
      };
      run.success = (user: AuthenticatedUser) => resolve(user);
      run.fail = () => resolve(undefined);
      run.error = () => resolve(undefined);
      try {
        run.authenticate(request as never, {});
      } catch {
        resolve(undefined);
      }
    });
  }
}
