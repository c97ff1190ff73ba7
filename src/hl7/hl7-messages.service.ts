import { Injectable } from '@nestjs/common';
import { AppError } from '../common/errors/app-error.js';
import { messageListQuery } from './list-query.js';
import type { Hl7MessageEntity, Hl7MessageStatus } from './store/hl7-message.entity.js';
import { Hl7MessageRepository } from './store/hl7-message.repository.js';

/** A stored message as listed: its header and outcome, never its content. */
export interface Hl7MessageSummary {
  id: string;
  receivedAt: Date;
  channel: string;
  sendingApplication: string | null;
  sendingFacility: string | null;
  messageType: string | null;
  controlId: string | null;
  status: Hl7MessageStatus;
  ackCode: string | null;
  errorCode: string | null;
  errorText: string | null;
  attempts: number;
  processedAt: Date | null;
}

/** The stored messages as operators list them (`GET /hl7/messages`). */
@Injectable()
export class Hl7Messages {
  constructor(private readonly repository: Hl7MessageRepository) {}

  /**
   * The messages the query asks for, one more than `limit` when there are more (the caller's
   * next link), each as its summary.
   */
  async list(
    query: Record<string, unknown>,
  ): Promise<{ messages: Hl7MessageSummary[]; limit: number }> {
    const { filter, limit } = messageListQuery(query);
    if (filter.after !== undefined && !(await this.repository.findById(filter.after))) {
      throw AppError.invalid('_after names no stored message');
    }
    const rows = await this.repository.list(filter, limit + 1);
    return { messages: rows.map(summary), limit };
  }

  /**
   * Sets a message that failed (`error`, `rejected`) aside as `dismissed`: its sender sent a
   * correction, so it no longer needs attention, where until 2026-12-06 it stayed listed as an
   * error, and counted in carevault_hl7_messages_stored, for good. A reprocess still takes it.
   */
  async dismiss(id: string): Promise<Hl7MessageSummary> {
    const row = await this.repository.findById(id);
    if (!row) throw AppError.notFound('HL7 message not found');
    if (!(await this.repository.dismiss(id))) {
      throw AppError.conflict(
        `Only a message that failed (error, rejected) is dismissed; this one is ${row.status}`,
      );
    }
    return summary({ ...row, status: 'dismissed' });
  }
}

function summary({
  raw: _raw,
  contentHash: _hash,
  peer: _peer,
  peerCertificate: _certificate,
  version: _version,
  ...rest
}: Hl7MessageEntity): Hl7MessageSummary {
  return rest;
}
