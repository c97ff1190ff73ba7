import { Injectable, Logger } from '@nestjs/common';
import {
  createLocalJWKSet,
  decodeJwt,
  decodeProtectedHeader,
  errors,
  jwtVerify,
  type JWTPayload,
} from 'jose';
import { AuditContext } from '../../audit/audit-context.js';
import { AppConfig } from '../../config/config.js';
import type { OAuthError } from '../dto.js';
import { formatScope, grantedScopes, parseScopes } from '../smart-scopes.js';
import { TokenService } from '../token.service.js';
import { UserRepository } from '../user.repository.js';
import { BackendClientRepository } from './backend-client.repository.js';
import { PERSON_ROLES } from './backend-clients.service.js';
import { ASSERTION_ALGORITHMS } from './client-keys.js';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

export const JWT_BEARER = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';

/** SMART: an assertion expires no more than five minutes after it is made. */
const MAX_ASSERTION_LIFETIME_SECONDS = 300;
/** Clocks of the client and the server may differ this much. */
const CLOCK_TOLERANCE_SECONDS = 30;
/** SMART recommends backend tokens of five minutes at most. */
const TOKEN_TTL_SECONDS = 300;

export interface ClientTokenResponse {
  access_token: string;
  token_type: 'bearer';
  expires_in: number;
  scope: string;
}

const invalidClient = (description: string): OAuthError => ({
  error: 'invalid_client',
  error_description: description,
});

/**
 * The client_credentials grant of SMART Backend Services: a registered client proves who it is
 * with a JWT signed by one of its registered keys (RFC 7523 private_key_jwt) and gets a
 * short-lived access token for the system/ scopes it asked for, within what it was registered
 * for; its account's roles still bound every request, as for any token.
 */
@Injectable()
export class ClientCredentialsGrant {
  private readonly logger = new Logger('BackendClients');

  constructor(
    private readonly clients: BackendClientRepository,
    private readonly users: UserRepository,
    private readonly tokens: TokenService,
    private readonly audit: AuditContext,
    private readonly config: AppConfig,
  ) {}

  /** `tokenUrl` is this token endpoint's URL as the client reached it: the assertion's `aud`. */
  async token(
    fields: Record<string, unknown>,
    tokenUrl: string,
  ): Promise<ClientTokenResponse | OAuthError> {
    const { client_assertion_type: type, client_assertion: assertion, scope } = fields;
    if (type !== JWT_BEARER) {
      return {
        error: 'invalid_request',
        error_description: `client_assertion_type must be ${JWT_BEARER}`,
      };
    }
    if (typeof assertion !== 'string' || assertion === '') {
      return { error: 'invalid_request', error_description: 'client_assertion is required' };
    }
    if (typeof scope !== 'string' || scope.trim() === '') {
      return { error: 'invalid_scope', error_description: 'scope is required' };
    }
    let header: ReturnType<typeof decodeProtectedHeader>;
    let unverified: JWTPayload;
    try {
      header = decodeProtectedHeader(assertion);
      unverified = decodeJwt(assertion);
    } catch {
      return invalidClient('client_assertion is not a signed JWT');
    }
    if (['jku', 'jwk', 'x5u', 'x5c'].some((member) => member in header)) {
      return invalidClient(
        "client_assertion names keys of its own (jku, jwk, x5u, x5c): the client's registered keys are used",
      );
    }
    if (typeof header.kid !== 'string') return invalidClient('client_assertion needs a kid');
    const clientId = unverified.iss;
    if (typeof clientId !== 'string' || !UUID.test(clientId) || unverified.sub !== clientId) {
      return invalidClient('client_assertion: iss and sub must both be the client id');
    }
    const client = await this.clients.findById(clientId);
    const account = client && (await this.users.findById(client.userId));
    if (!client || !account) return invalidClient('Unknown client');
    this.audit.setActor({ id: account.id, name: account.username, roles: [...account.roles] });

    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(assertion, createLocalJWKSet(client.jwks), {
        algorithms: [...ASSERTION_ALGORITHMS],
        issuer: clientId,
        subject: clientId,
        audience: tokenUrl,
        requiredClaims: ['exp', 'jti'],
        clockTolerance: CLOCK_TOLERANCE_SECONDS,
      }));
    } catch (error) {
      return invalidClient(`client_assertion: ${assertionFailure(error)}`);
    }
    // Told only to whoever holds the client's key.
    if (!client.active) return invalidClient('This client is disabled');
    if (!account.active) return invalidClient("The client's account is disabled");
    if (account.roles.some((role) => PERSON_ROLES.includes(role))) {
      // Its account was given a role about people after the client was registered.
      this.logger.warn({
        msg: 'Backend client refused: its account holds a person role',
        clientId,
      });
      return invalidClient("The client's account holds a role a backend client cannot act in");
    }
    const now = Math.floor(Date.now() / 1000);
    const exp = payload.exp!;
    if (exp - now > MAX_ASSERTION_LIFETIME_SECONDS + CLOCK_TOLERANCE_SECONDS) {
      return invalidClient('client_assertion: exp is more than five minutes ahead');
    }
    const jti = payload.jti!;
    if (jti.length === 0 || jti.length > 255) {
      return invalidClient('client_assertion: jti must have 1 to 255 characters');
    }
    // Kept until the assertion could no longer pass its exp check.
    const spentUntil = new Date((exp + CLOCK_TOLERANCE_SECONDS) * 1000);
    if (!(await this.clients.spendAssertion(client.id, jti, spentUntil))) {
      this.logger.warn({ msg: 'Backend client assertion replayed', clientId });
      return invalidClient('client_assertion: this jti was used already');
    }

    const items = scope.split(/\s+/).filter(Boolean);
    if (items.some((item) => item.includes('?'))) {
      return {
        error: 'invalid_scope',
        error_description: 'Scopes with search parameters (?category=...) are not offered',
      };
    }
    const requested = parseScopes(scope) ?? [];
    if (requested.some((item) => item.context !== 'system')) {
      return {
        error: 'invalid_scope',
        error_description: 'A backend client is granted system/ scopes only',
      };
    }
    const granted = grantedScopes(requested, parseScopes(client.scope) ?? []);
    if (granted.length === 0) {
      return {
        error: 'invalid_scope',
        error_description: `None of the requested scopes is allowed for this client (at most: ${client.scope})`,
      };
    }
    const grantedText = granted.map(formatScope).join(' ');
    const issued = await this.tokens.accessToken(
      account,
      { amr: ['swk'], authTime: new Date(now * 1000) },
      {
        scope: grantedText,
        clientId: client.id,
        notAfter: now + Math.min(TOKEN_TTL_SECONDS, this.config.accessTokenTtl),
      },
    );
    return {
      access_token: issued.token,
      token_type: 'bearer',
      expires_in: issued.expiresIn,
      scope: grantedText,
    };
  }
}

/** Why an assertion failed, in words that hold nothing secret (jose's codes and claim names). */
function assertionFailure(error: unknown): string {
  if (error instanceof errors.JWKSNoMatchingKey) return 'no registered key has this kid and alg';
  if (error instanceof errors.JWSSignatureVerificationFailed)
    return 'the signature does not verify';
  if (error instanceof errors.JWTExpired) return 'it has expired';
  if (error instanceof errors.JOSEAlgNotAllowed) {
    return `alg must be one of ${ASSERTION_ALGORITHMS.join(', ')}`;
  }
  if (error instanceof errors.JWTClaimValidationFailed) {
    return `${error.claim} claim: ${error.reason === 'missing' ? 'missing' : 'unexpected value'}`;
  }
  return 'it cannot be verified';
}
