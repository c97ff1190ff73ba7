import { Injectable, Logger } from '@nestjs/common';
import { randomUUID } from 'node:crypto';
import { AuditTrail } from '../../audit/audit-trail.js';
import { BlindIndexer } from '../../crypto/blind-index.js';
import { buildAck, type AckCode } from '../message/ack.js';
import {
  decodeMessage,
  HL7_ERRORS,
  Hl7RejectError,
  isHl7ErrorCode,
  type DecodedMessage,
} from '../message/hl7-header.js';
import type { Hl7MessageEntity } from '../store/hl7-message.entity.js';
import { hl7AuditEntry } from './hl7-audit.js';
import { Hl7MessageRepository, type Hl7Outcome } from '../store/hl7-message.repository.js';

export interface Hl7Source {
  channel: 'mllp' | 'http';
  peer: string | null;
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
  ) {}

  /** The ACK, in the message's own character set (Latin-1 when MSH-18 says 8859/1). */
  async receive(payload: Buffer, source: Hl7Source): Promise<Buffer> {
    let decoded: DecodedMessage | undefined;
    let rejection: Hl7RejectError | undefined;
    try {
      decoded = decodeMessage(payload);
    } catch (error) {
      if (!(error instanceof Hl7RejectError)) throw error;
      rejection = error;
    }
    const ack = await this.answer(payload, decoded, rejection, source);
    const latin1 = decoded?.header.charset.toUpperCase() === '8859/1';
    return Buffer.from(ack, latin1 ? 'latin1' : 'utf8');
  }

  private async answer(
    payload: Buffer,
    decoded: DecodedMessage | undefined,
    rejection: Hl7RejectError | undefined,
    source: Hl7Source,
  ): Promise<string> {
    const header = decoded?.header;
    const text = decoded?.text ?? payload.toString('latin1');
    const { row, stored } = await this.repository.insertOrFind({
      id: randomUUID(),
      receivedAt: new Date(),
      channel: source.channel,
      peer: source.peer,
      sendingApplication: header?.sendingApplication ?? null,
      sendingFacility: header?.sendingFacility ?? null,
      messageType: header ? `${header.messageCode}^${header.triggerEvent}` : null,
      controlId: header?.controlId ?? null,
      version: header?.version ?? null,
      contentHash: this.blind.compute('hl7:message', text),
      raw: text,
    });
    if (!stored && (row.status === 'processed' || row.status === 'rejected')) {
      // A resend of a message already answered: the same answer, and nothing done twice.
      return buildAck(header, row.ackCode as AckCode, errorOf(row));
    }
    const outcome: Hl7Outcome = rejection
      ? {
          status: 'rejected',
          ackCode: 'AR',
          errorCode: rejection.code,
          errorText: rejection.message,
        }
      : await this.process(row, decoded!);
    await this.repository.recordOutcome(row.id, outcome, new Date());
    await this.trail.record(hl7AuditEntry(row, outcome));
    return buildAck(header, outcome.ackCode as AckCode, errorOf(outcome));
  }

  /**
   * No message type is mapped to FHIR yet (the v2-to-FHIR segment maps are the next step of
   * this work): each message is kept and refused as unsupported, and can be reprocessed once
   * its mapping exists.
   */
  private process(row: Hl7MessageEntity, decoded: DecodedMessage): Promise<Hl7Outcome> {
    const code = decoded.header.triggerEvent ? '201' : '200';
    this.logger.warn({ id: row.id, type: row.messageType }, 'HL7 message type not supported');
    return Promise.resolve({
      status: 'rejected',
      ackCode: 'AR',
      errorCode: code,
      errorText: `${HL7_ERRORS[code]}: no mapping to FHIR for this message type`,
    });
  }
}

function errorOf(outcome: { errorCode: string | null; errorText: string | null }) {
  return outcome.errorCode && isHl7ErrorCode(outcome.errorCode)
    ? { code: outcome.errorCode, text: outcome.errorText ?? HL7_ERRORS[outcome.errorCode] }
    : undefined;
}
