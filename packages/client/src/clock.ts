/**
 * Time source and timers. Every timer of the SDK goes through one, so tests run hours of
 * reconnects and heartbeats in milliseconds of virtual time.
 *
 * `now()` should be wall-clock time (like `Date.now()`), which keeps advancing while the machine
 * sleeps: that is how a timer that fires late after a suspend is recognised as late.
 */
export interface Clock {
  /** Milliseconds since the epoch. */
  now(): number;
  /** Calls `fn` once after about `ms` milliseconds; returns a handle for {@link Clock.clearTimeout}. */
  setTimeout(fn: () => void, ms: number): unknown;
  /** Cancels a timer; unknown or already fired handles are ignored. */
  clearTimeout(handle: unknown): void;
}

/** The real clock: `Date.now()` and the global timers. */
export const systemClock: Clock = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => globalThis.setTimeout(fn, ms),
  clearTimeout: (handle) => globalThis.clearTimeout(handle as ReturnType<typeof globalThis.setTimeout>),
};
