import { Check, Column, Entity, PrimaryColumn, Unique } from 'typeorm';
import { ENVELOPE_SQL_PATTERN } from '../crypto/field-cipher.js';
import { Phi } from '../crypto/phi.decorator.js';
import type { Role } from './roles.js';

/** TOTP time steps (about 5.9e7 today) fit a JavaScript number; pg returns bigint as text. */
const BIGINT_AS_NUMBER = {
  to: (value: number | null): number | null => value,
  from: (value: string | null): number | null => (value === null ? null : Number(value)),
};

/** A person or system account that signs in. Usernames are staff identifiers, not PHI. */
@Check('chk_app_user_totp_secret_envelope', `"totp_secret" ~ '${ENVELOPE_SQL_PATTERN}'`)
@Unique('uq_app_user_username', ['username'])
@Entity('app_user')
export class UserEntity {
  @PrimaryColumn('uuid')
  id!: string;

  /** Stored lower-case; unique. */
  @Column('text')
  username!: string;

  /** Argon2id hash in PHC string form. */
  @Column('text')
  passwordHash!: string;

  @Column('text', { array: true })
  roles!: Role[];

  @Column('boolean')
  active!: boolean;

  @Column('integer')
  failedAttempts!: number;

  @Column('timestamptz', { nullable: true })
  lockedUntil!: Date | null;

  /** Base32 TOTP secret, encrypted like PHI: whoever reads it can mint second factors. */
  @Phi()
  @Column('text', { nullable: true })
  totpSecret!: string | null;

  @Column('boolean')
  mfaEnabled!: boolean;

  /** The last accepted TOTP time step: a code is accepted once only. */
  @Column('bigint', { nullable: true, transformer: BIGINT_AS_NUMBER })
  totpLastStep!: number | null;

  /**
   * The account's FHIR identity (`Practitioner/123`), what SMART's `fhirUser` claim tells an app;
   * null when none is linked.
   */
  @Column('text', { nullable: true })
  fhirUser!: string | null;

  /**
   * Moved on whenever the account's sessions end (a disable, an MFA reset, a new password): a
   * refresh token or authorization code of an earlier epoch is refused, also one issued by a
   * sign-in that checked the account just before the change.
   */
  @Column('integer', { default: 0 })
  sessionEpoch!: number;

  @Column('timestamptz')
  createdAt!: Date;
}
