import { Check, Column, Entity, Index, PrimaryColumn } from 'typeorm';
import { ENVELOPE_SQL_PATTERN } from '../../crypto/field-cipher.js';
import { Phi } from '../../crypto/phi.decorator.js';

export const HL7_MESSAGE_STATUSES = [
  'received',
  'processed',
  'error',
  'rejected',
  'ignored',
  'dismissed',
] as const;
/**
 * received: stored, not yet processed; processed: its resources are written (AA); error:
 * processing failed and can be retried (AE); rejected: it cannot be taken as it is (AR);
 * ignored: of a type the deployment acknowledges without mapping it (HL7_IGNORE, AA);
 * dismissed: an error or rejection an operator set aside (its sender sent a correction).
 */
export type Hl7MessageStatus = (typeof HL7_MESSAGE_STATUSES)[number];

/**
 * Every HL7 v2 message received, committed before it is acknowledged. The raw text is PHI; the
 * header columns name systems, not people. A resend is the same sender, control id and content.
 */
@Check('chk_hl7_message_raw_envelope', `"raw" ~ '${ENVELOPE_SQL_PATTERN}'`)
@Check(
  'chk_hl7_message_status',
  `"status" IN (${HL7_MESSAGE_STATUSES.map((status) => `'${status}'`).join(', ')})`,
)
@Index(
  'uq_hl7_message_resend',
  ['sendingApplication', 'sendingFacility', 'controlId', 'contentHash'],
  {
    unique: true,
  },
)
// A message without a control id escapes the resend key (NULL is distinct from NULL): its
// resends are found by content (Hl7MessageRepository.insertOrFind).
@Index('idx_hl7_message_unread_resend', ['contentHash'], { where: '"control_id" IS NULL' })
@Index('idx_hl7_message_status', ['status', 'receivedAt'])
// An operator looks a message up by its control id among every message received.
@Index('idx_hl7_message_control_id', ['controlId'])
@Entity('hl7_message')
export class Hl7MessageEntity {
  @PrimaryColumn('uuid')
  id!: string;

  @Column('timestamptz')
  receivedAt!: Date;

  /** mllp or http. */
  @Column('text')
  channel!: string;

  /** The peer's address. */
  @Column('text', { nullable: true })
  peer!: string | null;

  /** Over mutual TLS, the client certificate: `CN=lab-feed; sha256:AB:…` (its fingerprint). */
  @Column('text', { nullable: true })
  peerCertificate!: string | null;

  /** MSH-3 and MSH-4 as sent; null when the header could not be read. */
  @Column('text', { nullable: true })
  sendingApplication!: string | null;

  @Column('text', { nullable: true })
  sendingFacility!: string | null;

  /** MSH-9.1^MSH-9.2, e.g. ADT^A01. */
  @Column('text', { nullable: true })
  messageType!: string | null;

  @Column('text', { nullable: true })
  controlId!: string | null;

  @Column('text', { nullable: true })
  version!: string | null;

  /** Keyed hash (blind index) of the message text: a plain hash of PHI could be guessed at. */
  @Column('text')
  contentHash!: string;

  @Phi()
  @Column('text')
  raw!: string;

  @Column('text')
  status!: Hl7MessageStatus;

  @Column('text', { nullable: true })
  ackCode!: string | null;

  /** HL7 table 0357 code and fixed text of the last failure: never message content. */
  @Column('text', { nullable: true })
  errorCode!: string | null;

  @Column('text', { nullable: true })
  errorText!: string | null;

  @Column('integer', { default: 0 })
  attempts!: number;

  @Column('timestamptz', { nullable: true })
  processedAt!: Date | null;
}
