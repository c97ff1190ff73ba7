import { Injectable } from '@nestjs/common';
import { In, MoreThan, MoreThanOrEqual } from 'typeorm';
import { UnitOfWork } from '../database/unit-of-work.js';
import { BreakGlassGrantEntity, BreakGlassUseEntity } from './break-glass.entity.js';

export interface GrantWithUses {
  grant: BreakGlassGrantEntity;
  uses: number;
  /**
   * The account's session epoch now; undefined for an external identity's (`oidc:<sub>`, whose
   * grants are of epoch 0 for good). Past the grant's, the grant ended with those sessions.
   */
  accountEpoch?: number;
}

/**
 * All SQL for break-glass grants and their uses, in the request's unit of work: a grant, or a
 * recorded use during a write, commits with the request's audit row.
 */
@Injectable()
export class BreakGlassRepository {
  constructor(private readonly unitOfWork: UnitOfWork) {}

  async insertGrant(grant: BreakGlassGrantEntity): Promise<void> {
    await this.unitOfWork.manager.insert(BreakGlassGrantEntity, grant);
  }

  /**
   * The user's grants of this session epoch for any of the patients still running, the
   * longest-running first.
   */
  findActive(
    userId: string,
    patientIds: string[],
    sessionEpoch: number,
    now: Date,
  ): Promise<BreakGlassGrantEntity[]> {
    return this.unitOfWork.manager.find(BreakGlassGrantEntity, {
      where: { userId, patientId: In(patientIds), sessionEpoch, expiresAt: MoreThan(now) },
      order: { expiresAt: 'DESC' },
    });
  }

  async insertUse(use: Omit<BreakGlassUseEntity, 'id'>): Promise<void> {
    await this.unitOfWork.manager.insert(BreakGlassUseEntity, use);
  }

  /** Grants created since a time, with how many restricted resources each opened. */
  async grantsSince(since: Date): Promise<GrantWithUses[]> {
    const grants = await this.unitOfWork.manager.find(BreakGlassGrantEntity, {
      where: { createdAt: MoreThanOrEqual(since) },
      order: { createdAt: 'ASC' },
    });
    if (grants.length === 0) {
      return [];
    }
    const counts = await this.unitOfWork.manager.query<{ grant_id: string; uses: number }[]>(
      `SELECT grant_id, count(*)::int AS uses FROM break_glass_use WHERE grant_id = ANY($1) GROUP BY grant_id`,
      [grants.map((grant) => grant.id)],
    );
    const byGrant = new Map(counts.map((row) => [row.grant_id, row.uses]));
    const accounts = await this.unitOfWork.manager.query<{ id: string; session_epoch: number }[]>(
      'SELECT id::text AS id, session_epoch FROM app_user WHERE id::text = ANY($1)',
      [[...new Set(grants.map((grant) => grant.userId))]],
    );
    const epochs = new Map(accounts.map((row) => [row.id, row.session_epoch]));
    return grants.map((grant) => {
      const accountEpoch = epochs.get(grant.userId);
      return {
        grant,
        uses: byGrant.get(grant.id) ?? 0,
        ...(accountEpoch === undefined ? {} : { accountEpoch }),
      };
    });
  }
}
