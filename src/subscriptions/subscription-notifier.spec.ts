import { sendersFor } from './subscription-notifier.js';

describe('sendersFor', () => {
  it.each([
    [1, 1],
    [4, 1],
    [7, 1],
    [8, 2],
    [12, 3],
    [16, 4],
    [20, 4],
    [1000, 4],
  ])('a pool of %i sends %i at once', (pool, senders) => {
    expect(sendersFor(pool)).toBe(senders);
  });
});
