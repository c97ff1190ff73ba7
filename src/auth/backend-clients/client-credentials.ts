import { Injectable, Logger } from '@nestjs/common';
import {
  createLocalJWKSet,
  createRemoteJWKSet,
  decodeJwt,
  decodeProtectedHeader,
  errors,
  jwtVerify,
  type JWTPayload,
  type JWTVerifyGetKey,
} from 'jose';
import { AuditContext } from '../../audit/audit-context.js';
import { isUuid } from '../../common/ids.js';
import { AppConfig } from '../../config/config.js';
import type { OAuthError } from '../dto.js';
import { formatScope, grantedScopes, parseScopes } from '../smart-scopes.js';
import { TokenService } from '../token.service.js';
import { UserRepository } from '../user.repository.js';
import { BackendClientRepository, type BackendClient } from './backend-client.repository.js';
import { PERSON_ROLES } from './backend-clients.service.js';
import { ASSERTION_ALGORITHMS } from './client-keys.js';

export const JWT_BEARER = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';

/** SMART: an assertion expires no more than five minutes after it is made. */
const MAX_ASSERTION_LIFETIME_SECONDS = 300;
/** Clocks of the client and the server may differ this much. */
const CLOCK_TOLERANCE_SECONDS = 30;
/** SMART recommends backend tokens of five minutes at most. */
const TOKEN_TTL_SECONDS = 300;
const JWKS_TIMEOUT_MS = 5_000;
/** A kid it does not know sends CareVault to the client's JWKS URL at most this often. */
const JWKS_COOLDOWN_MS = 2_000;
const JWKS_MAX_AGE_MS = 10 * 60_000;

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
  /** Published key sets by client, with the URL they came from. */
  private readonly remoteKeys = new Map<string, { url: string; keys: JWTVerifyGetKey }>();

  constructor(
    private readonly clients: BackendClientRepository,
    private readonly users: UserRepository,
    private readonly tokens: TokenService,
    private readonly audit: AuditContext,
    private readonly config: AppConfig,
  ) {}

  /**
   * The keys an assertion is verified with: the registered JWKS, or the one the client
   * publishes, fetched when first needed, kept ten minutes, and fetched again (at most every
   * few seconds) when an assertion names a key it does not hold: that is how a client rotates.
   */
  private keysOf(client: BackendClient): JWTVerifyGetKey {
    if (client.jwks) return createLocalJWKSet(client.jwks);
    const cached = this.remoteKeys.get(client.id);
    if (cached?.url === client.jwksUrl) return cached.keys;
    const keys = createRemoteJWKSet(new URL(client.jwksUrl!), {
      timeoutDuration: JWKS_TIMEOUT_MS,
      cooldownDuration: JWKS_COOLDOWN_MS,
      cacheMaxAge: JWKS_MAX_AGE_MS,
    });
    this.remoteKeys.set(client.id, { url: client.jwksUrl!, keys });
    return keys;
  }

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
    if (['jwk', 'x5u', 'x5c'].some((member) => member in header)) {
      return invalidClient(
        "client_assertion names keys of its own (jwk, x5u, x5c): the client's registered keys are used",
      );
    }
    if (typeof header.kid !== 'string') return invalidClient('client_assertion needs a kid');
    const clientId = unverified.iss;
    if (typeof clientId !== 'string' || !isUuid(clientId) || unverified.sub !== clientId) {
      return invalidClient('client_assertion: iss and sub must both be the client id');
    }
    // RFC 7521 4.2: a client_id sent beside the assertion must name the same client.
    const named = fields['client_id'];
    if (named !== undefined && named !== '' && named !== clientId) {
      return invalidClient('client_id names another client than the client_assertion');
    }
    const client = await this.clients.findById(clientId);
    const account = client && (await this.users.findById(client.userId));
    if (!client || !account) return invalidClient('Unknown client');
    this.audit.setActor({
      id: account.id,
      name: account.username,
      roles: [...account.roles],
      clientId: client.id,
    });
    if (header.jku !== undefined && header.jku !== client.jwksUrl) {
      // SMART: a jku must be the JWKS URL the client registered; keys are never fetched from elsewhere.
      return invalidClient('client_assertion: jku is not the JWKS URL registered for this client');
    }

    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(assertion, this.keysOf(client), {
        algorithms: [...ASSERTION_ALGORITHMS],
        issuer: clientId,
        subject: clientId,
        audience: tokenUrl,
        requiredClaims: ['exp', 'jti'],
        clockTolerance: CLOCK_TOLERANCE_SECONDS,
      }));
    } catch (error) {
      return invalidClient(`client_assertion: ${assertionFailure(error, client.jwksUrl)}`);
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
function assertionFailure(error: unknown, jwksUrl: string | null): string {
  if (error instanceof errors.JWKSTimeout) return "the client's JWKS URL did not answer in time";
  if (error instanceof errors.JWKSInvalid) return "the client's JWKS URL does not serve a JWKS";
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
  return jwksUrl !== null && !(error instanceof errors.JOSEError)
    ? "the client's JWKS URL could not be read"
    : 'it cannot be verified';
}
