import { Check, Column, Entity, Index, PrimaryColumn, PrimaryGeneratedColumn } from 'typeorm';
import { ENVELOPE_SQL_PATTERN } from '../crypto/field-cipher.js';
import { Phi } from '../crypto/phi.decorator.js';

/** An emergency-access grant: one user, one patient, a stated reason, a fixed end. */
@Check('chk_break_glass_grant_reason_envelope', `"reason" ~ '${ENVELOPE_SQL_PATTERN}'`)
@Index('idx_break_glass_grant_user_patient', ['userId', 'patientId'])
@Entity('break_glass_grant')
export class BreakGlassGrantEntity {
  @PrimaryColumn('uuid')
  id!: string;

  /** The user id (a uuid, or `oidc:<sub>` for an external identity). */
  @Column('text')
  userId!: string;

  @Column('text')
  username!: string;

  @Column('text')
  patientId!: string;

  /** Free text written in an emergency: it may name the patient, so it is encrypted. */
  @Phi()
  @Column('text')
  reason!: string;

  @Column('timestamptz')
  createdAt!: Date;

  @Column('timestamptz')
  expiresAt!: Date;

  /**
   * The account's session epoch when the glass was broken (0 for an external identity): a
   * disable, a new password or an MFA reset moves the epoch on and so ends the grant, as it ends
   * the sessions it was opened from.
   */
  @Column('integer')
  sessionEpoch!: number;
}

/** Each restricted resource opened under a grant, for the privacy officer's review. */
@Index('idx_break_glass_use_grant', ['grantId'])
@Entity('break_glass_use')
export class BreakGlassUseEntity {
  @PrimaryGeneratedColumn('identity', { type: 'bigint', generatedIdentity: 'ALWAYS' })
  id!: string;

  @Column('uuid')
  grantId!: string;

  @Column('text')
  resourceType!: string;

  @Column('text')
  resourceId!: string;

  @Column('text')
  interaction!: string;

  @Column('timestamptz')
  at!: Date;
}
