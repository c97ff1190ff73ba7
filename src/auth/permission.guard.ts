import { CanActivate, ExecutionContext, Injectable, Logger } from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import type { FastifyRequest } from 'fastify';
import { AppError } from '../common/errors/app-error.js';
import { hasRecentStepUp, type AuthenticatedUser } from './authenticated-user.js';
import {
  APP_PERMISSION_KEY,
  FHIR_INTERACTION_KEY,
  FHIR_TYPE_KEY,
  PUBLIC_KEY,
  STEP_UP_KEY,
} from './permission.decorators.js';
import {
  mayUseAppPermission,
  mayUseFhir,
  type AppPermission,
  type FhirInteraction,
} from './permissions.js';

/**
 * Enforces the permission matrix on every route, after authentication. A route that declares
 * no permission is denied, so a new endpoint is closed until someone decides who may use it.
 */
@Injectable()
export class PermissionGuard implements CanActivate {
  private readonly logger = new Logger('PermissionGuard');

  constructor(private readonly reflector: Reflector) {}

  canActivate(context: ExecutionContext): boolean {
    const targets = [context.getHandler(), context.getClass()];
    if (this.reflector.getAllAndOverride<boolean>(PUBLIC_KEY, targets)) {
      return true;
    }
    const request = context
      .switchToHttp()
      .getRequest<FastifyRequest & { user?: AuthenticatedUser }>();
    const user = request.user;
    if (!user) {
      throw AppError.forbidden('Access denied');
    }
    const interaction = this.reflector.get<FhirInteraction | undefined>(
      FHIR_INTERACTION_KEY,
      context.getHandler(),
    );
    const permission = this.reflector.get<AppPermission | undefined>(
      APP_PERMISSION_KEY,
      context.getHandler(),
    );
    let allowed: boolean;
    if (interaction) {
      const type =
        (request.params as Record<string, string | undefined>)['type'] ??
        this.reflector.get<string | undefined>(FHIR_TYPE_KEY, context.getHandler()) ??
        '';
      // A token's SMART scopes narrow its roles' rights, never widen them. A FHIR route that
      // names no type is a programming error: '*' rules must not match it.
      allowed = type !== '' && mayUseFhir(user, type, interaction);
    } else if (permission) {
      allowed = mayUseAppPermission(user, permission);
    } else {
      this.logger.error(
        `Route ${context.getClass().name}.${context.getHandler().name} declares no permission: denied`,
      );
      allowed = false;
    }
    if (!allowed) {
      throw AppError.forbidden('Access denied');
    }
    if (this.reflector.get<boolean>(STEP_UP_KEY, context.getHandler()) && !hasRecentStepUp(user)) {
      throw AppError.of(
        403,
        'security',
        'This operation needs a login with MFA in the last 5 minutes',
      );
    }
    return true;
  }
}
