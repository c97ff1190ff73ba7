import { Injectable } from '@nestjs/common';
import { IsNull } from 'typeorm';
import { UnitOfWork } from '../../database/unit-of-work.js';
import { Hl7MessageEntity, type Hl7MessageStatus } from './hl7-message.entity.js';

export type NewHl7Message = Omit<
  Hl7MessageEntity,
  'status' | 'ackCode' | 'errorCode' | 'errorText' | 'attempts' | 'processedAt'
>;

/** Which stored messages a list shows (all given conditions hold), in receipt order. */
export interface Hl7MessageFilter {
  /** Required but with a control id, which finds a message whatever became of it. */
  status?: Hl7MessageStatus;
  /** `ADT^A08` exactly, or a message code alone (`ADT`) for all its events. */
  messageType?: string;
  controlId?: string;
  sendingApplication?: string;
  /** Received at or after this instant. */
  since?: Date;
  /** Received before this instant. */
  before?: Date;
  /** Only those accepted (AA) with a warning kept in their outcome. */
  warned?: boolean;
  /** Only those after this message in the list's order (the id of the last one seen). */
  after?: string;
}

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

  /**
   * The message's outcome and how many times it was processed, its row locked until the current
   * transaction ends; undefined when it is gone (purged). The transaction may then stay at most
   * `holdMs` (HL7_PROCESSING_HOLD_SECONDS) without a statement: an instance that freezes while it
   * holds the lock (SIGSTOP, a paused VM) has its session ended by PostgreSQL, and a resend
   * received by another instance is answered. Until 2026-12-07 it held the message, and any
   * resource rows it had written, for as long as it stayed frozen, its host's kernel answering the
   * TCP keepalives: the resend waited until the statement timeout with no ACK, again and again, and
   * with it the sender's whole feed.
   */
  async lockOutcome(
    id: string,
    holdMs: number,
  ): Promise<(Hl7Outcome & { attempts: number }) | undefined> {
    // Transaction-local: processing is database work only, it waits on nothing else between
    // its statements. Not a pool-wide default: a backup's snapshot is one transaction that
    // waits on its output (compressed, encrypted, written to a disk of any speed) between
    // statements, and would be cut off, as would any other such transaction not yet found.
    // Set in the lock's own statement: every message takes this lock, and a statement of its
    // own was one more round trip for each.
    const [row] = await this.unitOfWork.manager.query<(Hl7Outcome & { attempts: number })[]>(
      `SELECT status, ack_code AS "ackCode", error_code AS "errorCode", error_text AS "errorText",
              attempts
         FROM hl7_message,
              (SELECT set_config('idle_in_transaction_session_timeout', $2, true)) AS bound
        WHERE id = $1 FOR UPDATE OF hl7_message`,
      [id, String(holdMs)],
    );
    return row;
  }

  /**
   * Deletes up to `limit` messages received and last processed before `before` that need
   * nothing more (processed, ignored, dismissed); the number deleted. Failures and unprocessed
   * ones stay. The time of the outcome counts, not only of receipt: a message stored long ago
   * and processed only now (from its resend, after an outage) was just acknowledged, and its
   * sender, should that ACK be lost, resends it; found gone, it would be processed anew.
   */
  async purgeFinished(before: Date, limit: number): Promise<number> {
    // The conditions stand in the DELETE's own WHERE as well: a row another instance holds
    // (processing a resend of a dismissed message) is waited for, and PostgreSQL then checks
    // that WHERE again on its new version, not the subquery's. Until 2026-12-07 a message
    // processed, and acknowledged, meanwhile was deleted.
    const finished = `status IN ('processed', 'ignored', 'dismissed') AND received_at < $1
                      AND (processed_at IS NULL OR processed_at < $1)`;
    const rows = await this.unitOfWork.manager.query<{ id: string }[]>(
      `WITH purged AS (
         DELETE FROM hl7_message
          WHERE id IN (SELECT id FROM hl7_message WHERE ${finished} LIMIT $2) AND ${finished}
         RETURNING id)
       SELECT id FROM purged`,
      [before, limit],
    );
    return rows.length;
  }

  /** Sets a failed message aside (`dismissed`); false when it is not `error` or `rejected`. */
  async dismiss(id: string): Promise<boolean> {
    const rows = await this.unitOfWork.manager.query<{ id: string }[]>(
      `WITH dismissed AS (
         UPDATE hl7_message SET status = 'dismissed'
          WHERE id = $1 AND status IN ('error', 'rejected') RETURNING id)
       SELECT id FROM dismissed`,
      [id],
    );
    return rows.length > 0;
  }

  findById(id: string): Promise<Hl7MessageEntity | null> {
    return this.unitOfWork.manager.findOneBy(Hl7MessageEntity, { id });
  }

  /**
   * Messages with a status, oldest first (the order they are to be reprocessed in), as the
   * filter narrows them. The cursor (`after`) is compared in SQL: its time read back into a
   * JavaScript Date would lose the microseconds, and give its own row again.
   */
  list(filter: Hl7MessageFilter, limit: number): Promise<Hl7MessageEntity[]> {
    const query = this.unitOfWork.manager
      .createQueryBuilder(Hl7MessageEntity, 'message')
      .where(filter.status === undefined ? 'TRUE' : 'message.status = :status', {
        status: filter.status,
      });
    const { messageType, controlId, sendingApplication, since, before, warned, after } = filter;
    if (messageType !== undefined) {
      query.andWhere(
        messageType.includes('^')
          ? 'message.messageType = :messageType'
          : "split_part(message.messageType, '^', 1) = :messageType",
        { messageType },
      );
    }
    if (controlId !== undefined) query.andWhere('message.controlId = :controlId', { controlId });
    if (sendingApplication !== undefined) {
      query.andWhere('message.sendingApplication = :sendingApplication', { sendingApplication });
    }
    if (since) query.andWhere('message.receivedAt >= :since', { since });
    if (before) query.andWhere('message.receivedAt < :before', { before });
    if (warned) query.andWhere("message.ackCode = 'AA' AND message.errorText IS NOT NULL");
    if (after !== undefined) {
      query.andWhere(
        '(message.receivedAt, message.id) > (SELECT received_at, id FROM hl7_message WHERE id = :after)',
        { after },
      );
    }
    return query
      .orderBy('message.receivedAt', 'ASC')
      .addOrderBy('message.id', 'ASC')
      .limit(limit)
      .getMany();
  }

  async recordOutcome(id: string, outcome: Hl7Outcome, at: Date): Promise<void> {
    await this.unitOfWork.manager.update(
      Hl7MessageEntity,
      { id },
      { ...outcome, processedAt: at, attempts: () => 'attempts + 1' },
    );
  }
}
