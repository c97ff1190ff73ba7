import { ExecutionContext, Injectable, UnauthorizedException } from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import { AuthGuard } from '@nestjs/passport';
import type { FastifyRequest } from 'fastify';
import type { AuthenticatedUser } from './authenticated-user.js';
import { PUBLIC_KEY } from './permission.decorators.js';
import { bearerToken } from './bearer-token.js';
import { RequestIdentity } from './request-identity.js';
import { TokenLiveness } from './token-liveness.js';

/**
 * Every route needs a valid access token unless it is marked @Public(): CareVault's own
 * (passport-jwt), or the configured external OIDC issuer's.
 */
@Injectable()
export class JwtAuthGuard extends AuthGuard('jwt') {
  constructor(
    private readonly reflector: Reflector,
    private readonly identity: RequestIdentity,
    private readonly liveness: TokenLiveness,
  ) {
    super();
  }

  override async canActivate(context: ExecutionContext): Promise<boolean> {
    if (
      this.reflector.getAllAndOverride<boolean>(PUBLIC_KEY, [
        context.getHandler(),
        context.getClass(),
      ])
    ) {
      return true;
    }
    const request = context
      .switchToHttp()
      .getRequest<FastifyRequest & { user?: AuthenticatedUser }>();
    const token = bearerToken(request);
    const known = token ? this.identity.remembered(token) : undefined;
    if (known) {
      request.user = await this.stillAllowed(known);
      return true;
    }
    // A token that names the external issuer is verified against that issuer's keys only.
    if (token && this.identity.isExternal(token)) {
      try {
        request.user = await this.identity.external(token);
      } catch {
        throw new UnauthorizedException();
      }
      return true;
    }
    const allowed = (await super.canActivate(context)) as boolean;
    // Whatever found the token, a user it verified is checked for an end of its session.
    if (request.user) {
      if (token) this.identity.remember(token, request.user);
      await this.stillAllowed(request.user);
    }
    return allowed;
  }

  /** A token whose account, app or session has ended since is refused (TokenLiveness). */
  private async stillAllowed(user: AuthenticatedUser): Promise<AuthenticatedUser> {
    if (!(await this.liveness.allows(user))) throw new UnauthorizedException();
    return user;
  }

  override handleRequest<TUser>(error: unknown, user: TUser | false): TUser {
    if (error || !user) {
      // One answer for every failure: which check failed is not the client's business.
      throw new UnauthorizedException();
    }
    return user;
  }
}
