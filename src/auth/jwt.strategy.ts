import { Injectable, UnauthorizedException } from '@nestjs/common';
import { PassportStrategy } from '@nestjs/passport';
import { Strategy } from 'passport-jwt';
import { AppConfig } from '../config/config.js';
import type { FastifyRequest } from 'fastify';
import type { AuthenticatedUser } from './authenticated-user.js';
import { bearerToken } from './bearer-token.js';
import { userOfClaims, type AccessTokenClaims } from './access-token-claims.js';
import { SigningKeys } from './signing-keys.js';

/**
 * Bearer access tokens. The header is checked before the signature (SigningKeys), then the
 * signature, issuer, audience and expiry; a token without `exp` is refused.
 */
@Injectable()
export class JwtStrategy extends PassportStrategy(Strategy, 'jwt') {
  constructor(keys: SigningKeys, config: AppConfig) {
    super({
      // The guard's reading of the header, not passport-jwt's looser one (see bearerToken).
      jwtFromRequest: (request: FastifyRequest) => bearerToken(request) ?? null,
      secretOrKeyProvider: (
        _request: unknown,
        rawJwt: string,
        done: (error: unknown, key?: string) => void,
      ) => {
        // jsonwebtoken 9 takes a KeyObject as it is; passport-jwt's type says string only.
        keys.verificationKeyForAny(rawJwt).then(
          (key) => done(null, key as unknown as string),
          (error: unknown) => done(error),
        );
      },
      algorithms: ['ES256'],
      issuer: config.jwtIssuer,
      audience: config.jwtAudience,
      ignoreExpiration: false,
    });
  }

  validate(claims: AccessTokenClaims): AuthenticatedUser {
    const user = userOfClaims(claims);
    if (!user) throw new UnauthorizedException();
    return user;
  }
}
