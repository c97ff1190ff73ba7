import { Injectable } from '@nestjs/common';
import { randomUUID } from 'node:crypto';
import { UnitOfWork } from '../../database/unit-of-work.js';
import { Hl7OutboxEntity, type Hl7OutboxStatus } from './hl7-outbox.entity.js';

/** Which outbound messages a list shows (all given conditions hold), in queue order. */
export interface Hl7OutboxFilter {
  status: Hl7OutboxStatus;
  /** `host:port`, as HL7_OUTBOUND names it. */
  destination?: string;
  /** The resource the messages are about. */
  resourceType?: string;
  resourceId?: string;
  /** Only those after this queue position (`seq`: the last one of the page before). */
  afterSeq?: string;
}

export type NewOutboxMessage = Pick<
  Hl7OutboxEntity,
  | 'destination'
  | 'messageType'
  | 'controlId'
  | 'resourceType'
  | 'resourceId'
  | 'versionId'
  | 'message'
> & {
  /** Why the message could not be built: it is stored dead, never sent, with this reason. */
  failure?: string;
  survivorId?: string;
};

export type OutboxAttempt = Pick<
  Hl7OutboxEntity,
  'status' | 'attempts' | 'failedDeliveries' | 'nextAttemptAt' | 'ackCode' | 'lastError' | 'sentAt'
>;

/**
 * The class of the transaction-scoped advisory locks ('cvHO', with the destination's hash) that
 * a worker holds on the destination it sends to. Two int4 keys: a space apart from the bigint
 * keys of conditional criteria and migrations, and from the Subscriptions' class ('cvSN').
 */
const SEND_LOCK = 0x6376484f;

/** All SQL of the HL7 outbox, in the caller's unit of work. */
@Injectable()
export class Hl7OutboxRepository {
  constructor(private readonly unitOfWork: UnitOfWork) {}

  async add(messages: NewOutboxMessage[], now: Date): Promise<void> {
    if (messages.length === 0) return;
    await this.unitOfWork.manager.insert(
      Hl7OutboxEntity,
      messages.map(({ failure, survivorId, ...message }) => ({
        ...message,
        survivorId: survivorId ?? null,
        id: randomUUID(),
        createdAt: now,
        status: failure === undefined ? ('pending' as const) : ('dead' as const),
        attempts: 0,
        nextAttemptAt: now,
        lastError: failure ?? null,
      })),
    );
  }

  /**
   * The destination's next message, locked until the transaction ends, if it is due and no other
   * worker holds it. Only the oldest pending message is ever taken: while it is being sent or waits
   * for a retry, the ones after it wait too, so the destination sees them in order whichever
   * instance sends them. The claim first takes the destination's advisory lock, and takes nothing
   * while another worker holds it: the oldest pending row alone did not ensure one sender, as a
   * message queued earlier (a lower seq) whose transaction committed while a worker was sending the
   * head it could see was a head too; until 2026-12-07 a second instance claimed it and sent it
   * meanwhile, two messages in flight to one receiver at once, over two connections, taken in
   * whichever order it happened to. The lock comes before the row, so no row is locked to be given
   * back (the Subscriptions' claim, not knowing its Subscription beforehand, needs a savepoint for
   * that). Two destinations whose names hash alike share the lock: one is passed over (its worker
   * polls again) while the other's message is sent. The locks are held while the message is sent,
   * at most `holdMs` without a statement: an instance that hangs meanwhile (a frozen process, a
   * network cut from the database) has its session ended by PostgreSQL, which releases them, and
   * another instance takes the message. Until 2026-12-06 such an instance held the destination's
   * whole queue: after a network cut until PostgreSQL's TCP keepalive gave up on it, two hours by
   * default; frozen, for as long as it stayed so, its host's kernel answering the keepalives.
   */
  async claimNext(destination: string, holdMs: number): Promise<Hl7OutboxEntity | undefined> {
    await this.unitOfWork.manager.query(
      `SELECT set_config('idle_in_transaction_session_timeout', $1, true)`,
      [String(Math.ceil(holdMs))],
    );
    const [lock] = await this.unitOfWork.manager.query<{ held: boolean }[]>(
      `SELECT pg_try_advisory_xact_lock($1, hashtext($2)) AS held`,
      [SEND_LOCK, destination],
    );
    if (!lock!.held) return undefined;
    const [head] = await this.unitOfWork.manager.query<{ id: string }[]>(
      `SELECT id FROM hl7_outbox
        WHERE id = (SELECT id FROM hl7_outbox
                     WHERE destination = $1 AND status = 'pending'
                     ORDER BY seq LIMIT 1)
          -- Checked again on the locked row: another worker may have just sent it.
          AND status = 'pending'
          AND next_attempt_at <= now()
        FOR UPDATE SKIP LOCKED`,
      [destination],
    );
    if (!head) return undefined;
    return (await this.unitOfWork.manager.findOneBy(Hl7OutboxEntity, { id: head.id })) ?? undefined;
  }

  /**
   * Deletes up to `limit` messages delivered before `before`; the number deleted. Not one that
   * a dead message about the same resource, older, waits behind: requeue refuses to resend the
   * dead one once a later one was delivered, and reads that from the delivered row.
   */
  async purgeSent(before: Date, limit: number): Promise<number> {
    const rows = await this.unitOfWork.manager.query<{ id: string }[]>(
      `WITH purged AS (
         DELETE FROM hl7_outbox WHERE id IN (
           SELECT o.id FROM hl7_outbox o
            WHERE o.status = 'sent' AND o.sent_at < $1
              AND NOT EXISTS (SELECT 1 FROM hl7_outbox dead
                               WHERE dead.destination = o.destination
                                 AND dead.resource_type = o.resource_type
                                 AND dead.resource_id = o.resource_id
                                 AND dead.seq < o.seq AND dead.status = 'dead')
            LIMIT $2)
         RETURNING id)
       SELECT id FROM purged`,
      [before, limit],
    );
    return rows.length;
  }

  /** Pending messages per destination other than `configured`, which no sender will take. */
  async pendingElsewhere(configured: string[]): Promise<{ destination: string; count: number }[]> {
    const rows = await this.unitOfWork.manager.query<{ destination: string; count: string }[]>(
      `SELECT destination, count(*) AS count FROM hl7_outbox
        WHERE status = 'pending' AND NOT (destination = ANY($1::text[]))
        GROUP BY destination ORDER BY destination`,
      [configured],
    );
    return rows.map(({ destination, count }) => ({ destination, count: Number(count) }));
  }

  async recordAttempt(id: string, attempt: OutboxAttempt): Promise<void> {
    await this.unitOfWork.manager.update(Hl7OutboxEntity, { id }, attempt);
  }

  /**
   * Puts a dead message back at its place in its destination's queue, for another round of
   * attempts. Refused (false) when a later message about the same resource has been delivered
   * there since: resent now, the older one would overwrite newer data at the receiver. The
   * later messages are locked first, so one being sent right now (its row locked by the
   * worker until its ACK) is waited for and counted once it is delivered.
   */
  requeue(id: string): Promise<boolean> {
    return this.unitOfWork.run(async (manager) => {
      await manager.query(
        `SELECT later.id FROM hl7_outbox later
           JOIN hl7_outbox o ON o.id = $1
          WHERE later.destination = o.destination
            AND later.resource_type = o.resource_type
            AND later.resource_id = o.resource_id
            AND later.seq > o.seq
          FOR UPDATE OF later`,
        [id],
      );
      const rows = await manager.query<{ id: string }[]>(
        // Under WITH the statement is a SELECT, so the driver returns rows rather than a count.
        `WITH requeued AS (
           UPDATE hl7_outbox o
              SET status = 'pending', attempts = 0, failed_deliveries = 0, next_attempt_at = now(),
                  last_error = NULL
            WHERE o.id = $1 AND o.status = 'dead'
              AND NOT EXISTS (SELECT 1 FROM hl7_outbox later
                               WHERE later.destination = o.destination
                                 AND later.resource_type = o.resource_type
                                 AND later.resource_id = o.resource_id
                                 AND later.seq > o.seq AND later.status = 'sent')
            RETURNING o.id)
         SELECT id FROM requeued`,
        [id],
      );
      return rows.length > 0;
    });
  }

  findById(id: string): Promise<Hl7OutboxEntity | null> {
    return this.unitOfWork.manager.findOneBy(Hl7OutboxEntity, { id });
  }

  /** Messages with a status in queue order, as the filter narrows them. */
  list(filter: Hl7OutboxFilter, limit: number): Promise<Hl7OutboxEntity[]> {
    const query = this.unitOfWork.manager
      .createQueryBuilder(Hl7OutboxEntity, 'outbox')
      .where('outbox.status = :status', { status: filter.status });
    const { destination, resourceType, resourceId, afterSeq } = filter;
    if (destination !== undefined) {
      query.andWhere('outbox.destination = :destination', { destination });
    }
    if (resourceType !== undefined && resourceId !== undefined) {
      query.andWhere('outbox.resourceType = :resourceType AND outbox.resourceId = :resourceId', {
        resourceType,
        resourceId,
      });
    }
    if (afterSeq !== undefined) query.andWhere('outbox.seq > :afterSeq', { afterSeq });
    return query.orderBy('outbox.seq', 'ASC').limit(limit).getMany();
  }
}
