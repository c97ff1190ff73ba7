import { DatabaseClock } from './database-clock.js';
import type { UnitOfWork } from './unit-of-work.js';

/** A UnitOfWork whose database answers the clock query with `answer()` (or throws). */
function databaseAnswering(answer: () => number): UnitOfWork {
  return {
    manager: { query: () => Promise.resolve([{ ms: answer() }]) },
  } as unknown as UnitOfWork;
}

describe('DatabaseClock', () => {
  it("follows the database's clock, not this host's", async () => {
    const databaseAhead = 60_000;
    const clock = new DatabaseClock(databaseAnswering(() => Date.now() + databaseAhead));
    await clock.refresh();
    const offset = clock.now().getTime() - Date.now();
    expect(offset).toBeGreaterThanOrEqual(databaseAhead);
    expect(offset).toBeLessThan(databaseAhead + 1_000);
  });

  it('is never earlier than the time the database gave, and rounds up', async () => {
    const clock = new DatabaseClock(databaseAnswering(() => 1_700_000_000_000.4));
    await clock.refresh();
    expect(clock.now().getTime()).toBeGreaterThanOrEqual(1_700_000_000_001);
  });

  it('never steps back when a new reading is behind what it said before', async () => {
    let databaseMs = 1_700_000_000_500;
    const clock = new DatabaseClock(databaseAnswering(() => databaseMs));
    await clock.refresh();
    const before = clock.now().getTime();
    databaseMs = 1_700_000_000_000;
    await clock.refresh();
    expect(clock.now().getTime()).toBeGreaterThanOrEqual(before);
  });

  it('keeps its last reading when the database cannot be read', async () => {
    let down = false;
    const clock = new DatabaseClock(
      databaseAnswering(() => {
        if (down) throw new Error('connection refused');
        return 1_700_000_000_000;
      }),
    );
    await clock.refresh();
    down = true;
    await clock.refresh();
    const now = clock.now().getTime();
    expect(now).toBeGreaterThanOrEqual(1_700_000_000_000);
    expect(now).toBeLessThan(1_700_000_010_000);
  });

  it("uses this host's clock until it has read the database's", () => {
    const clock = new DatabaseClock(databaseAnswering(() => 0));
    expect(Math.abs(clock.now().getTime() - Date.now())).toBeLessThan(1_000);
  });
});
