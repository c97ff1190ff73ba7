import { Injectable, Logger } from '@nestjs/common';
import { ASSERTION_ALGORITHMS } from '../auth/backend-clients/client-keys.js';
import { ID_TOKEN_ALGORITHM } from '../auth/signing-keys.js';
import { AppConfig } from '../config/config.js';

/** The SMART App Launch 2.0 discovery document (`.well-known/smart-configuration`). */
export interface SmartDocument {
  issuer?: string;
  jwks_uri: string;
  authorization_endpoint?: string;
  token_endpoint: string;
  introspection_endpoint?: string;
  grant_types_supported: string[];
  token_endpoint_auth_methods_supported: string[];
  token_endpoint_auth_signing_alg_values_supported?: string[];
  code_challenge_methods_supported?: string[];
  response_types_supported?: string[];
  scopes_supported: string[];
  capabilities: string[];
}

/** What an OpenID Connect provider's own discovery document says, as far as SMART needs it. */
interface ProviderMetadata {
  issuer: string;
  authorization_endpoint?: string;
  token_endpoint?: string;
  introspection_endpoint?: string;
  jwks_uri?: string;
  grant_types_supported?: string[];
  code_challenge_methods_supported?: string[];
  token_endpoint_auth_methods_supported?: string[];
}

/**
 * Scopes CareVault's tokens honour (src/auth/smart-scopes.ts): SMART v1 (`.read`, `.write`) and
 * v2 (`.cruds` letters) resource scopes in patient and user context, for any type or one type
 * (`patient/Observation.rs`), `launch/patient` for a patient chosen at sign-in, and
 * `offline_access` or `online_access` for a refresh token. `system/` scopes are for backend
 * clients, which CareVault's own token endpoint serves.
 */
const SCOPES = [
  'patient/*.rs',
  'patient/*.cruds',
  'patient/*.read',
  'patient/*.write',
  'user/*.rs',
  'user/*.cruds',
  'user/*.read',
  'user/*.write',
  'launch/patient',
  'offline_access',
  'online_access',
];

const SYSTEM_SCOPES = ['system/*.rs', 'system/*.cruds', 'system/*.read', 'system/*.write'];

/** What CareVault itself offers, whoever issued the token. */
const BASE_CAPABILITIES = [
  'permission-v1',
  'permission-v2',
  'permission-patient',
  'permission-user',
  'permission-offline',
];

const PROVIDER_CACHE_MS = 5 * 60_000;
const PROVIDER_TIMEOUT_MS = 5_000;

/**
 * The SMART configuration, which the CapabilityStatement's security section repeats. Without
 * an identity provider, registered apps launch (standalone, or from an EHR front-end) at CareVault's own authorization
 * endpoint (authorization code with PKCE, src/smart/launch/), and registered backend clients
 * get tokens at the token endpoint (client_credentials with a signed assertion). With one
 * (OIDC_ISSUER), apps authorize there: its endpoints, grants and client authentication methods
 * are taken from its own discovery document, and its tokens are accepted here with their SMART
 * scopes.
 */
@Injectable()
export class SmartConfiguration {
  private readonly logger = new Logger('Smart');
  private provider: { metadata: Promise<ProviderMetadata | undefined>; at: number } | undefined;

  constructor(private readonly config: AppConfig) {}

  async document(origin: string): Promise<SmartDocument> {
    const own: SmartDocument = {
      // Required with sso-openid-connect (SMART 2.0): the `iss` of the id_tokens issued here.
      issuer: origin,
      jwks_uri: `${origin}/.well-known/jwks.json`,
      authorization_endpoint: `${origin}/auth/authorize`,
      token_endpoint: `${origin}/auth/token`,
      // RFC 7662, for CareVault's access tokens; the caller presents a bearer token of its own.
      introspection_endpoint: `${origin}/auth/introspect`,
      grant_types_supported: ['authorization_code', 'refresh_token', 'client_credentials'],
      // `none` for public apps (PKCE) and sessions; private_key_jwt for backend clients.
      token_endpoint_auth_methods_supported: ['none', 'private_key_jwt'],
      token_endpoint_auth_signing_alg_values_supported: [...ASSERTION_ALGORITHMS],
      code_challenge_methods_supported: ['S256'],
      response_types_supported: ['code'],
      scopes_supported: ['openid', 'fhirUser', 'launch', ...SCOPES, ...SYSTEM_SCOPES],
      capabilities: [
        'launch-ehr',
        'launch-standalone',
        // The authorization request may also be POSTed as a form (authorize.controller.ts).
        'authorize-post',
        'context-ehr-patient',
        'context-ehr-encounter',
        'context-standalone-patient',
        // Every launch with a patient in context gets need_patient_banner and smart_style_url
        // (authorization-codes.ts); an identity provider's launches do not, so they are ours alone.
        'context-banner',
        'context-style',
        'client-public',
        'client-confidential-asymmetric',
        'sso-openid-connect',
        ...BASE_CAPABILITIES,
      ],
    };
    const provider = this.config.oidc ? await this.providerMetadata() : undefined;
    if (!provider?.authorization_endpoint || !provider.token_endpoint) {
      return own;
    }
    const grants = (provider.grant_types_supported ?? ['authorization_code']).filter((grant) =>
      ['authorization_code', 'client_credentials', 'refresh_token'].includes(grant),
    );
    const methods = provider.token_endpoint_auth_methods_supported ?? ['client_secret_basic'];
    return {
      issuer: provider.issuer,
      jwks_uri: provider.jwks_uri ?? own.jwks_uri,
      authorization_endpoint: provider.authorization_endpoint,
      token_endpoint: provider.token_endpoint,
      // The provider's tokens are introspected at the provider, if it offers it.
      ...(provider.introspection_endpoint
        ? { introspection_endpoint: provider.introspection_endpoint }
        : {}),
      grant_types_supported: grants,
      token_endpoint_auth_methods_supported: methods,
      // SMART allows S256 only: a provider's `plain` is not passed on.
      code_challenge_methods_supported: (provider.code_challenge_methods_supported ?? []).filter(
        (method) => method === 'S256',
      ),
      response_types_supported: ['code'],
      scopes_supported: ['openid', 'fhirUser', ...SCOPES],
      capabilities: [
        ...(grants.includes('authorization_code') ? ['launch-standalone'] : []),
        ...(methods.includes('none') ? ['client-public'] : []),
        ...(methods.some((method) => method.startsWith('client_secret'))
          ? ['client-confidential-symmetric']
          : []),
        ...(methods.includes('private_key_jwt') ? ['client-confidential-asymmetric'] : []),
        'sso-openid-connect',
        ...BASE_CAPABILITIES,
      ],
    };
  }

  /**
   * CareVault's OpenID Connect discovery document, where an app verifying an id_token from the
   * authorization endpoint finds its issuer's keys (the id_token's `iss` is this origin).
   */
  openidConfiguration(origin: string): Record<string, unknown> {
    return {
      issuer: origin,
      authorization_endpoint: `${origin}/auth/authorize`,
      token_endpoint: `${origin}/auth/token`,
      introspection_endpoint: `${origin}/auth/introspect`,
      jwks_uri: `${origin}/.well-known/jwks.json`,
      response_types_supported: ['code'],
      grant_types_supported: ['authorization_code', 'refresh_token'],
      subject_types_supported: ['public'],
      id_token_signing_alg_values_supported: [ID_TOKEN_ALGORITHM],
      token_endpoint_auth_methods_supported: ['none'],
      code_challenge_methods_supported: ['S256'],
      scopes_supported: ['openid', 'fhirUser', 'launch', ...SCOPES],
      claims_supported: [
        'iss',
        'sub',
        'aud',
        'exp',
        'iat',
        'auth_time',
        'amr',
        'nonce',
        'fhirUser',
      ],
    };
  }

  /** The provider's discovery document, kept five minutes; undefined (and logged) when it fails. */
  private providerMetadata(): Promise<ProviderMetadata | undefined> {
    const now = Date.now();
    if (!this.provider || now - this.provider.at > PROVIDER_CACHE_MS) {
      this.provider = { metadata: this.fetchProvider(), at: now };
    }
    return this.provider.metadata;
  }

  private async fetchProvider(): Promise<ProviderMetadata | undefined> {
    const issuer = this.config.oidc!.issuer;
    try {
      const response = await fetch(
        `${issuer.replace(/\/$/, '')}/.well-known/openid-configuration`,
        {
          signal: AbortSignal.timeout(PROVIDER_TIMEOUT_MS),
        },
      );
      if (!response.ok) throw new Error(`HTTP ${response.status}`);
      const metadata = (await response.json()) as ProviderMetadata;
      if (metadata.issuer !== issuer) throw new Error('its issuer is not OIDC_ISSUER');
      return metadata;
    } catch (error) {
      this.logger.warn(
        { reason: (error as Error).message },
        "The identity provider's discovery document could not be read: SMART lists CareVault's own endpoints only",
      );
      // Asked again at the next request rather than in five minutes.
      this.provider = undefined;
      return undefined;
    }
  }
}

const OAUTH_URIS = 'http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris';

/**
 * The CapabilityStatement's `rest.security`: the same endpoints as the SMART document, in the
 * (deprecated but still read) oauth-uris extension, so that both always agree.
 */
export function restSecurity(smart: SmartDocument, cors: boolean): Record<string, unknown> {
  return {
    cors,
    service: [
      {
        coding: [
          {
            system: 'http://terminology.hl7.org/CodeSystem/restful-security-service',
            code: 'SMART-on-FHIR',
          },
        ],
      },
    ],
    description:
      'Bearer JWTs: from POST /auth/login (with MFA where enrolled), renewed at the token ' +
      'endpoint, narrowed to SMART scopes with POST /auth/token/scoped, issued to registered ' +
      'apps after sign-in at the authorization endpoint (authorization_code, PKCE S256) or to ' +
      'registered backend clients (client_credentials, private_key_jwt)' +
      (smart.issuer ? ', or issued by the identity provider' : '') +
      '. See .well-known/smart-configuration.',
    extension: [
      {
        url: OAUTH_URIS,
        extension: [
          ...(smart.authorization_endpoint
            ? [{ url: 'authorize', valueUri: smart.authorization_endpoint }]
            : []),
          { url: 'token', valueUri: smart.token_endpoint },
          ...(smart.introspection_endpoint
            ? [{ url: 'introspect', valueUri: smart.introspection_endpoint }]
            : []),
        ],
      },
    ],
  };
}
