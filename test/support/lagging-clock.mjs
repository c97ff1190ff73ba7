// Preloaded (`node --import`) into a service a test starts: its wall clock runs
// TEST_CLOCK_LAG_MS behind the host's, as an application host's does behind its database
// server's when their clocks are not synchronised. The monotonic clock (performance.now) is
// left as it is: only the wall clock is skewed between hosts.
const RealDate = Date;
const lagMs = Number(process.env.TEST_CLOCK_LAG_MS ?? 0);

class LaggingDate extends RealDate {
  constructor(...args) {
    if (args.length === 0) super(RealDate.now() - lagMs);
    else super(...args);
  }

  static now() {
    return RealDate.now() - lagMs;
  }
}

globalThis.Date = LaggingDate;
