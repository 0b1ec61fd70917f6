/**
 * Lets one log line of a kind through per window and counts those held back, so that a failing
 * store (Redis away, a dead SQLite writer) logs a few lines a minute instead of one per ack or
 * per connection attempt. Pure: time comes in as an argument.
 */
export class LogThrottle {
  private next = Number.NEGATIVE_INFINITY;
  private held = 0;

  constructor(private readonly windowMs: number) {}

  /**
   * `undefined` when this occurrence should not be logged; otherwise how many were held back since
   * the last one logged (include it in the line).
   */
  take(now: number): number | undefined {
    if (now < this.next) {
      this.held++;
      return undefined;
    }
    this.next = now + this.windowMs;
    const held = this.held;
    this.held = 0;
    return held;
  }
}
