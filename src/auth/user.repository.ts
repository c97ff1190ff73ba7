import { Injectable } from '@nestjs/common';
import type { EntityManager } from 'typeorm';
import { UnitOfWork } from '../database/unit-of-work.js';
import { spendOnce } from './spent-ids.js';
import { UserEntity } from './user.entity.js';

/** What decides whether an account's access tokens still work. */
export interface AccountState {
  active: boolean;
  sessionEpoch: number;
}

/**
 * All SQL for users, in the unit of work under way if there is one. Writes name the columns they
 * change and nothing else: a login reads the row, then spends the Argon2 time, and writing the
 * whole row back then would undo what an administrator did meanwhile (a disable, an MFA reset).
 */
@Injectable()
export class UserRepository {
  constructor(private readonly unitOfWork: UnitOfWork) {}

  private get manager(): EntityManager {
    return this.unitOfWork.manager;
  }

  findByUsername(username: string): Promise<UserEntity | null> {
    return this.manager.findOneBy(UserEntity, { username: username.toLowerCase() });
  }

  findById(id: string): Promise<UserEntity | null> {
    return this.manager.findOneBy(UserEntity, { id });
  }

  /** The account's state alone, by primary key: read for authenticated requests (AccountStatus). */
  async findState(id: string): Promise<AccountState | null> {
    const rows = await this.manager.query<{ active: boolean; session_epoch: number }[]>(
      'SELECT active, session_epoch FROM app_user WHERE id = $1',
      [id],
    );
    return rows[0] ? { active: rows[0].active, sessionEpoch: rows[0].session_epoch } : null;
  }

  /**
   * The user, locked FOR UPDATE until the unit of work ends (call it inside UnitOfWork.run): a
   * check of the row and the change it allows, with no other change of the row in between.
   */
  findByIdForUpdate(id: string): Promise<UserEntity | null> {
    return this.manager.findOne(UserEntity, {
      where: { id },
      lock: { mode: 'pessimistic_write' },
    });
  }

  list(): Promise<UserEntity[]> {
    return this.manager.find(UserEntity, { order: { username: 'ASC' } });
  }

  async insert(user: UserEntity): Promise<void> {
    await this.manager.insert(UserEntity, { ...user });
  }

  /**
   * Records a TOTP time step as used, unless it (or a later one) already was: one statement, so
   * two requests racing with the same code cannot both win.
   */
  async claimTotpStep(id: string, step: number): Promise<boolean> {
    const result = await this.manager
      .createQueryBuilder()
      .update(UserEntity)
      .set({ totpLastStep: step })
      .where('id = :id AND (totp_last_step IS NULL OR totp_last_step < :step)', { id, step })
      .execute();
    return result.affected === 1;
  }

  /** Records an MFA token (its `jti`) as exchanged until it expires; false when it already was. */
  spendMfaToken(id: string, jti: string, expiresAt: Date): Promise<boolean> {
    return spendOnce(this.manager, 'spent_mfa_token', id, jti, expiresAt);
  }

  /** Sets these columns of the user's row only (with the id, which the TOTP secret is bound to). */
  async update(id: string, changes: Partial<Omit<UserEntity, 'id'>>): Promise<void> {
    await this.manager.update(UserEntity, { id }, { id, ...changes });
  }

  /**
   * Sets these columns and moves the account to its next session epoch, in one statement: every
   * refresh token and authorization code issued before is refused from then on, including one
   * that a sign-in racing this change inserts after the tokens were revoked.
   */
  async endSessions(
    id: string,
    changes: Partial<Omit<UserEntity, 'id' | 'sessionEpoch'>>,
  ): Promise<void> {
    await this.manager.update(
      UserEntity,
      { id },
      { id, ...changes, sessionEpoch: () => 'session_epoch + 1' },
    );
  }

  /**
   * Counts a failed password in one statement, so that failures racing each other all count.
   * From `maxAttempts` on the account locks from `now`, for `lockoutSeconds` doubled with each
   * further failure, a day at most. Returns the new count, or undefined for no such user.
   */
  async recordFailedLogin(
    id: string,
    now: Date,
    maxAttempts: number,
    lockoutSeconds: number,
  ): Promise<number | undefined> {
    const [rows] = await this.manager.query<[{ failed_attempts: number }[], number]>(
      `UPDATE app_user
          SET failed_attempts = failed_attempts + 1,
              locked_until = CASE
                WHEN failed_attempts + 1 >= $3 THEN $2::timestamptz + make_interval(secs =>
                  least($4 * power(2, least(failed_attempts + 1 - $3, 20)), 86400))
                ELSE locked_until END
        WHERE id = $1
        RETURNING failed_attempts`,
      [id, now, maxAttempts, lockoutSeconds],
    );
    return rows[0]?.failed_attempts;
  }
}
