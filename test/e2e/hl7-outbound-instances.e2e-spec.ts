import { randomUUID } from 'node:crypto';
import { getDataSourceToken } from '@nestjs/typeorm';
import type { DataSource } from 'typeorm';
import { UnitOfWork } from '../../src/database/unit-of-work.js';
import type { Hl7OutboxEntity } from '../../src/hl7/outbound/hl7-outbox.entity.js';
import { Hl7OutboxRepository } from '../../src/hl7/outbound/hl7-outbox.repository.js';
import { gate } from '../support/locks.js';
import { createTestApp, type TestApp } from '../support/test-app.js';

/**
 * Two instances sending one destination's outbox: the sender's transactions, run as two real
 * ones. The destination is named by no HL7_OUTBOUND, so no worker sends it: the test alone
 * claims and records.
 */
describe('HL7 outbound, with two instances', () => {
  let testApp: TestApp;
  let db: DataSource;
  let unitOfWork: UnitOfWork;
  let outbox: Hl7OutboxRepository;

  const message = (destination: string, type: string) => ({
    destination,
    messageType: type,
    controlId: randomUUID().slice(0, 20),
    resourceType: 'Patient',
    resourceId: randomUUID(),
    versionId: 1,
    message: `MSH|^~\\&|CAREVAULT||||||${type}`,
  });

  beforeAll(async () => {
    testApp = await createTestApp();
    db = testApp.app.get<DataSource>(getDataSourceToken());
    unitOfWork = testApp.app.get(UnitOfWork);
    outbox = testApp.app.get(Hl7OutboxRepository);
  });

  afterAll(async () => {
    await testApp.close();
  });

  it('never lets a second instance send to a destination another is sending to, though an earlier message commits late', async () => {
    const destination = `instances-${randomUUID()}:2575`;
    try {
      // A write's transaction queues its A04 (the lower seq), then takes its time to commit.
      const committing = gate();
      const late = unitOfWork.run(async () => {
        await outbox.add([message(destination, 'ADT^A04')], new Date('2000-01-01'));
        await committing.wait();
      });
      await committing.reached;
      await unitOfWork.run(() =>
        outbox.add([message(destination, 'ADT^A08')], new Date('2000-01-01')),
      );

      // Instance A claims the head it can see (the A08) and sends it.
      const sending = gate();
      let claimedByA: Hl7OutboxEntity | undefined;
      const a = unitOfWork.run(async () => {
        claimedByA = await outbox.claimNext(destination, 60_000);
        await sending.wait();
        await outbox.recordAttempt(claimedByA!.id, {
          status: 'sent',
          attempts: 1,
          failedDeliveries: 0,
          nextAttemptAt: claimedByA!.nextAttemptAt,
          ackCode: 'AA',
          lastError: null,
          sentAt: new Date(),
        });
      });
      await sending.reached;
      expect(claimedByA?.messageType).toBe('ADT^A08');

      // Meanwhile the A04 commits: it heads the queue as far as instance B can see.
      committing.release();
      await late;
      const claiming = gate();
      let claimedByB: Hl7OutboxEntity | undefined;
      const b = unitOfWork.run(async () => {
        claimedByB = await outbox.claimNext(destination, 60_000);
        await claiming.wait();
      });
      await claiming.reached;
      // Until 2026-12-07 B took the A04 and sent it while A was sending the A08: two messages
      // in flight to one receiver at once, over two connections, taken in either order.
      expect(claimedByB).toBeUndefined();

      sending.release();
      claiming.release();
      await Promise.all([a, b]);
      // Once A is done, the destination's queue is served again: the A04 is claimed.
      const next = await unitOfWork.run(() => outbox.claimNext(destination, 60_000));
      expect(next?.messageType).toBe('ADT^A04');
    } finally {
      // No row left pending for a destination no instance sends to (warned of at each start).
      await db.query('DELETE FROM hl7_outbox WHERE destination = $1', [destination]);
    }
  });
});
