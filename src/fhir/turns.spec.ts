import { setImmediate } from 'node:timers/promises';
import { mapInTurns, Turns, TURN_MS } from './turns.js';

describe('Turns', () => {
  /** A clock the test moves; and whether I/O-phase work (a setImmediate) ran meanwhile. */
  function setup() {
    let now = 0;
    const clock = { advance: (ms: number) => (now += ms) };
    let ran = 0;
    const other = () => void setImmediate().then(() => ran++);
    return { clock, turns: new Turns(() => now), other, ran: () => ran };
  }

  it('lets the event loop run once a turn is used up, and not before', async () => {
    const { clock, turns, other, ran } = setup();
    other();
    clock.advance(TURN_MS - 1);
    await turns.next();
    expect(ran()).toBe(0); // within the turn: no wait, not even for I/O already due
    clock.advance(1);
    await turns.next();
    expect(ran()).toBe(1);
    // A new turn starts after the wait.
    other();
    await turns.next();
    expect(ran()).toBe(1);
  });

  it('maps every item in order, yielding between items once a turn is used up', async () => {
    const { clock, turns, other, ran } = setup();
    const seen: number[] = [];
    const results = await mapInTurns(
      [1, 2, 3],
      (item, index) => {
        other();
        seen.push(ran());
        clock.advance(TURN_MS);
        return item * 10 + index;
      },
      turns,
    );
    expect(results).toEqual([10, 21, 32]);
    // Each item's setImmediate ran before the next item began.
    expect(seen).toEqual([0, 1, 2]);
  });
});
