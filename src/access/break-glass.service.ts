import { Injectable, Logger } from '@nestjs/common';
import { randomUUID } from 'node:crypto';
import { AuditContext } from '../audit/audit-context.js';
import type { AuthenticatedUser } from '../auth/authenticated-user.js';
import { mayUseAppPermission } from '../auth/permissions.js';
import { AppError } from '../common/errors/app-error.js';
import { AppConfig } from '../config/config.js';
import { isValidId } from '../fhir/fhir-types.js';
import type { BreakGlassGrantEntity } from './break-glass.entity.js';
import { BreakGlassRepository, type GrantWithUses } from './break-glass.repository.js';
import { PatientRepository } from './patient.repository.js';

export interface BreakGlassGrant {
  id: string;
  patient: string;
  expires_at: string;
}

/**
 * Emergency access (164.312(a)(2)(ii)): a user with a recent MFA opens one patient's restricted
 * records for a limited time, stating why. Every use is recorded and flagged.
 */
@Injectable()
export class BreakGlassService {
  private readonly logger = new Logger('BreakGlass');

  constructor(
    private readonly repository: BreakGlassRepository,
    private readonly patients: PatientRepository,
    private readonly config: AppConfig,
    private readonly audit: AuditContext,
  ) {}

  async grant(user: AuthenticatedUser, patient: string, reason: string): Promise<BreakGlassGrant> {
    if (!isValidId(patient)) {
      throw AppError.invalid('patient must be a Patient id', ['patient']);
    }
    // The grant, its audit row's patients and the review report keep the patient in plaintext:
    // an MRN typed in place of the id would sit there, so it must name a stored Patient.
    if (!(await this.patients.isStoredPatient(patient))) {
      throw AppError.of(
        404,
        'not-found',
        'patient must be the CareVault id of a stored Patient (not an MRN or other identifier)',
        ['patient'],
      );
    }
    const now = new Date();
    const grant: BreakGlassGrantEntity = {
      id: randomUUID(),
      userId: user.id,
      username: user.username,
      patientId: patient,
      reason,
      createdAt: now,
      expiresAt: new Date(now.getTime() + this.config.breakGlassMinutes * 60_000),
      sessionEpoch: user.sessionEpoch ?? 0,
    };
    this.audit.touchPatient(patient);
    this.audit.markBreakGlass();
    await this.repository.insertGrant(grant);
    // Ids only: the reason is free text and may hold PHI.
    this.logger.warn({ msg: 'Break-glass access granted', grantId: grant.id, userId: user.id });
    return { id: grant.id, patient, expires_at: grant.expiresAt.toISOString() };
  }

  /**
   * The grants that open a restricted resource of these patients to the user: one for each of
   * them, or none. A grant opens one patient's records: a record about several (an Observation
   * of one whose performer is another) opens only when the user broke the glass for each, or
   * the grant for one patient would open the other's.
   */
  async active(
    user: AuthenticatedUser,
    patientIds: string[],
  ): Promise<BreakGlassGrantEntity[] | null> {
    // Break-glass is a person's act, with a reason, for what they read themselves: a token that
    // may not open a grant (a SMART app's, an exchanged one) reads nothing under its person's.
    if (patientIds.length === 0 || !mayUseAppPermission(user, 'break-glass')) return null;
    const byPatient = new Map<string, BreakGlassGrantEntity>();
    // Only a grant of the token's session epoch: one opened before a disable, a new password or
    // an MFA reset (a stolen device, a departed user) would outlive the sessions it came from.
    // The token's epoch is the account's current one, or the token was refused (AccountStatus).
    const epoch = user.sessionEpoch ?? 0;
    for (const grant of await this.repository.findActive(user.id, patientIds, epoch, new Date())) {
      if (!byPatient.has(grant.patientId)) byPatient.set(grant.patientId, grant);
    }
    return patientIds.every((id) => byPatient.has(id)) ? [...byPatient.values()] : null;
  }

  async recordUse(
    grant: BreakGlassGrantEntity,
    resourceType: string,
    resourceId: string,
    interaction: string,
  ): Promise<void> {
    await this.repository.insertUse({
      grantId: grant.id,
      resourceType,
      resourceId,
      interaction,
      at: new Date(),
    });
    this.logger.warn({
      msg: 'Break-glass access used',
      grantId: grant.id,
      userId: grant.userId,
      resourceType,
      resourceId,
      interaction,
    });
  }

  report(since: Date): Promise<GrantWithUses[]> {
    return this.repository.grantsSince(since);
  }
}
