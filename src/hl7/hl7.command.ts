import { Command, CommandRunner, Option } from 'nest-commander';
import { AuditTrail } from '../audit/audit-trail.js';
import { parseIsoDateOrInstant } from '../common/iso-dates.js';
import { Hl7InboundService } from './inbound/hl7-inbound.service.js';
import { Hl7OutboxRepository } from './outbound/hl7-outbox.repository.js';
import { messageTypeOf } from './list-query.js';
import { HL7_MESSAGE_STATUSES, type Hl7MessageStatus } from './store/hl7-message.entity.js';
import { Hl7MessageRepository } from './store/hl7-message.repository.js';

/** At most this many messages per run: a backlog larger than that takes several runs. */
const BATCH = 10_000;

@Command({
  name: 'hl7:reprocess',
  description:
    'Process stored HL7 messages with a status again, oldest first (default: error); prints each outcome',
})
export class Hl7ReprocessCommand extends CommandRunner {
  constructor(
    private readonly messages: Hl7MessageRepository,
    private readonly inbound: Hl7InboundService,
    private readonly trail: AuditTrail,
  ) {
    super();
  }

  async run(
    _params: string[],
    options: { status?: Hl7MessageStatus; type?: string; sender?: string },
  ): Promise<void> {
    const status = options.status ?? 'error';
    const { type, sender } = options;
    const filter = {
      status,
      ...(type !== undefined ? { messageType: type } : {}),
      ...(sender !== undefined ? { sendingApplication: sender } : {}),
    };
    const outcomes = await this.trail.command(
      'hl7:reprocess',
      (done: { processed: number; total: number }) => ({
        detail: [
          `status=${status}`,
          ...(type !== undefined ? [`type=${type}`] : []),
          // Whatever the operator typed stays out of the audit row; that a sender was named does not.
          ...(sender !== undefined ? ['sender=named'] : []),
          `messages=${done.total} processed=${done.processed}`,
        ].join(' '),
      }),
      async () => {
        // One snapshot of the ids: a message that fails again is not retried in the same run.
        const pending = await this.messages.list(filter, BATCH);
        let processed = 0;
        for (const message of pending) {
          const outcome = await this.inbound.reprocess(message.id);
          if (outcome.status === 'processed') processed++;
          process.stdout.write(
            `${message.id} ${message.messageType ?? '-'} ${outcome.ackCode} ${outcome.status}${
              outcome.errorText ? `: ${outcome.errorText}` : ''
            }\n`,
          );
        }
        return { processed, total: pending.length };
      },
    );
    process.stdout.write(
      `Reprocessed ${outcomes.total} message(s): ${outcomes.processed} processed\n`,
    );
    if (outcomes.processed < outcomes.total) process.exitCode = 1;
  }

  @Option({
    flags: '--status <status>',
    description: `Which messages: ${HL7_MESSAGE_STATUSES.filter((s) => s !== 'processed').join(', ')}`,
  })
  parseStatus(value: string): Hl7MessageStatus {
    if (value === 'processed' || !HL7_MESSAGE_STATUSES.includes(value as Hl7MessageStatus)) {
      throw new Error(
        `--status must be one of ${HL7_MESSAGE_STATUSES.filter((s) => s !== 'processed').join(', ')}`,
      );
    }
    return value as Hl7MessageStatus;
  }

  @Option({
    flags: '--type <type>',
    description: 'Only messages of this type: ADT^A03, or ADT for all its events',
  })
  parseType(value: string): string {
    return messageTypeOf(value);
  }

  @Option({ flags: '--sender <application>', description: 'Only messages of this MSH-3' })
  parseSender(value: string): string {
    return value;
  }
}

/** Rows deleted per statement: short transactions, whatever the backlog. */
const PURGE_BATCH = 5_000;
/** The youngest a purge may reach: a sender may still resend what it sent yesterday. */
const PURGE_MIN_AGE_MS = 86_400_000;

/**
 * Deletes stored HL7 messages that need nothing more (processed, ignored, dismissed) and
 * outbound messages delivered, received or sent before a date: both hold PHI (encrypted), and
 * until 2026-12-06 nothing ever removed them. Failures, unprocessed and undelivered ones stay.
 */
@Command({
  name: 'hl7:purge',

  description:
    'Delete HL7 messages processed (or ignored, dismissed) and outbound ones delivered before --before, at least a day ago',
})
export class Hl7PurgeCommand extends CommandRunner {
  constructor(
    private readonly messages: Hl7MessageRepository,
    private readonly outbox: Hl7OutboxRepository,
    private readonly trail: AuditTrail,
  ) {
    super();
  }

  async run(_params: string[], options: { before?: Date }): Promise<void> {
    const before = options.before;
    if (!before) throw new Error('--before is required: a date (2026-01-01, UTC) or an instant');
    if (before.getTime() > Date.now() - PURGE_MIN_AGE_MS) {
      throw new Error(
        '--before must be at least a day ago: a sender may still resend what it sent since',
      );
    }
    const purged = await this.trail.command(
      'hl7:purge',
      (done: { messages: number; outbox: number }) => ({
        detail: `before=${before.toISOString()} messages=${done.messages} outbox=${done.outbox}`,
      }),
      async () => ({
        messages: await drain((limit) => this.messages.purgeFinished(before, limit)),
        outbox: await drain((limit) => this.outbox.purgeSent(before, limit)),
      }),
    );
    process.stdout.write(
      `Purged ${purged.messages} HL7 message(s) and ${purged.outbox} outbound message(s) from before ${before.toISOString()}\n`,
    );
  }

  @Option({
    flags: '--before <date>',
    description: 'A date (2026-01-01, UTC) or an instant with its offset',
  })
  parseBefore(value: string): Date {
    const date = parseIsoDateOrInstant(value);
    if (!date) throw new Error('--before must be a date (2026-01-01, UTC) or an instant');
    return date;
  }
}

/** Runs a batched delete until a batch deletes nothing; the total. */
async function drain(batch: (limit: number) => Promise<number>): Promise<number> {
  let total = 0;
  for (let deleted = await batch(PURGE_BATCH); deleted > 0; deleted = await batch(PURGE_BATCH)) {
    total += deleted;
  }
  return total;
}
