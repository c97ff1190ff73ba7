import { Injectable } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import type { DataSource } from 'typeorm';
import { UserEntity } from './user.entity.js';

/** All SQL for users. Writes go through save() of whole rows (the TOTP secret is encrypted). */
@Injectable()
export class UserRepository {
  constructor(@InjectDataSource() private readonly dataSource: DataSource) {}

  findByUsername(username: string): Promise<UserEntity | null> {
    return this.dataSource.manager.findOneBy(UserEntity, { username: username.toLowerCase() });
  }

  findById(id: string): Promise<UserEntity | null> {
    return this.dataSource.manager.findOneBy(UserEntity, { id });
  }

  list(): Promise<UserEntity[]> {
    return this.dataSource.manager.find(UserEntity, { order: { username: 'ASC' } });
  }

  async insert(user: UserEntity): Promise<void> {
    await this.dataSource.manager.insert(UserEntity, { ...user });
  }

  /**
   * Records a TOTP time step as used, unless it (or a later one) already was: one statement, so
   * two requests racing with the same code cannot both win.
   */
  async claimTotpStep(id: string, step: number): Promise<boolean> {
    const result = await this.dataSource.manager
      .createQueryBuilder()
      .update(UserEntity)
      .set({ totpLastStep: step })
      .where('id = :id AND (totp_last_step IS NULL OR totp_last_step < :step)', { id, step })
      .execute();
    return result.affected === 1;
  }

  async save(user: UserEntity): Promise<void> {
    await this.dataSource.manager.upsert(UserEntity, { ...user }, ['id']);
  }
}
