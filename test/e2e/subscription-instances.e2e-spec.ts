import { randomUUID } from 'node:crypto';
import { getDataSourceToken } from '@nestjs/typeorm';
import type { DataSource } from 'typeorm';
import { UnitOfWork } from '../../src/database/unit-of-work.js';
import {
  SubscriptionRepository,
  type PendingNotification,
} from '../../src/subscriptions/subscription.repository.js';
import { gate, untilWaitingForLock } from '../support/locks.js';
import { createTestApp, type TestApp } from '../support/test-app.js';

/**
 * Two instances delivering one outbox: the notifier's transactions, run as two real ones. No
 * notifier runs here (no SUBSCRIPTION_ENDPOINTS), so the test alone claims and settles.
 */
describe('Subscription notifications, with two instances', () => {
  let testApp: TestApp;
  let db: DataSource;
  let unitOfWork: UnitOfWork;
  let repository: SubscriptionRepository;

  // Due long ago, so that they come before anything other specs left pending.
  const enqueue = (query: (sql: string, params: unknown[]) => Promise<unknown>, sub: string) =>
    query(
      `INSERT INTO subscription_notification
         (subscription_id, resource_type, resource_id, version_id, created_at, status, next_attempt_at)
       VALUES ($1, 'Observation', $2, 1, now(), 'pending', '2000-01-01')`,
      [sub, randomUUID()],
    );

  beforeAll(async () => {
    testApp = await createTestApp();
    db = testApp.app.get<DataSource>(getDataSourceToken());
    unitOfWork = testApp.app.get(UnitOfWork);
    repository = testApp.app.get(SubscriptionRepository);
  });

  afterAll(async () => {
    await testApp.close();
  });

  it('never lets a second instance claim a Subscription whose head another is sending, though an earlier notification commits late', async () => {
    const sub = `sub-${randomUUID()}`;
    // A write's transaction queues its notification, then takes its time to commit.
    const late = db.createQueryRunner();
    await late.connect();
    await late.startTransaction();
    await enqueue((sql, params) => late.query(sql, params), sub);
    await enqueue((sql, params) => db.query(sql, params), sub);

    // Instance A claims the head it can see (the later one) and sends it.
    const sending = gate();
    let claimedByA: PendingNotification | undefined;
    const a = unitOfWork.run(async () => {
      claimedByA = await repository.claimNext(60_000);
      await sending.wait();
      const covered = await repository.pendingOf(sub);
      return repository.settle(
        claimedByA!,
        { status: 'sent', attempts: 1, lastError: null },
        covered,
      );
    });
    await sending.reached;
    expect(claimedByA?.subscriptionId).toBe(sub);

    // Meanwhile the earlier one commits: it heads the queue as far as instance B can see.
    await late.commitTransaction();
    await late.release();
    const claiming = gate();
    let claimedByB: PendingNotification | undefined;
    const b = unitOfWork.run(async () => {
      claimedByB = await repository.claimNext(60_000);
      await claiming.wait();
    });
    await claiming.reached;
    // Until 2026-12-07 B took it, both POSTed, and the two settles deadlocked.
    expect(claimedByB?.subscriptionId).not.toBe(sub);

    // A settles both while B's transaction is still open: B gave back the row it looked at.
    sending.release();
    await expect(
      Promise.race([
        a,
        untilWaitingForLock(db, 'the settle', '%subscription_notification%').then(
          () => 'waited for a lock',
        ),
      ]),
    ).resolves.toBe(2);
    claiming.release();
    await b;
    const rows = await db.query<{ status: string }[]>(
      `SELECT status FROM subscription_notification WHERE subscription_id = $1 ORDER BY seq`,
      [sub],
    );
    expect(rows.map((row) => row.status)).toEqual(['sent', 'sent']);
  });
});
