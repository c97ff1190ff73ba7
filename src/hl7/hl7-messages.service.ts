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
