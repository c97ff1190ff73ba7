import { Column, Entity, Index, PrimaryColumn, Unique } from 'typeorm';

/**
 * An opaque refresh token, stored only as a SHA-256 hash. Tokens of one login form a family:
 * each refresh replaces the token, and presenting a replaced token revokes the whole family.
 */
@Index('idx_refresh_token_family', ['familyId'])
@Unique('uq_refresh_token_token_hash', ['tokenHash'])
@Entity('refresh_token')
export class RefreshTokenEntity {
  @PrimaryColumn('uuid')
  id!: string;

  @Column('text')
  tokenHash!: string;

  @Column('uuid')
  familyId!: string;

  @Column('uuid')
  userId!: string;

  /** The authentication methods and time of the login, carried into refreshed access tokens. */
  @Column('text', { array: true })
  amr!: string[];

  @Column('timestamptz')
  authTime!: Date;

  /** The account's session epoch at the login: the family ends when the account's moves on. */
  @Column('integer', { default: 0 })
  sessionEpoch!: number;

  @Column('timestamptz')
  createdAt!: Date;

  /** Idle expiry: pushed forward by each refresh, never past the absolute expiry. */
  @Column('timestamptz')
  expiresAt!: Date;

  @Column('timestamptz')
  absoluteExpiresAt!: Date;

  /**
   * The app grant the family continues (SMART App Launch): its scope, patient in context and
   * app. Null for a sign-in at POST /auth/login, whose tokens carry the account's rights.
   */
  @Column('text', { nullable: true })
  scope!: string | null;

  @Column('text', { nullable: true })
  patient!: string | null;

  @Column('uuid', { nullable: true })
  appId!: string | null;

  /** Set when the token is used (replaced) or revoked. */
  @Column('timestamptz', { nullable: true })
  revokedAt!: Date | null;
}
