import { Injectable } from '@nestjs/common';
import { IsNull } from 'typeorm';
import { UnitOfWork } from '../../database/unit-of-work.js';
import { Hl7MessageEntity, type Hl7MessageStatus } from './hl7-message.entity.js';

export type NewHl7Message = Omit<
  Hl7MessageEntity,
  'status' | 'ackCode' | 'errorCode' | 'errorText' | 'attempts' | 'processedAt'
>;

export interface Hl7Outcome {
  status: Hl7MessageStatus;
  ackCode: string;
  errorCode: string | null;
  errorText: string | null;
}

/** All SQL of stored HL7 messages, in the caller's unit of work. */
@Injectable()
export class Hl7MessageRepository {
  constructor(private readonly unitOfWork: UnitOfWork) {}

  /**
   * Stores a message as received, or finds the stored copy of a resend (same sender, control id
   * and content): `stored` says which.
   */
  async insertOrFind(message: NewHl7Message): Promise<{ row: Hl7MessageEntity; stored: boolean }> {
    if (message.controlId === null) {
      const resent = await this.findUnreadResend(message);
      if (resent) return { row: resent, stored: false };
    }
    const row = Object.assign(new Hl7MessageEntity(), {
      ...message,
      status: 'received',
      ackCode: null,
      errorCode: null,
      errorText: null,
      attempts: 0,
      processedAt: null,
    } satisfies Hl7MessageEntity);
    // A resend is expected, not a failure: ON CONFLICT keeps it from being a failed statement
    // (which the query logger reports at error level) and from aborting a surrounding transaction.
    const inserted = await this.unitOfWork.manager
      .createQueryBuilder()
      .insert()
      .into(Hl7MessageEntity)
      .values({ ...row })
      .orIgnore()
      .returning(['id'])
      .updateEntity(false)
      .execute();
    if ((inserted.raw as unknown[]).length > 0) {
      return { row, stored: true };
    }
    const existing = await this.unitOfWork.manager.findOneByOrFail(Hl7MessageEntity, {
      sendingApplication: message.sendingApplication ?? undefined,
      sendingFacility: message.sendingFacility ?? undefined,
      controlId: message.controlId ?? undefined,
      contentHash: message.contentHash,
    });
    return { row: existing, stored: false };
  }

  /**
   * A frame whose header could not be read has no control id, and NULLs never collide in the
   * unique resend key: a sender retrying it every few seconds would add a row each time. The
   * same content from the same peer is its resend. Two copies arriving at the same instant can
   * still both be stored; what matters is that retries do not grow the table.
   */
  private findUnreadResend(message: NewHl7Message): Promise<Hl7MessageEntity | null> {
    return this.unitOfWork.manager.findOne(Hl7MessageEntity, {
      where: {
        controlId: IsNull(),
        contentHash: message.contentHash,
        peer: message.peer ?? IsNull(),
        channel: message.channel,
      },
      order: { receivedAt: 'ASC', id: 'ASC' },
    });
  }

  /** The message's status, its row locked until the current transaction ends. */
  async lockStatus(id: string): Promise<Hl7MessageStatus | undefined> {
    const [row] = await this.unitOfWork.manager.query<{ status: Hl7MessageStatus }[]>(
      'SELECT status FROM hl7_message WHERE id = $1 FOR UPDATE',
      [id],
    );
    return row?.status;
  }

  findById(id: string): Promise<Hl7MessageEntity | null> {
    return this.unitOfWork.manager.findOneBy(Hl7MessageEntity, { id });
  }

  /** Messages with a status, oldest first (the order they are to be reprocessed in). */
  list(status: Hl7MessageStatus, limit: number): Promise<Hl7MessageEntity[]> {
    return this.unitOfWork.manager.find(Hl7MessageEntity, {
      where: { status },
      order: { receivedAt: 'ASC', id: 'ASC' },
      take: limit,
    });
  }

  async recordOutcome(id: string, outcome: Hl7Outcome, at: Date): Promise<void> {
    await this.unitOfWork.manager.update(
      Hl7MessageEntity,
      { id },
      { ...outcome, processedAt: at, attempts: () => 'attempts + 1' },
    );
  }
}
