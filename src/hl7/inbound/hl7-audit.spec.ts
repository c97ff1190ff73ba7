import { randomUUID } from 'node:crypto';
import { Hl7MessageEntity } from '../store/hl7-message.entity.js';
import type { Hl7Outcome } from '../store/hl7-message.repository.js';
import { hl7AuditEntry } from './hl7-audit.js';

function message(): Hl7MessageEntity {
  return Object.assign(new Hl7MessageEntity(), {
    id: randomUUID(),
    receivedAt: new Date(),
    channel: 'mllp',
    peer: '10.0.0.7',
    peerCertificate: null,
    sendingApplication: 'LAB',
    sendingFacility: 'HOSP',
    messageType: 'ORU^R01',
    controlId: 'MSG-1',
    version: '2.5',
    contentHash: 'hash',
    raw: 'cv1.k000000000000.x.y.z',
    status: 'received',
    ackCode: null,
    errorCode: null,
    errorText: null,
    attempts: 0,
    processedAt: null,
  });
}

describe('hl7AuditEntry', () => {
  it('records a message as a success only when it was accepted (AA), whatever the failure', () => {
    // An AE (kept for reprocessing: nothing, or not all, was stored) is as much a failure as
    // an AR: the trail must not list a message whose records were not written as a success.
    const outcomes: [Hl7Outcome, string, string][] = [
      [{ status: 'processed', ackCode: 'AA', errorCode: null, errorText: null }, 'success', 'AA'],
      [
        { status: 'ignored', ackCode: 'AA', errorCode: null, errorText: null },
        'success',
        'AA ignored',
      ],
      [{ status: 'error', ackCode: 'AE', errorCode: '207', errorText: 'x' }, 'failure', 'AE 207'],
      [
        { status: 'rejected', ackCode: 'AR', errorCode: '200', errorText: 'x' },
        'failure',
        'AR 200',
      ],
    ];
    for (const [outcome, expected, detail] of outcomes) {
      const entry = hl7AuditEntry(message(), outcome);
      expect({ ack: outcome.ackCode, outcome: entry.outcome, detail: entry.detail }).toEqual({
        ack: outcome.ackCode,
        outcome: expected,
        detail,
      });
    }
  });
});
