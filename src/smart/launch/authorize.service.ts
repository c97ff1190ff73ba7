import { Injectable } from '@nestjs/common';
import { AuthorizationCodes } from '../../auth/apps/authorization-codes.js';
import { SmartAppRepository, type SmartApp } from '../../auth/apps/smart-app.repository.js';
import { AuthService } from '../../auth/auth.service.js';
import type { AuthenticatedUser } from '../../auth/authenticated-user.js';
import { mayUseFhir } from '../../auth/permissions.js';
import { AppError } from '../../common/errors/app-error.js';
import { isUuid } from '../../common/ids.js';
import { ClientSealer, type SealPurpose } from '../../crypto/client-sealer.js';
import { FhirService } from '../../fhir/fhir.service.js';
import { isValidId } from '../../fhir/fhir-types.js';
import { SearchService } from '../../fhir/search/search.service.js';
import { checkAuthorizationRequest, single } from './authorization-request.js';
import { errorPage, signInPage } from './authorize-page.js';
import { LaunchContexts } from './launch-contexts.js';

/** How long the sign-in page may stay open. */
const PAGE_TTL_MS = 10 * 60_000;
const SEAL: SealPurpose = ['smart-authorize-request'];

/** What the authorization endpoint answers: a page, or a redirect back to the app. */
export type AuthorizeOutcome =
  { page: string; status: number; formAction?: string } | { redirect: string };

/** A validated authorization request, sealed into the sign-in form. */
interface PendingRequest {
  appId: string;
  redirectUri: string;
  /** The scope that will be granted. */
  scope: string;
  state: string;
  codeChallenge: string;
  nonce?: string;
  /** An EHR launch's context: the patient (and encounter) the user opened the app on. */
  launch?: { userId: string; sessionEpoch: number; patient: string; encounter?: string };
  expiresAt: number;
}

/**
 * SMART App Launch's authorization endpoint (standalone launch) for registered public apps:
 * checks the request (the app, its exact redirect URI, `aud`, PKCE S256, `state`), asks the
 * user to sign in (password, and MFA code where enrolled) and, for `launch/patient` or
 * `patient/` scopes, to name the patient, then sends a one-time code back to the app. Until the
 * app and redirect URI are known to be registered, errors are shown, never redirected (RFC 6749
 * section 4.1.2.1): CareVault is no open redirector.
 */
@Injectable()
export class AuthorizeService {
  constructor(
    private readonly apps: SmartAppRepository,
    private readonly codes: AuthorizationCodes,
    private readonly auth: AuthService,
    private readonly fhir: FhirService,
    private readonly search: SearchService,
    private readonly sealer: ClientSealer,
    private readonly launches: LaunchContexts,
  ) {}

  async begin(query: Record<string, unknown>, fhirBase: string): Promise<AuthorizeOutcome> {
    const clientId = single(query, 'client_id');
    const redirectUri = single(query, 'redirect_uri');
    const app = typeof clientId === 'string' ? await this.findApp(clientId) : undefined;
    if (!app) return shown('Unknown or disabled app (client_id)');
    if (typeof redirectUri !== 'string' || !app.redirectUris.includes(redirectUri)) {
      return shown('redirect_uri is not one registered for this app');
    }
    const checked = checkAuthorizationRequest(query, app.scope, fhirBase);
    const back = (error: string, description: string, state?: string): AuthorizeOutcome => ({
      redirect: withParams(redirectUri, {
        error,
        error_description: description,
        ...(state !== undefined ? { state } : {}),
      }),
    });
    if ('error' in checked) return back(checked.error, checked.description, checked.state);
    const { launch, ...request } = checked;
    const context = launch !== undefined ? this.launches.open(launch, app.id) : undefined;
    if (launch !== undefined && !context) {
      return back(
        'invalid_request',
        'launch is not valid for this app, or has expired: open the app from the EHR again',
        checked.state,
      );
    }
    return this.signIn(app, {
      appId: app.id,
      redirectUri,
      ...request,
      ...(context
        ? {
            launch: {
              userId: context.userId,
              sessionEpoch: context.sessionEpoch,
              patient: context.patient,
              ...(context.encounter ? { encounter: context.encounter } : {}),
            },
          }
        : {}),
      expiresAt: Date.now() + PAGE_TTL_MS,
    });
  }

  async submit(body: Record<string, unknown>): Promise<AuthorizeOutcome> {
    const field = (name: string): string | undefined =>
      typeof body[name] === 'string' ? body[name] : undefined;
    const pending = this.unseal(field('request'));
    const app = pending && (await this.findApp(pending.appId));
    if (!pending || !app || !app.redirectUris.includes(pending.redirectUri)) {
      return shown('This sign-in page has expired or is not valid');
    }
    const back = (params: Record<string, string>): AuthorizeOutcome => ({
      redirect: withParams(pending.redirectUri, { ...params, state: pending.state }),
    });
    if (field('decision') === 'deny') {
      return back({ error: 'access_denied', error_description: 'The user denied access' });
    }
    const username = field('username') ?? '';
    try {
      const { user, login } = await this.auth.authenticate(
        username,
        field('password') ?? '',
        field('code') || undefined,
      );
      const actor: AuthenticatedUser = {
        id: user.id,
        username: user.username,
        roles: [...user.roles],
        amr: login.amr,
        authTime: Math.floor(login.authTime.getTime() / 1000),
      };
      const patient = pending.launch
        ? await this.launchPatient(actor, user.sessionEpoch, pending.launch)
        : needsPatient(pending.scope)
          ? await this.patientOf(actor, field('patient') ?? '')
          : undefined;
      // fhirUser is granted only to name a FHIR identity the account has.
      const scope = user.fhirUser
        ? pending.scope
        : pending.scope
            .split(' ')
            .filter((item) => item !== 'fhirUser')
            .join(' ');
      const code = await this.codes.issue({
        appId: app.id,
        userId: user.id,
        sessionEpoch: user.sessionEpoch,
        login,
        redirectUri: pending.redirectUri,
        scope,
        ...(patient ? { patient } : {}),
        ...(pending.launch?.encounter ? { encounter: pending.launch.encounter } : {}),
        codeChallenge: pending.codeChallenge,
        ...(pending.nonce ? { nonce: pending.nonce } : {}),
      });
      return back({ code });
    } catch (error) {
      if (!(error instanceof AppError) || error.status >= 500) throw error;
      return this.signIn(app, pending, error.message, username, error.status);
    }
  }

  /**
   * An EHR launch's patient, for the user who opened it only, in the session epoch it was opened
   * in, read as them (access rules, and the audit row names the patient).
   */
  private async launchPatient(
    user: AuthenticatedUser,
    sessionEpoch: number,
    launch: NonNullable<PendingRequest['launch']>,
  ): Promise<string> {
    if (user.id !== launch.userId) {
      throw AppError.forbidden(
        'This app was opened from the EHR by another user: sign in as that user',
      );
    }
    // The launch was opened with a token of the account; once its sessions have ended (a
    // disable, a new password, an MFA reset, new roles), what that token opened is over too.
    if (sessionEpoch !== launch.sessionEpoch) {
      throw AppError.forbidden(
        "This app was opened from the EHR before the account's sessions ended: open it again",
      );
    }
    return (await this.fhir.read(user, 'Patient', launch.patient)).id;
  }

  /**
   * The patient named on the form, which the user must be allowed to read: by CareVault id, or
   * by an identifier (`value`, or `system|value`) that only one patient has.
   */
  private async patientOf(user: AuthenticatedUser, given: string): Promise<string> {
    const value = given.trim();
    if (value === '') throw AppError.invalid('Name the patient the app will be used for');
    // The reads below apply compartments and restrictions, not the role matrix (the guards'):
    // an administrator or auditor learned until 2026-12-06 whether an MRN was a patient here,
    // and its id, as an EHR launch refuses them before any look-up.
    if (!mayUseFhir(user, 'Patient', 'read') || !mayUseFhir(user, 'Patient', 'search')) {
      throw AppError.forbidden(
        'Your role may not read patients, so it cannot open an app on one: sign in as a clinician',
      );
    }
    if (isValidId(value)) {
      try {
        return (await this.fhir.read(user, 'Patient', value)).id;
      } catch (error) {
        if (!(error instanceof AppError) || error.status !== 404) throw error;
      }
    }
    const ids = await this.search.matchingIds(
      user,
      'Patient',
      `identifier=${encodeURIComponent(value)}`,
      2,
      false,
    );
    if (ids.length > 1) {
      throw AppError.invalid(
        'Several patients have this identifier: give its system too (system|value), or the CareVault id',
      );
    }
    if (ids.length === 0) {
      throw AppError.notFound('No patient you may see has this id or identifier');
    }
    // Read as the user: the access rules apply and the audit row names the patient.
    return (await this.fhir.read(user, 'Patient', ids[0]!)).id;
  }

  private signIn(
    app: SmartApp,
    pending: PendingRequest,
    error?: string,
    username?: string,
    status = 200,
  ): AuthorizeOutcome {
    return {
      status,
      formAction: formActionOf(pending.redirectUri),
      page: signInPage({
        appName: app.name,
        scopes: pending.scope.split(' '),
        needsPatient: !pending.launch && needsPatient(pending.scope),
        request: this.sealer.seal(JSON.stringify(pending), SEAL),
        ...(username ? { username } : {}),
        ...(error ? { error } : {}),
      }),
    };
  }

  private async findApp(id: string): Promise<SmartApp | undefined> {
    if (!isUuid(id)) return undefined;
    const app = await this.apps.findById(id);
    return app?.active ? app : undefined;
  }

  private unseal(sealed: string | undefined): PendingRequest | undefined {
    if (!sealed) return undefined;
    try {
      const pending = JSON.parse(this.sealer.open(sealed, SEAL)) as PendingRequest;
      return pending.expiresAt > Date.now() ? pending : undefined;
    } catch {
      return undefined;
    }
  }
}

function shown(message: string): AuthorizeOutcome {
  return { page: errorPage(message), status: 400 };
}

function needsPatient(scope: string): boolean {
  return scope.split(' ').some((item) => item === 'launch/patient' || item.startsWith('patient/'));
}

function withParams(uri: string, params: Record<string, string>): string {
  const url = new URL(uri);
  for (const [name, value] of Object.entries(params)) url.searchParams.set(name, value);
  return url.toString();
}

/**
 * The CSP form-action source of the redirect URI: browsers apply form-action to the redirect a
 * form's submission is answered with.
 */
function formActionOf(redirectUri: string): string {
  const url = new URL(redirectUri);
  return url.protocol === 'https:' || url.protocol === 'http:' ? url.origin : url.protocol;
}
