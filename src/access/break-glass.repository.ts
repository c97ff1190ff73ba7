import { Injectable } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { In, MoreThan, MoreThanOrEqual, type DataSource } from 'typeorm';
import { BreakGlassGrantEntity, BreakGlassUseEntity } from './break-glass.entity.js';

export interface GrantWithUses {
  grant: BreakGlassGrantEntity;
  uses: number;
}

/** All SQL for break-glass grants and their uses. */
@Injectable()
export class BreakGlassRepository {
  constructor(@InjectDataSource() private readonly dataSource: DataSource) {}

  async insertGrant(grant: BreakGlassGrantEntity): Promise<void> {
    await this.dataSource.manager.insert(BreakGlassGrantEntity, grant);
  }

  /** The user's unexpired grant for any of these patients, the latest-ending first. */
  findActive(
    userId: string,
    patientIds: string[],
    now: Date,
  ): Promise<BreakGlassGrantEntity | null> {
    return this.dataSource.manager.findOne(BreakGlassGrantEntity, {
      where: { userId, patientId: In(patientIds), expiresAt: MoreThan(now) },
      order: { expiresAt: 'DESC' },
    });
  }

  async insertUse(use: Omit<BreakGlassUseEntity, 'id'>): Promise<void> {
    await this.dataSource.manager.insert(BreakGlassUseEntity, use);
  }

  /** Grants created since a time, with how many restricted resources each opened. */
  async grantsSince(since: Date): Promise<GrantWithUses[]> {
    const grants = await this.dataSource.manager.find(BreakGlassGrantEntity, {
      where: { createdAt: MoreThanOrEqual(since) },
      order: { createdAt: 'ASC' },
    });
    if (grants.length === 0) {
      return [];
    }
    const counts: { grant_id: string; uses: number }[] = await this.dataSource.query(
      `SELECT grant_id, count(*)::int AS uses FROM break_glass_use WHERE grant_id = ANY($1) GROUP BY grant_id`,
      [grants.map((grant) => grant.id)],
    );
    const byGrant = new Map(counts.map((row) => [row.grant_id, row.uses]));
    return grants.map((grant) => ({ grant, uses: byGrant.get(grant.id) ?? 0 }));
  }
}
