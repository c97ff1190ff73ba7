import { Injectable } from '@nestjs/common';
import { randomUUID } from 'node:crypto';
import { AppError } from '../common/errors/app-error.js';
import { AccountStatus } from './account-status.js';
import type { AuthenticatedUser } from './authenticated-user.js';
import { assertNewPassword, PasswordHasher } from './password.js';
import { RefreshTokens } from './refresh-tokens.js';
import { isRole, ROLES, type Role } from './roles.js';
import { UserRepository } from './user.repository.js';

export interface UserSummary {
  id: string;
  username: string;
  roles: Role[];
  active: boolean;
  mfaEnabled: boolean;
  locked: boolean;
  createdAt: string;
}

const USERNAME = /^[a-z0-9][a-z0-9._@-]{1,63}$/;
const FHIR_USER =
  /^(Practitioner|PractitionerRole|Patient|RelatedPerson|Person)\/[A-Za-z0-9.-]{1,64}$/;

/** User administration, shared by the admin CLI and the admin API. */
@Injectable()
export class UsersService {
  constructor(
    private readonly users: UserRepository,
    private readonly refreshTokens: RefreshTokens,
    private readonly passwords: PasswordHasher,
    private readonly accounts: AccountStatus,
  ) {}

  async create(username: string, roles: string[], password: string): Promise<UserSummary> {
    const name = username.toLowerCase();
    if (!USERNAME.test(name)) {
      throw AppError.invalid('username: 2 to 64 letters, digits, ".", "_", "@" or "-"');
    }
    const known = knownRoles(roles);
    assertNewPassword(password, name);
    if (await this.users.findByUsername(name)) {
      throw AppError.of(409, 'duplicate', 'A user with this username exists');
    }
    const user = {
      id: randomUUID(),
      username: name,
      passwordHash: await this.passwords.hash(password),
      roles: known,
      active: true,
      failedAttempts: 0,
      lockedUntil: null,
      totpSecret: null,
      mfaEnabled: false,
      totpLastStep: null,
      fhirUser: null,
      sessionEpoch: 0,
      createdAt: new Date(),
    };
    await this.users.insert(user);
    return summary(user);
  }

  async list(): Promise<UserSummary[]> {
    return (await this.users.list()).map(summary);
  }

  /**
   * Disables the account and ends its sessions; access tokens already issued expire on their own.
   * Its Subscriptions stop, which the Subscription notifier reads from the account's state.
   * An administrator over HTTP (`by`) cannot disable their own account: its sessions would end
   * at once, and only the CLI on the server brings it back, so a slip of the list would lock
   * the last one out. The account is compared, not the name as typed (`ADMIN` is `admin`).
   */
  async disable(username: string, by?: AuthenticatedUser): Promise<UserSummary> {
    const user = await this.require(username);
    if (by && user.id === by.id) {
      throw AppError.conflict(
        'An administrator does not disable their own account here: another administrator does, or the CLI (user:disable)',
      );
    }
    await this.endSessions(user.id, { active: false });
    return summary({ ...user, active: false });
  }

  /**
   * Enables a disabled account again (back from leave) under the same id, so its audit trail
   * goes on. Nothing from before the disable comes back: its refresh tokens were revoked, and
   * codes and tokens of that session epoch stay refused.
   */
  async enable(username: string): Promise<UserSummary> {
    const user = await this.require(username);
    await this.users.update(user.id, { active: true });
    // Its first sign-in here is not refused for the disable this instance still remembers.
    this.accounts.changed(user.id);
    return summary({ ...user, active: true });
  }

  /**
   * Sets a new password (a forgotten one), unlocks the account and ends its sessions: whoever
   * knew the old password may have signed in with it.
   */
  async setPassword(username: string, password: string): Promise<UserSummary> {
    const user = await this.require(username);
    assertNewPassword(password, user.username);
    const unlocked = { failedAttempts: 0, lockedUntil: null };
    await this.endSessions(user.id, {
      passwordHash: await this.passwords.hash(password),
      ...unlocked,
    });
    return summary({ ...user, ...unlocked });
  }

  /** Removes the TOTP secret so the user can enrol again (lost device). */
  async resetMfa(username: string): Promise<UserSummary> {
    const user = await this.require(username);
    const reset = { ...user, totpSecret: null, mfaEnabled: false, totpLastStep: null };
    await this.endSessions(user.id, { totpSecret: null, mfaEnabled: false, totpLastStep: null });
    return summary(reset);
  }

  /**
   * Replaces the account's roles and ends its sessions: an access token carries the roles it was
   * issued with, so without a new session epoch the old ones (a doctor's, moved to billing) would
   * read on until the token expires, and a refresh token would mint more. Its break-glass grants
   * and exports end with the sessions; a backend client of the account given a person's role
   * gets no more tokens (ClientCredentials).
   */
  async setRoles(username: string, roles: string[]): Promise<UserSummary> {
    const known = knownRoles(roles);
    const user = await this.require(username);
    await this.endSessions(user.id, { roles: known });
    return summary({ ...user, roles: known });
  }

  /**
   * Links the account to its FHIR identity (SMART `fhirUser`): a Practitioner, PractitionerRole,
   * Patient, RelatedPerson or Person, by relative reference; null removes the link.
   */
  async setFhirUser(username: string, reference: string | null): Promise<UserSummary> {
    if (reference !== null && !FHIR_USER.test(reference)) {
      throw AppError.invalid(
        'fhirUser: Practitioner/<id>, PractitionerRole/<id>, Patient/<id>, RelatedPerson/<id> or Person/<id>',
      );
    }
    const user = await this.require(username);
    await this.users.update(user.id, { fhirUser: reference });
    return summary(user);
  }

  /**
   * Changes the account and ends its sessions: a new session epoch (see UserRepository.endSessions)
   * and its refresh tokens marked revoked.
   */
  private async endSessions(
    id: string,
    changes: Parameters<UserRepository['endSessions']>[1],
  ): Promise<void> {
    await this.users.endSessions(id, changes);
    await this.refreshTokens.revokeAllOf(id);
  }

  private async require(username: string) {
    const user = await this.users.findByUsername(username);
    if (!user) {
      throw AppError.notFound('No such user');
    }
    return user;
  }
}

/** At least one role, each a known one, without repeats. */
function knownRoles(roles: string[]): Role[] {
  if (roles.length === 0 || !roles.every(isRole)) {
    throw AppError.invalid(`role must be one of ${ROLES.join(', ')}`);
  }
  return [...new Set(roles)];
}

function summary(user: {
  id: string;
  username: string;
  roles: Role[];
  active: boolean;
  mfaEnabled: boolean;
  lockedUntil: Date | null;
  createdAt: Date;
}): UserSummary {
  return {
    id: user.id,
    username: user.username,
    roles: user.roles,
    active: user.active,
    mfaEnabled: user.mfaEnabled,
    locked: user.lockedUntil !== null && user.lockedUntil > new Date(),
    createdAt: user.createdAt.toISOString(),
  };
}
