import { SetMetadata } from '@nestjs/common';
import type { AppPermission, FhirInteraction as Interaction } from './permissions.js';

export const PUBLIC_KEY = 'carevault:public';
export const FHIR_INTERACTION_KEY = 'carevault:fhir-interaction';
export const APP_PERMISSION_KEY = 'carevault:app-permission';
export const STEP_UP_KEY = 'carevault:step-up';

/** No token needed: health, discovery documents, login. */
export const Public = (): MethodDecorator & ClassDecorator => SetMetadata(PUBLIC_KEY, true);

/** A FHIR interaction on the resource type named by the route's `:type` parameter. */
export const FhirInteraction = (interaction: Interaction): MethodDecorator =>
  SetMetadata(FHIR_INTERACTION_KEY, interaction);

export const RequirePermission = (permission: AppPermission): MethodDecorator =>
  SetMetadata(APP_PERMISSION_KEY, permission);

/** The token's MFA must be recent (amr contains otp, auth_time within 5 minutes). */
export const RequireRecentMfa = (): MethodDecorator => SetMetadata(STEP_UP_KEY, true);
