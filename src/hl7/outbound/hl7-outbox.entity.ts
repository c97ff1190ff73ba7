import { Check, Column, Entity, Generated, Index, PrimaryColumn } from 'typeorm';
import { ENVELOPE_SQL_PATTERN } from '../../crypto/field-cipher.js';
import { Phi } from '../../crypto/phi.decorator.js';

export const HL7_OUTBOX_STATUSES = ['pending', 'sent', 'dead'] as const;
/** pending: to be sent (again); sent: the destination answered AA; dead: set aside for a person. */
export type Hl7OutboxStatus = (typeof HL7_OUTBOX_STATUSES)[number];

/**
 * A message to send to one destination, written in the transaction of the change it reports.
 * `seq` is the order: a destination gets its messages in seq order, each after the one before
 * is sent or dead. The message is PHI (its ciphertext is bound to `id`, known before the insert);
 * the other columns name resources and systems, not people.
 */
@Check('chk_hl7_outbox_message_envelope', `"message" ~ '${ENVELOPE_SQL_PATTERN}'`)
@Check(
  'chk_hl7_outbox_status',
  `"status" IN (${HL7_OUTBOX_STATUSES.map((status) => `'${status}'`).join(', ')})`,
)
@Index('idx_hl7_outbox_pending', ['destination', 'seq'], { where: `"status" = 'pending'` })
@Index('idx_hl7_outbox_status', ['status', 'seq'])
@Entity('hl7_outbox')
export class Hl7OutboxEntity {
  @PrimaryColumn('uuid')
  id!: string;

  @Column('bigint')
  @Generated('increment')
  seq!: string;

  @Column('text')
  destination!: string;

  @Column('timestamptz')
  createdAt!: Date;

  /** MSH-9.1^MSH-9.2, e.g. ADT^A08. */
  @Column('text')
  messageType!: string;

  @Column('text')
  controlId!: string;

  /** The resource version the message reports. */
  @Column('text')
  resourceType!: string;

  @Column('text')
  resourceId!: string;

  @Column('integer')
  versionId!: number;

  /**
   * For an ADT^A40: the Patient the resource was merged into, whose PID the message carries, so
   * that the audit row of the delivery names that patient too.
   */
  @Column('text', { nullable: true })
  survivorId!: string | null;

  @Phi()
  @Column('text')
  message!: string;

  @Column('text')
  status!: Hl7OutboxStatus;

  @Column('integer', { default: 0 })
  attempts!: number;

  /**
   * Deliveries that failed: the message reached the destination, which answered AE, or
   * nothing (no ACK in time, the connection closed), as a message it cannot take would have
   * it (a poison message). After HL7_OUTBOUND_MAX_ATTEMPTS of them it is set aside as dead.
   * A destination that cannot be reached counts in `attempts` only: it is tried again, the
   * queue waiting, as long as it takes.
   */
  @Column('integer', { default: 0 })
  failedDeliveries!: number;

  @Column('timestamptz')
  nextAttemptAt!: Date;

  /** MSA-1 of the destination's answer, once there is one. */
  @Column('text', { nullable: true })
  ackCode!: string | null;

  /** Why the last attempt failed: a network error code, a timeout, or the ACK's HL7 error code. */
  @Column('text', { nullable: true })
  lastError!: string | null;

  @Column('timestamptz', { nullable: true })
  sentAt!: Date | null;
}
