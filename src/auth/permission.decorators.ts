import { SetMetadata } from '@nestjs/common';
import type { AppPermission, FhirInteraction as Interaction } from './permissions.js';

export const PUBLIC_KEY = 'carevault:public';
export const FHIR_INTERACTION_KEY = 'carevault:fhir-interaction';
export const APP_PERMISSION_KEY = 'carevault:app-permission';
export const STEP_UP_KEY = 'carevault:step-up';

/** No token needed: health, discovery documents, login. */
export const Public = (): MethodDecorator & ClassDecorator => SetMetadata(PUBLIC_KEY, true);

export const FHIR_TYPE_KEY = 'carevault:fhir-type';

/**
 * A FHIR interaction on the resource type named by the route's `:type` parameter, or on `type`
 * for a route about one type (`Patient/{id}/$everything`).
 */
export const FhirInteraction =
  (interaction: Interaction, type?: string): MethodDecorator =>
  (target, key, descriptor) => {
    SetMetadata(FHIR_INTERACTION_KEY, interaction)(target, key, descriptor);
    if (type) SetMetadata(FHIR_TYPE_KEY, type)(target, key, descriptor);
  };

export const RequirePermission = (permission: AppPermission): MethodDecorator =>
  SetMetadata(APP_PERMISSION_KEY, permission);

/** The token's MFA must be recent (amr contains otp, auth_time within 5 minutes). */
export const RequireRecentMfa = (): MethodDecorator => SetMetadata(STEP_UP_KEY, true);
