import { Injectable } from '@nestjs/common';
import { randomUUID } from 'node:crypto';
import { AppError } from '../../common/errors/app-error.js';
import { isLoopback } from '../../common/http/loopback.js';
import { RefreshTokens } from '../refresh-tokens.js';
import { registeredAppScope } from './app-scopes.js';
import { SmartAppRepository, type SmartApp } from './smart-app.repository.js';

const NAME = /^[a-z0-9][a-z0-9._-]{1,63}$/;
/** A private-use scheme of a native app, in reverse domain order (RFC 8252 section 7.1). */
const PRIVATE_USE_SCHEME = /^[a-z][a-z0-9+-]*(\.[a-z0-9+-]+)+:$/;

export interface SmartAppSummary {
  id: string;
  name: string;
  redirectUris: string[];
  scope: string;
  active: boolean;
}

/** Registration of SMART apps (public clients of the authorization endpoint), for the admin CLI. */
@Injectable()
export class SmartAppsService {
  constructor(
    private readonly apps: SmartAppRepository,
    private readonly refreshTokens: RefreshTokens,
  ) {}

  async register(name: string, redirectUris: string[], scope: string): Promise<SmartAppSummary> {
    if (!NAME.test(name)) {
      throw AppError.invalid('name: 2 to 64 lower-case letters, digits, ".", "_" or "-"');
    }
    if (redirectUris.length === 0) throw AppError.invalid('At least one redirect URI is needed');
    redirectUris.forEach(assertRedirectUri);
    const granted = registeredAppScope(scope);
    if (await this.apps.findByName(name)) {
      throw AppError.of(409, 'duplicate', 'An app with this name exists');
    }
    const app: SmartApp = {
      id: randomUUID(),
      name,
      redirectUris: [...new Set(redirectUris)],
      scope: granted,
      active: true,
      createdAt: new Date(),
    };
    await this.apps.insert(app);
    return summary(app);
  }

  async list(): Promise<SmartAppSummary[]> {
    return (await this.apps.list()).map(summary);
  }

  /**
   * Refuses the app's further authorizations and codes, revokes its refresh tokens, and its
   * access tokens stop within seconds (ClientStatus): access ends when the authorization does
   * (164.312(a)(1)). A refresh racing the revocation is refused by its own check of the app's
   * state, made after its rotation. The Subscriptions written with its tokens stop, which the
   * Subscription notifier reads from the app's state.
   */
  async disable(name: string): Promise<SmartAppSummary> {
    const app = await this.apps.findByName(name);
    if (!app) throw AppError.notFound(`No app ${name}`);
    await this.apps.setActive(app.id, false);
    await this.refreshTokens.revokeAllOfApp(app.id);
    return summary({ ...app, active: false });
  }
}

/**
 * A redirect URI an authorization code may be sent to: https; http only to this machine (a
 * native app's loopback listener, RFC 8252 section 7.3); or a native app's private-use scheme.
 * Never with a fragment (RFC 6749 section 3.1.2).
 */
function assertRedirectUri(uri: string): void {
  let url: URL;
  try {
    url = new URL(uri);
  } catch {
    throw AppError.invalid(`Redirect URI ${uri} is not an absolute URI`);
  }
  const allowed =
    url.protocol === 'https:' ||
    (url.protocol === 'http:' && isLoopback(url.hostname)) ||
    PRIVATE_USE_SCHEME.test(url.protocol);
  if (!allowed || url.hash !== '' || uri.includes('#')) {
    throw AppError.invalid(
      `Redirect URI ${uri}: https, http on loopback (127.0.0.1, [::1], localhost) or a private-use scheme such as com.example.app:/callback, without a fragment`,
    );
  }
}

function summary(app: SmartApp): SmartAppSummary {
  return {
    id: app.id,
    name: app.name,
    redirectUris: app.redirectUris,
    scope: app.scope,
    active: app.active,
  };
}
