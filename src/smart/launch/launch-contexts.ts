import { Injectable } from '@nestjs/common';
import { SmartAppRepository } from '../../auth/apps/smart-app.repository.js';
import type { AuthenticatedUser } from '../../auth/authenticated-user.js';
import { mayUseFhir } from '../../auth/permissions.js';
import { AppError } from '../../common/errors/app-error.js';
import { isUuid } from '../../common/ids.js';
import { ClientSealer, type SealPurpose } from '../../crypto/client-sealer.js';
import { FhirService } from '../../fhir/fhir.service.js';

/** An EHR launch is used at once: the app is opened with it. */
const LAUNCH_TTL_SECONDS = 300;
const SEAL: SealPurpose = ['smart-launch'];

/** What an EHR front-end opened an app with: who, for which app, which patient and encounter. */
export interface LaunchContext {
  userId: string;
  /**
   * The account's session epoch when the launch was opened (its token's): a disable, a new
   * password, an MFA reset or new roles end the launches opened before, as they end its tokens.
   */
  sessionEpoch: number;
  appId: string;
  patient: string;
  encounter?: string;
  expiresAt: number;
}

/**
 * SMART EHR launch for front-ends built on CareVault: the front-end, signed in as its user, asks
 * for a `launch` value naming the patient (and encounter) open on screen, and opens the app's
 * launch URL with it; the app sends it to the authorization endpoint, which takes the patient
 * from it. The value is sealed (AES-GCM, five minutes), bound to the user and the app, so it
 * neither reveals nor lets anyone change the context, and only that user signing in uses it.
 */
@Injectable()
export class LaunchContexts {
  constructor(
    private readonly apps: SmartAppRepository,
    private readonly fhir: FhirService,
    private readonly sealer: ClientSealer,
  ) {}

  async create(
    user: AuthenticatedUser,
    request: { clientId: string; patient: string; encounter?: string },
  ): Promise<{ launch: string; expires_in: number }> {
    if (user.scopes !== undefined || user.clientId !== undefined) {
      throw AppError.forbidden("An EHR launch is opened with a person's own CareVault token");
    }
    const app = isUuid(request.clientId) ? await this.apps.findById(request.clientId) : undefined;
    if (!app?.active || !app.scope.split(' ').includes('launch')) {
      throw AppError.invalid('client_id: an active app registered for the launch scope', [
        'client_id',
      ]);
    }
    // Read as the user: they must be allowed to see what they open the app on. A role that may
    // not read the record is refused before it is looked up: its 404, 410 or "not this
    // patient's" answered whether an id was stored, deleted, or whose an encounter was.
    const types = ['Patient', ...(request.encounter !== undefined ? ['Encounter'] : [])];
    if (!types.every((type) => mayUseFhir(user, type, 'read'))) {
      throw AppError.forbidden(
        `An EHR launch is opened by a user who may read the ${types.join(' and ')} it names`,
      );
    }
    await this.fhir.read(user, 'Patient', request.patient);
    if (request.encounter !== undefined) {
      const encounter = (await this.fhir.read(user, 'Encounter', request.encounter)).resource;
      const subject = (encounter['subject'] as { reference?: unknown } | undefined)?.reference;
      if (subject !== `Patient/${request.patient}`) {
        throw AppError.invalid('The encounter is not one of this patient', ['encounter']);
      }
    }
    const context: LaunchContext = {
      userId: user.id,
      sessionEpoch: user.sessionEpoch ?? 0,
      appId: app.id,
      patient: request.patient,
      ...(request.encounter !== undefined ? { encounter: request.encounter } : {}),
      expiresAt: Date.now() + LAUNCH_TTL_SECONDS * 1000,
    };
    return {
      launch: this.sealer.seal(JSON.stringify(context), SEAL),
      expires_in: LAUNCH_TTL_SECONDS,
    };
  }

  /** The context of a launch value for this app; undefined when altered, expired or another app's. */
  open(launch: string, appId: string): LaunchContext | undefined {
    try {
      const context = JSON.parse(this.sealer.open(launch, SEAL)) as LaunchContext;
      return context.appId === appId && context.expiresAt > Date.now() ? context : undefined;
    } catch {
      return undefined;
    }
  }
}
