import { MemoryThrottlerStorage } from './memory-throttler-storage.js';

describe('MemoryThrottlerStorage', () => {
  let storage: MemoryThrottlerStorage;

  beforeEach(() => {
    storage = new MemoryThrottlerStorage();
  });

  afterEach(() => storage.onModuleDestroy());

  it('counts hits per key and throttler in a fixed window, and blocks past the limit', async () => {
    for (let hit = 1; hit <= 3; hit++) {
      expect(await storage.increment('10.0.0.1', 60_000, 3, 30_000, 'client')).toMatchObject({
        totalHits: hit,
        isBlocked: false,
        timeToBlockExpire: 0,
      });
    }
    expect(await storage.increment('10.0.0.2', 60_000, 3, 30_000, 'client')).toMatchObject({
      totalHits: 1,
    });
    expect(await storage.increment('10.0.0.1', 60_000, 3, 30_000, 'login')).toMatchObject({
      totalHits: 1,
    });
    const refused = await storage.increment('10.0.0.1', 60_000, 3, 30_000, 'client');
    expect(refused).toMatchObject({ totalHits: 4, isBlocked: true, timeToBlockExpire: 30 });
    // Blocked requests do not count, and stay refused until the block ends.
    expect(await storage.increment('10.0.0.1', 60_000, 3, 30_000, 'client')).toMatchObject({
      totalHits: 4,
      isBlocked: true,
    });
  });

  it('starts a new window once the last one ends, and sweeps counters that hold nothing back', async () => {
    await storage.increment('10.0.0.1', 1, 1, 1, 'client');
    await new Promise((resolve) => setTimeout(resolve, 5));
    expect(await storage.increment('10.0.0.1', 60_000, 1, 1, 'client')).toMatchObject({
      totalHits: 1,
      isBlocked: false,
    });
    await storage.increment('10.0.0.3', 1, 5, 1, 'client');
    storage.sweep(Date.now() + 10);
    expect(storage.size).toBe(1);
  });
});
