import { setImmediate } from 'node:timers/promises';

/**
 * How long synchronous work on one request may hold the event loop before it lets others run
 * (/health, other requests, MLLP acks).
 */
export const TURN_MS = 10;

/**
 * Long synchronous work in turns: `next()` goes on at once while the turn is shorter than
 * TURN_MS, and past it waits for the event loop to run timers and I/O (setImmediate) first.
 * `await Promise.resolve()` is no such turn: microtasks all run before any I/O, so a transaction
 * Bundle of 8,000 creates held /health for 3.5 s while it was validated, indexed and encrypted.
 */
export class Turns {
  private started: number;

  constructor(
    private readonly now: () => number = () => performance.now(),
    private readonly turnMs = TURN_MS,
  ) {
    this.started = now();
  }

  async next(): Promise<void> {
    if (this.now() - this.started < this.turnMs) return;
    await setImmediate();
    this.started = this.now();
  }
}

/** `items.map(work)`, letting the event loop run between items once a turn is used up. */
export async function mapInTurns<T, R>(
  items: readonly T[],
  work: (item: T, index: number) => R,
  turns = new Turns(),
): Promise<R[]> {
  const results: R[] = [];
  for (const [index, item] of items.entries()) {
    await turns.next();
    results.push(work(item, index));
  }
  return results;
}
