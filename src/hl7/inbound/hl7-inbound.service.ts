import { Injectable, Logger } from '@nestjs/common';
import { randomUUID } from 'node:crypto';
import { AuditTrail } from '../../audit/audit-trail.js';
import { AppError } from '../../common/errors/app-error.js';
import { AppConfig } from '../../config/config.js';
import { BlindIndexer } from '../../crypto/blind-index.js';
import { databaseProblem } from '../../database/database-unavailable.js';
import { UnitOfWork } from '../../database/unit-of-work.js';
import { repeatedValueWarnings, resultTimeWarnings } from '../mapping/observation.js';
import { orderControlWarnings } from '../mapping/orders.js';
import { NOT_IN_TABLE, pidWarnings } from '../mapping/patient.js';
import { buildAck, type AckCode, type AckError } from '../message/ack.js';
import {
  decodeMessage,
  messageOf,
  HL7_ERRORS,
  Hl7ProcessingError,
  Hl7RejectError,
  isHl7ErrorCode,
  type DecodedMessage,
  type Hl7Header,
} from '../message/hl7-header.js';
import { batchAck, splitMessages } from '../message/batch.js';
import { V2Message } from '../message/v2-message.js';
import type { Hl7MessageEntity } from '../store/hl7-message.entity.js';
import { KEPT_WARNING, keptWarnings } from './event-order.js';
import { WITHDRAWN_WARNING } from './report-versions.js';
import { UNTIED_WARNING } from './early-results.js';
import { hl7AuditEntry } from './hl7-audit.js';
import { Hl7Processor } from './hl7-processor.js';
import { InboundSender } from './inbound-sender.js';
import type { Touched } from './processing.js';
import { Hl7MessageRepository, type Hl7Outcome } from '../store/hl7-message.repository.js';
import { Metrics } from '../../metrics/metrics.js';

/** How many times a message rolled back by a deadlock is processed before it is left unACKed. */
const PROCESS_ATTEMPTS = 3;

/** The statuses whose ACK a resend gets again, without the message being processed twice. */
const ANSWERED: ReadonlySet<string> = new Set(['processed', 'rejected', 'ignored']);

const PROCESSED: Hl7Outcome = {
  status: 'processed',
  ackCode: 'AA',
  errorCode: null,
  errorText: null,
};

/** A message of a type HL7_IGNORE names: acknowledged, kept, not mapped. */
const IGNORED: Hl7Outcome = { status: 'ignored', ackCode: 'AA', errorCode: null, errorText: null };

export interface Hl7Source {
  channel: 'mllp' | 'http';
  peer: string | null;
  /** The client certificate of a mutual-TLS connection, as Hl7MessageEntity.peerCertificate. */
  peerCertificate?: string | null;
}

/**
 * Takes one HL7 v2 message from any channel and gives the ACK to send back. The message is
 * committed as received before anything else happens, so a crash at any later point loses
 * nothing: the sender, not having its ACK, resends, and the stored copy is processed then.
 */
@Injectable()
export class Hl7InboundService {
  private readonly logger = new Logger('Hl7Inbound');

  constructor(
    private readonly repository: Hl7MessageRepository,
    private readonly blind: BlindIndexer,
    private readonly trail: AuditTrail,
    private readonly unitOfWork: UnitOfWork,
    private readonly processor: Hl7Processor,
    private readonly metrics: Metrics,
    private readonly config: AppConfig,
    private readonly sender: InboundSender,
  ) {}

  /**
   * The ACK, in the message's own character set (Latin-1 when MSH-18 says 8859/1). A batch or
   * a file of several messages gets a batch of ACKs, one per message, in order.
   */
  async receive(payload: Buffer, source: Hl7Source): Promise<Buffer> {
    const { messages, batch, envelope } = splitMessages(payload);
    if (!batch) {
      return this.receiveOne(payload, source);
    }
    const acks: string[] = [];
    for (const message of messages) {
      acks.push((await this.receiveOne(message, source)).toString('latin1'));
    }
    return Buffer.from(batchAck(acks, envelope), 'latin1');
  }

  private async receiveOne(payload: Buffer, source: Hl7Source): Promise<Buffer> {
    let decoded: DecodedMessage | undefined;
    let rejection: Hl7RejectError | undefined;
    try {
      decoded = decodeMessage(payload);
      this.admitProcessingId(decoded.header);
    } catch (error) {
      if (!(error instanceof Hl7RejectError)) throw error;
      rejection = error;
    }
    const ack = await this.answer(payload, decoded, rejection, source);
    // In the bytes the message was read as (until 2026-12-07 UTF-8 unless MSH-18 said 8859/1:
    // a Latin-1 sender's name came back as other bytes, a refused message's encoded twice).
    return Buffer.from(ack, decoded?.encoding ?? rejection?.encoding ?? 'utf8');
  }

  private async answer(
    payload: Buffer,
    decoded: DecodedMessage | undefined,
    rejection: Hl7RejectError | undefined,
    source: Hl7Source,
  ): Promise<string> {
    const header = decoded?.header ?? rejection?.header;
    const text = decoded?.text ?? payload.toString('latin1');
    for (;;) {
      const ack = await this.answerStored(header, text, decoded, rejection, source);
      // Its stored copy was purged (hl7:purge) after it was read and before it was locked: it
      // is stored again, as if it came now, so that nothing is processed or answered without
      // its stored row. Until 2026-12-07 it was processed and its outcome recorded nowhere.
      if (ack !== undefined) return ack;
    }
  }

  /** Stores the message, or finds it stored, and answers it; undefined when purged meanwhile. */
  private async answerStored(
    header: Hl7Header | undefined,
    text: string,
    decoded: DecodedMessage | undefined,
    rejection: Hl7RejectError | undefined,
    source: Hl7Source,
  ): Promise<string | undefined> {
    const { row, stored } = await this.repository.insertOrFind({
      id: randomUUID(),
      receivedAt: new Date(),
      channel: source.channel,
      peer: source.peer,
      peerCertificate: source.peerCertificate ?? null,
      sendingApplication: header?.sendingApplication ?? null,
      sendingFacility: header?.sendingFacility ?? null,
      messageType: header ? storedMessageType(header) : null,
      controlId: header?.controlId ?? null,
      version: header?.version ?? null,
      contentHash: this.blind.compute('hl7:message', text),
      raw: text,
    });
    // Refused before HL7_IGNORE named its type or HL7_PROCESSING_IDS its processing id: the
    // sender resends it until it is taken, and answering the stored AR again would keep its
    // queue stopped, the settings notwithstanding.
    const nowTaken =
      row.status === 'rejected' &&
      !rejection &&
      (row.errorCode === '202' || this.isIgnored(decoded!.header));
    if (!stored && ANSWERED.has(row.status) && !nowTaken) {
      // A resend of a message already answered: the same answer, and nothing done twice.
      this.metrics.hl7Messages.inc({ status: 'duplicate' });
      return buildAck(header, row.ackCode as AckCode, errorOf(row));
    }
    const outcome = rejection
      ? await this.reject(row, rejection)
      : this.isIgnored(decoded!.header)
        ? await this.recordApart(row, IGNORED)
        : await this.process(row, decoded!);
    if (!outcome) return undefined;
    this.metrics.hl7Messages.inc({ status: outcome.status });
    return buildAck(header, outcome.ackCode as AckCode, errorOf(outcome));
  }

  /**
   * Processes a stored message again (after an error, or once its type is supported): the
   * outcome it has now. A message already processed is not processed twice, and one purged
   * (hl7:purge) while this waited for it is not found, as it would be a moment later.
   */
  async reprocess(id: string): Promise<Hl7Outcome & { id: string }> {
    const row = await this.repository.findById(id);
    if (!row) {
      throw AppError.notFound('HL7 message not found');
    }
    if (row.status === 'processed') {
      throw AppError.conflict('The message has already been processed');
    }
    const outcome = await this.processStored(row);
    if (!outcome) {
      throw AppError.notFound('HL7 message not found');
    }
    return { id, ...outcome };
  }

  /** Decodes the stored message and processes it, or refuses it; undefined when purged. */
  private async processStored(row: Hl7MessageEntity): Promise<Hl7Outcome | undefined> {
    let decoded: DecodedMessage;
    try {
      decoded = messageOf(row.raw);
      this.admitProcessingId(decoded.header);
    } catch (error) {
      if (!(error instanceof Hl7RejectError)) throw error;
      return this.reject(row, error);
    }
    return this.process(row, decoded);
  }

  /**
   * Maps the message to FHIR and records the outcome: processed (AA), error (AE) or rejected
   * (AR). The resources, the outcome and its audit row commit together, failures included:
   * the message's row stays locked from before processing until its outcome is recorded, so
   * that an instance waiting for it (a resend received there, a reprocess) answers from that
   * outcome instead of processing it a second time. Until 2026-12-07 a failure was recorded
   * after the rollback had let the waiter in, which failed the same way and counted two attempts.
   * Undefined when the message is gone (purged since `row` was read): nothing was processed.
   */
  private async process(
    row: Hl7MessageEntity,
    decoded: DecodedMessage,
  ): Promise<Hl7Outcome | undefined> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.processLocked(row, decoded);
      } catch (error) {
        const problem = databaseProblem(error);
        // Rolled back for meeting a concurrent message (a deadlock): processing is database
        // work only, so it is run again rather than answered AE for an operator to reprocess.
        // The whole transaction, the row's lock with it: the lock may be part of the cycle.
        if (problem === 'conflict' && attempt < PROCESS_ATTEMPTS) continue;
        // A database that cannot serve now (down, read-only, out of disk) says nothing about
        // the message: no ACK, as when it could not be stored, so the sender resends it and
        // the stored copy, still `received`, is processed then. An AE would have the sender
        // drop it and leave an operator to reprocess every message of the outage by hand.
        throw error;
      }
    }
  }

  /** One attempt, under the message's row lock: the outcome it recorded, or found recorded. */
  private processLocked(
    row: Hl7MessageEntity,
    decoded: DecodedMessage,
  ): Promise<Hl7Outcome | undefined> {
    return this.unitOfWork.run(async () => {
      const locked = await this.repository.lockOutcome(row.id, this.config.hl7ProcessingHoldMs);
      if (!locked) return undefined;
      const recorded = recordedSince(row, locked);
      if (recorded) return recorded;
      let outcome: Hl7Outcome;
      let touched: Touched | undefined;
      try {
        // In a savepoint: a failure rolls back what processing wrote, not the row's lock. Kept
        // on success: only the outcome and its audit row follow, and the commit releases it.
        ({ outcome, touched } = await this.unitOfWork.nested(() => this.processOnce(decoded), {
          keep: true,
        }));
      } catch (error) {
        if (databaseProblem(error)) throw error;
        outcome = failureOf(error, row, this.logger);
      }
      await this.repository.recordOutcome(row.id, outcome, new Date());
      await this.trail.recordInTransaction(hl7AuditEntry(row, outcome, touched));
      return outcome;
    });
  }

  /** Writes the message's resources: the outcome to record, with its warnings. */
  private async processOnce(
    decoded: DecodedMessage,
  ): Promise<{ outcome: Hl7Outcome; touched: Touched }> {
    const message = new V2Message(
      decoded.text,
      decoded.header.delimiters,
      this.timeZoneOf(decoded.header),
    );
    const touched = await this.sender.run(decoded.header, () =>
      this.processor.process(message, decoded.header),
    );
    const outcome = withWarnings(PROCESSED, [
      ...pidWarnings(message),
      ...orderControlWarnings(message),
      ...repeatedValueWarnings(message),
      ...resultTimeWarnings(message),
      ...keptWarnings(touched),
    ]);
    return { outcome, touched };
  }

  /** The zone of the sending facility's (MSH-4) times without an offset, if one is set. */
  private timeZoneOf(header: DecodedMessage['header']): string | undefined {
    const [namespace = '', universalId = ''] = header.sendingFacility.split(
      header.delimiters.component,
    );
    return this.config.hl7TimeZoneOf([namespace, universalId].filter(Boolean));
  }

  /** Refuses (AR) a training or debugging message where HL7_PROCESSING_IDS does not take it. */
  private admitProcessingId(header: DecodedMessage['header']): void {
    const id = header.processingId.split(header.delimiters.component)[0]!.toUpperCase();
    if (this.config.hl7ProcessingIds.has(id)) return;
    const error = new Hl7RejectError(
      '202',
      `MSH-11 (processing id) is not one this system takes (${[...this.config.hl7ProcessingIds].join(', ')}): see HL7_PROCESSING_IDS`,
    );
    error.header = header;
    throw error;
  }

  /** Of a type HL7_IGNORE names: the whole type (`ADT^A29`), or every event of its code. */
  private isIgnored(header: DecodedMessage['header']): boolean {
    const ignored = this.config.hl7Ignored;
    return (
      ignored.has(header.messageCode.toUpperCase()) ||
      ignored.has(`${header.messageCode}^${header.triggerEvent}`.toUpperCase())
    );
  }

  private reject(
    row: Hl7MessageEntity,
    rejection: Hl7RejectError,
  ): Promise<Hl7Outcome | undefined> {
    return this.recordApart(row, {
      status: 'rejected',
      ackCode: 'AR',
      errorCode: rejection.code,
      errorText: rejection.message,
    });
  }

  /**
   * Records an outcome without processing (refused, or of an ignored type) with its audit row,
   * under the message's row lock as processing does: the same message reaching two instances
   * at once is recorded once, and the other answers from that outcome. Until 2026-12-07 both
   * recorded it, two attempts and two audit rows. Undefined when the message is gone (purged).
   */
  private recordApart(row: Hl7MessageEntity, outcome: Hl7Outcome): Promise<Hl7Outcome | undefined> {
    return this.unitOfWork.run(async () => {
      const locked = await this.repository.lockOutcome(row.id, this.config.hl7ProcessingHoldMs);
      if (!locked) return undefined;
      const recorded = recordedSince(row, locked);
      if (recorded) return recorded;
      await this.repository.recordOutcome(row.id, outcome, new Date());
      await this.trail.recordInTransaction(hl7AuditEntry(row, outcome));
      return outcome;
    });
  }
}

/**
 * The outcome the message was given since `row` was read (by another instance, while this one
 * waited for its lock), or that it was processed with: the answer, and nothing is done twice.
 */
function recordedSince(
  row: Hl7MessageEntity,
  locked: Hl7Outcome & { attempts: number },
): Hl7Outcome | undefined {
  if (locked.status !== 'processed' && locked.attempts === row.attempts) return undefined;
  const { status, ackCode, errorCode, errorText } = locked;
  return { status, ackCode, errorCode, errorText };
}

/** AR for what is unsupported, AE (kept for reprocessing) for everything else. */
function failureOf(error: unknown, row: Hl7MessageEntity, logger: Logger): Hl7Outcome {
  if (error instanceof Hl7RejectError) {
    return { status: 'rejected', ackCode: 'AR', errorCode: error.code, errorText: error.message };
  }
  if (error instanceof Hl7ProcessingError) {
    return { status: 'error', ackCode: 'AE', errorCode: error.code, errorText: error.message };
  }
  // FHIR validation and database errors can quote values: only their kind is kept, and where
  // a mapped resource broke a rule, the element's path, so that the sender can tell which field.
  const kind =
    error instanceof AppError ? `FHIR ${error.status}${pathsOf(error)}` : (error as Error).name;
  logger.error({ id: row.id, type: row.messageType, kind }, 'HL7 message processing failed');
  return {
    status: 'error',
    ackCode: 'AE',
    errorCode: '207',
    errorText: `The message could not be stored as FHIR resources (${kind})`,
  };
}

/**
 * ` at Patient.identifier[1].value`: the issues' element paths (never values), at most 3. A
 * choice element is named as the validator names it, `Observation.value[x]`.
 */
function pathsOf(error: AppError): string {
  const paths = error.issues
    .flatMap((issue) => issue.expression ?? [])
    .filter((path) => /^[A-Z][A-Za-z]*(\.[a-z][A-Za-z]*(\[(\d+|x)\])?)*$/.test(path));
  const shown = [...new Set(paths)].slice(0, 3);
  return shown.length > 0 ? ` at ${shown.join(', ')}` : '';
}

/**
 * An accepted message that left fields out, or records as a newer message had set them:
 * stored with the first warning's code and one line per warning, which its ACK, and a
 * resend's, give back as ERR warnings (W).
 */
function withWarnings(processed: Hl7Outcome, warnings: { text: string }[]): Hl7Outcome {
  const [first] = warnings;
  if (!first) return processed;
  return {
    ...processed,
    errorCode: warningOf(first.text).code,
    errorText: warnings.map((w) => w.text).join('\n'),
  };
}

/**
 * A warning line as an ERR: a field left out names its place (`PID-7 (birth date) in PID #2
 * ...` is PID^2^7) and is a data type error (102), or a code of no table (103); records kept
 * from an older message, and results a whole report withdrew by leaving them out, are no error
 * of the message (0, accepted).
 */
function warningOf(text: string): AckError {
  const [, segment = '', field = ''] = /^([A-Z][A-Z0-9]{2})-(\d+)/.exec(text) ?? [];
  const sequence = Number(/ in [A-Z][A-Z0-9]{2} #(\d+) /.exec(text)?.[1] ?? 1);
  return {
    code: accepted(text) ? '0' : text.includes(NOT_IN_TABLE) ? '103' : '102',
    text,
    severity: 'W',
    ...(segment ? { location: [segment, sequence, Number(field)] as const } : {}),
  };
}

function accepted(text: string): boolean {
  return (
    text.startsWith(KEPT_WARNING) ||
    text.startsWith(UNTIED_WARNING) ||
    text.includes(WITHDRAWN_WARNING)
  );
}

function errorOf(outcome: {
  ackCode: string | null;
  errorCode: string | null;
  errorText: string | null;
}): AckError | AckError[] | undefined {
  if (outcome.ackCode === 'AA' && outcome.errorText) {
    return outcome.errorText.split('\n').map(warningOf);
  }
  return outcome.errorCode && isHl7ErrorCode(outcome.errorCode)
    ? { code: outcome.errorCode, text: outcome.errorText ?? HL7_ERRORS[outcome.errorCode] }
    : undefined;
}

/**
 * MSH-9 as the row keeps it, in plaintext and in the audit trail: a message code and event of
 * HL7's shape (three letters or digits: `ADT^A01`, `ZZZ^Z01`), else `unknown` in its place. A
 * sender's free text there (`ZZZ^<a name>`) was kept as sent until 2026-12-06.
 */
function storedMessageType({ messageCode, triggerEvent }: Hl7Header): string {
  // In capitals, as HL7_IGNORE compares them: `adt^a08` is an ADT^A08.
  const shaped = (part: string): string =>
    /^[A-Z0-9]{3}$/i.test(part) ? part.toUpperCase() : 'unknown';
  return `${shaped(messageCode)}^${triggerEvent === '' ? '' : shaped(triggerEvent)}`;
}
