import {
  Injectable,
  Logger,
  type OnApplicationBootstrap,
  type OnModuleDestroy,
} from '@nestjs/common';
import { AuditTrail } from '../../audit/audit-trail.js';
import { AppConfig } from '../../config/config.js';
import type { Hl7Destination } from '../../config/hl7-destinations.js';
import { UnitOfWork } from '../../database/unit-of-work.js';
import { MllpSendError, MllpSender, type MllpAck } from '../mllp/mllp-sender.js';
import { outboundTls } from '../mllp/mllp-tls.js';
import type { Hl7OutboxEntity } from './hl7-outbox.entity.js';
import { Hl7OutboxRepository, type OutboxAttempt } from './hl7-outbox.repository.js';
import { outboundAuditEntry } from './outbound-audit.js';

const MAX_RETRY_MS = 5 * 60_000;
/** Beyond the longest a send may take (a connect and an ACK, each within the ACK timeout). */
const HOLD_MARGIN_MS = 10_000;

/**
 * Sends the outbox, one loop per destination, one message at a time in seq order. A message
 * stays locked (its transaction open) while it is sent, so another instance skips it, and it
 * is marked sent only once its ACK has come back: delivery is at least once, and a message sent
 * again after a crash carries the same control id, which the receiver can recognize.
 */
@Injectable()
export class Hl7OutboundWorker implements OnApplicationBootstrap, OnModuleDestroy {
  private readonly logger = new Logger('Hl7Outbound');
  private stopped = false;
  private readonly loops: Promise<void>[] = [];
  private readonly senders: MllpSender[] = [];
  private readonly sleepers = new Set<() => void>();
  /** Read once: the send loops consult it on every round. */
  private readonly settings: AppConfig['hl7Outbound'];

  constructor(
    config: AppConfig,
    private readonly unitOfWork: UnitOfWork,
    private readonly outbox: Hl7OutboxRepository,
    private readonly trail: AuditTrail,
  ) {
    this.settings = config.hl7Outbound;
  }

  async onApplicationBootstrap(): Promise<void> {
    const { destinations, tls, ackTimeoutMs } = this.settings;
    await this.warnOfStranded(destinations.map((destination) => destination.name));
    const tlsOptions = outboundTls(tls);
    for (const destination of destinations) {
      const sender = new MllpSender({
        host: destination.host,
        port: destination.port,
        ackTimeoutMs,
        ...(destination.tls ? { tls: tlsOptions } : {}),
      });
      this.senders.push(sender);
      this.loops.push(this.run(destination, sender));
    }
  }

  /**
   * Messages waiting for a destination HL7_OUTBOUND no longer names (removed, or renamed as
   * `tls://…`) wait for good: said at start, where they sat unmentioned until 2026-12-06.
   * Naming the destination again sends them.
   */
  private async warnOfStranded(configured: string[]): Promise<void> {
    for (const { destination, count } of await this.outbox.pendingElsewhere(configured)) {
      this.logger.warn(
        { destination, pending: count },
        'HL7 outbound messages wait for a destination HL7_OUTBOUND does not name: name it again to send them',
      );
    }
  }

  /** Stops before the database closes (module destruction comes before application shutdown). */
  async onModuleDestroy(): Promise<void> {
    this.stopped = true;
    for (const wake of this.sleepers) wake();
    for (const sender of this.senders) sender.close();
    await Promise.all(this.loops);
  }

  private async run(destination: Hl7Destination, sender: MllpSender): Promise<void> {
    const { pollMs } = this.settings;
    while (!this.stopped) {
      let sent = false;
      try {
        sent = await this.sendNext(destination, sender);
      } catch (error) {
        if (this.stopped) break;
        // The database is away or the row could not be written: try again after a pause.
        this.logger.error(
          { destination: destination.name, error: (error as Error).name },
          'HL7 outbound send could not be recorded',
        );
      }
      if (!sent) await this.sleep(pollMs);
    }
  }

  /**
   * Sends the destination's next due message, if any. True when one was delivered, so the next
   * goes at once; after nothing to send, or a failure (whose retry waits anyway), the loop pauses.
   */
  private sendNext(destination: Hl7Destination, sender: MllpSender): Promise<boolean> {
    return this.unitOfWork.run(async () => {
      const row = await this.outbox.claimNext(
        destination.name,
        2 * this.settings.ackTimeoutMs + HOLD_MARGIN_MS,
      );
      if (!row) return false;
      let attempt: OutboxAttempt;
      try {
        attempt = this.outcome(row, await sender.send(row.message, row.controlId));
      } catch (error) {
        // Interrupted by shutdown: rolled back, so the attempt does not count against it.
        if (this.stopped) throw error;
        if (!(error instanceof MllpSendError)) throw error;
        attempt = this.failure(row, error);
      }
      await this.outbox.recordAttempt(row.id, attempt);
      if (attempt.status !== 'pending') {
        await this.trail.recordInTransaction(outboundAuditEntry(row, attempt));
      }
      if (attempt.status !== 'sent') {
        this.logger.warn(
          {
            destination: destination.name,
            outbox: row.seq,
            attempts: attempt.attempts,
            reason: attempt.lastError,
            status: attempt.status,
          },
          'HL7 outbound message not delivered',
        );
      }
      return attempt.status === 'sent';
    });
  }

  /**
   * AA (or CA) is delivered; AR (or CR) will not be taken however often it is sent; AE is
   * retried, a failed delivery, and set aside as dead after HL7_OUTBOUND_MAX_ATTEMPTS of them.
   */
  private outcome(row: Hl7OutboxEntity, ack: MllpAck): OutboxAttempt {
    if (ack.code === 'AA' || ack.code === 'CA') {
      return {
        status: 'sent',
        attempts: row.attempts + 1,
        failedDeliveries: row.failedDeliveries,
        nextAttemptAt: row.nextAttemptAt,
        ackCode: ack.code,
        lastError: null,
        sentAt: new Date(),
      };
    }
    const failed = this.undelivered(row, [ack.code, ack.errorCode].filter(Boolean).join(' '));
    const refused = ack.code === 'AR' || ack.code === 'CR';
    return { ...failed, ackCode: ack.code, ...(refused ? { status: 'dead' as const } : {}) };
  }

  /**
   * A send that failed. A message the destination got (written) and answered with nothing,
   * no ACK in time or its connection closed, failed as a delivery, as an AE does: a message it
   * cannot take (a poison message) is set aside as dead in the end rather than hold the queue
   * for good. A destination that could not be reached (refused, not answering the connect,
   * not resolving) is tried again for as long as it takes, the queue waiting behind it, as an
   * interface engine's queue does: until 2026-12-06 those failures counted too, and an outage
   * of some eight minutes (a receiver's maintenance) set the head of the queue aside as dead,
   * which the next message about its patient then made impossible to resend.
   */
  private failure(row: Hl7OutboxEntity, error: MllpSendError): OutboxAttempt {
    if (error.written) return { ...this.undelivered(row, error.code), ackCode: null };
    return {
      ...this.retried(row, error.code),
      failedDeliveries: row.failedDeliveries,
      ackCode: null,
    };
  }

  /** A failed delivery: retried, or dead once HL7_OUTBOUND_MAX_ATTEMPTS of them have failed. */
  private undelivered(row: Hl7OutboxEntity, reason: string): Omit<OutboxAttempt, 'ackCode'> {
    const failedDeliveries = row.failedDeliveries + 1;
    const dead = failedDeliveries >= this.settings.maxAttempts;
    return {
      ...this.retried(row, reason),
      failedDeliveries,
      ...(dead ? { status: 'dead' as const } : {}),
    };
  }

  /** A failed attempt, due again after a delay that doubles with each, up to 5 minutes. */
  private retried(
    row: Hl7OutboxEntity,
    reason: string,
  ): Omit<OutboxAttempt, 'failedDeliveries' | 'ackCode'> {
    const attempts = row.attempts + 1;
    const delay = Math.min(this.settings.retryMs * 2 ** Math.min(attempts - 1, 30), MAX_RETRY_MS);
    return {
      status: 'pending',
      attempts,
      nextAttemptAt: new Date(Date.now() + delay),
      lastError: reason,
      sentAt: null,
    };
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const wake = (): void => {
        clearTimeout(timer);
        this.sleepers.delete(wake);
        resolve();
      };
      const timer = setTimeout(wake, ms);
      this.sleepers.add(wake);
    });
  }
}
