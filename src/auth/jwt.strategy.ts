import { Injectable, UnauthorizedException } from '@nestjs/common';
import { PassportStrategy } from '@nestjs/passport';
import { ExtractJwt, Strategy } from 'passport-jwt';
import { AppConfig } from '../config/config.js';
import type { AuthenticatedUser } from './authenticated-user.js';
import { isRole } from './roles.js';
import { smartContext } from './smart-scopes.js';
import { SigningKeys } from './signing-keys.js';

interface AccessTokenClaims {
  sub?: unknown;
  exp?: unknown;
  username?: unknown;
  roles?: unknown;
  amr?: unknown;
  auth_time?: unknown;
  scope?: unknown;
  patient?: unknown;
}

/**
 * Bearer access tokens. The header is checked before the signature (SigningKeys), then the
 * signature, issuer, audience and expiry; a token without `exp` is refused.
 */
@Injectable()
export class JwtStrategy extends PassportStrategy(Strategy, 'jwt') {
  constructor(keys: SigningKeys, config: AppConfig) {
    super({
      jwtFromRequest: ExtractJwt.fromAuthHeaderAsBearerToken(),
      secretOrKeyProvider: (
        _request: unknown,
        rawJwt: string,
        done: (error: unknown, key?: string) => void,
      ) => {
        try {
          // jsonwebtoken 9 takes a KeyObject as it is; passport-jwt's type says string only.
          done(null, keys.verificationKeyFor(rawJwt) as unknown as string);
        } catch (error) {
          done(error);
        }
      },
      algorithms: ['ES256'],
      issuer: config.jwtIssuer,
      audience: config.jwtAudience,
      ignoreExpiration: false,
    });
  }

  validate(claims: AccessTokenClaims): AuthenticatedUser {
    const { sub, exp, username, roles, amr, auth_time: authTime, scope, patient } = claims;
    if (
      typeof sub !== 'string' ||
      typeof exp !== 'number' ||
      typeof username !== 'string' ||
      typeof authTime !== 'number' ||
      !Array.isArray(roles) ||
      !Array.isArray(amr)
    ) {
      throw new UnauthorizedException();
    }
    return {
      id: sub,
      username,
      roles: roles.filter(
        (role): role is AuthenticatedUser['roles'][number] =>
          typeof role === 'string' && isRole(role),
      ),
      amr: amr.filter((method): method is string => typeof method === 'string'),
      authTime,
      expiresAt: exp,
      ...smartContext(scope, patient),
    };
  }
}
