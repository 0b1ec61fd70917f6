import type { Clock } from '../clock.js';

/** Lets every pending promise callback run (all microtasks, then one macrotask turn). */
export const flush = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

interface Timer {
  at: number;
  fn: () => void;
}

/**
 * Virtual time for tests. Timers run only when the test advances the clock, in due order (ties
 * in creation order), with promise callbacks settled between timers, so hours of reconnects and
 * heartbeats take milliseconds.
 */
export class FakeClock implements Clock {
  #now: number;
  #seq = 0;
  readonly #timers = new Map<number, Timer>();

  constructor(start = Date.UTC(2025, 0, 1)) {
    this.#now = start;
  }

  now(): number {
    return this.#now;
  }

  setTimeout(fn: () => void, ms: number): unknown {
    const id = ++this.#seq;
    this.#timers.set(id, { at: this.#now + Math.max(0, Number.isFinite(ms) ? ms : 0), fn });
    return id;
  }

  clearTimeout(handle: unknown): void {
    this.#timers.delete(handle as number);
  }

  /** Number of pending timers. */
  get pending(): number {
    return this.#timers.size;
  }

  /** Runs every timer due within `ms`, then sets the time to now + ms. */
  async advance(ms: number): Promise<void> {
    const end = this.#now + ms;
    await flush();
    while (this.#runNext(end)) await flush();
    this.#now = Math.max(this.#now, end);
    await flush();
  }

  /**
   * The machine sleeps (laptop lid closed, app suspended): time jumps by `ms` and no timer fires
   * meanwhile; then the overdue timers fire, late, in order.
   */
  async sleep(ms: number): Promise<void> {
    this.#now += ms;
    await this.advance(0);
  }

  /**
   * Runs timers one by one until `predicate` holds; returns the virtual time that took.
   * Throws when it does not hold within `maxMs`.
   */
  async until(predicate: () => boolean, maxMs = 24 * 3_600_000): Promise<number> {
    const start = this.#now;
    const end = start + maxMs;
    await flush();
    while (!predicate()) {
      if (!this.#runNext(end)) throw new Error(`condition not reached within ${maxMs} ms of virtual time`);
      await flush();
    }
    return this.#now - start;
  }

  #runNext(limit: number): boolean {
    let bestId = -1;
    let best: Timer | undefined;
    for (const [id, t] of this.#timers) {
      if (t.at <= limit && (best === undefined || t.at < best.at)) {
        best = t;
        bestId = id;
      }
    }
    if (best === undefined) return false;
    this.#timers.delete(bestId);
    this.#now = Math.max(this.#now, best.at);
    best.fn();
    return true;
  }
}
