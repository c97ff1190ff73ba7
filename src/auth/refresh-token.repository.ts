import { Injectable } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { IsNull, type DataSource, type EntityManager } from 'typeorm';
import { RefreshTokenEntity } from './refresh-token.entity.js';

/** All SQL for refresh tokens. */
@Injectable()
export class RefreshTokenRepository {
  constructor(@InjectDataSource() private readonly dataSource: DataSource) {}

  /** Runs `work` in a transaction holding a lock on the presented token's row. */
  transactionOnToken<T>(
    tokenHash: string,
    work: (token: RefreshTokenEntity | null, manager: EntityManager) => Promise<T>,
  ): Promise<T> {
    return this.dataSource.transaction(async (manager) => {
      const token = await manager.findOne(RefreshTokenEntity, {
        where: { tokenHash },
        lock: { mode: 'pessimistic_write' },
      });
      return work(token, manager);
    });
  }

  async insert(
    token: RefreshTokenEntity,
    manager: EntityManager = this.dataSource.manager,
  ): Promise<void> {
    await manager.insert(RefreshTokenEntity, token);
  }

  async markUsed(id: string, at: Date, manager: EntityManager): Promise<void> {
    await manager.update(RefreshTokenEntity, { id }, { revokedAt: at });
  }

  async revokeFamily(
    familyId: string,
    at: Date,
    manager: EntityManager = this.dataSource.manager,
  ): Promise<void> {
    await manager.update(RefreshTokenEntity, { familyId, revokedAt: IsNull() }, { revokedAt: at });
  }

  /** Whether the family still has a token not used or revoked: its session goes on. */
  async isFamilyLive(familyId: string): Promise<boolean> {
    const rows = await this.dataSource.query<unknown[]>(
      `SELECT 1 FROM refresh_token WHERE family_id = $1 AND revoked_at IS NULL LIMIT 1`,
      [familyId],
    );
    return rows.length > 0;
  }

  async revokeAllOfApp(appId: string, at: Date): Promise<void> {
    await this.dataSource.manager.update(
      RefreshTokenEntity,
      { appId, revokedAt: IsNull() },
      { revokedAt: at },
    );
  }

  async revokeAllOfUser(userId: string, at: Date): Promise<void> {
    await this.dataSource.manager.update(
      RefreshTokenEntity,
      { userId, revokedAt: IsNull() },
      { revokedAt: at },
    );
  }
}
