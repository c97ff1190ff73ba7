import type { DataSource, QueryRunner } from 'typeorm';
import { UnitOfWork } from '../../src/database/unit-of-work.js';
import { FhirService } from '../../src/fhir/fhir.service.js';
import { HL7_USER } from '../../src/hl7/hl7-user.js';
import type { TestApp } from './test-app.js';

/**
 * Holds work back at `wait` until `release`; `reached` says when it has got that far: how a
 * test stops one transaction at a chosen point while another runs.
 */
export function gate(): { reached: Promise<void>; wait: () => Promise<void>; release: () => void } {
  let reach!: () => void;
  let release!: () => void;
  const reached = new Promise<void>((resolve) => (reach = resolve));
  const released = new Promise<void>((resolve) => (release = resolve));
  return {
    reached,
    wait: () => {
      reach();
      return released;
    },
    release,
  };
}

/**
 * Resolves once a session of this database waits for a lock, running a statement like
 * `queryLike` (a LIKE pattern): how a test knows the interleaving it set up has happened.
 * Fails, naming `what`, after ten seconds.
 */
export async function untilWaitingForLock(
  data: DataSource,
  what: string,
  queryLike = '%',
): Promise<void> {
  for (let waited = 0; waited <= 10_000; waited += 50) {
    const [lock] = await data.query<{ waiting: number }[]>(
      `SELECT count(*)::int AS waiting FROM pg_stat_activity
        WHERE datname = current_database() AND wait_event_type = 'Lock' AND query LIKE $1`,
      [queryLike],
    );
    if (lock!.waiting > 0) return;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`${what} never waited for a lock`);
}

/**
 * Makes the test's own session (in `runner`'s open transaction) the one PostgreSQL does not
 * end when it closes a deadlock. Each waiter checks for a deadlock once, deadlock_timeout after
 * it began to wait, and the one whose check finds the cycle is rolled back: with the service's
 * sessions at the default second and this one at a minute, the service's check comes first as
 * long as this session begins waiting within that second. Timing alone (asking a few hundred
 * ms after the service began waiting) was not enough on a loaded machine. The setting needs a
 * superuser, as the embedded server's and CI's are; elsewhere timing is all there is.
 */
export async function neverTheDeadlockVictim(runner: QueryRunner): Promise<void> {
  const [role] = (await runner.query("SELECT current_setting('is_superuser') AS superuser")) as {
    superuser: string;
  }[];
  if (role!.superuser === 'on') await runner.query("SET LOCAL deadlock_timeout = '1min'");
}

/**
 * Deletes a resource in a transaction that stays open (its row lock held) until `release`,
 * which commits it: a plain DELETE takes no criteria lock, so a test can make it commit
 * between another write's search, which found the resource live, and that write's row lock.
 */
export async function heldDelete(
  testApp: TestApp,
  type: string,
  id: string,
): Promise<{ release: () => Promise<void> }> {
  let commit!: () => void;
  const held = new Promise<void>((resolve) => (commit = resolve));
  let deleted = false;
  const deleting = testApp.app.get(UnitOfWork).run(async () => {
    await testApp.app.get(FhirService).delete({ ...HL7_USER, roles: ['doctor'] }, type, id);
    deleted = true;
    await held;
  });
  while (!deleted) await new Promise((resolve) => setTimeout(resolve, 10));
  return {
    release: async () => {
      commit();
      await deleting;
    },
  };
}
