/**
 * Reconnect delays: small pure functions with injectable randomness.
 *
 * Exponential backoff with full jitter (the AWS Architecture Blog's "Exponential Backoff And
 * Jitter"): `delay = random() * min(max, initial * multiplier ^ attempt)`. Full jitter spreads a
 * crowd of clients that lost the same server over the whole window, so they do not come back as
 * a thundering herd.
 */

/** Reconnect backoff settings (milliseconds). */
export interface BackoffOptions {
  /** Cap of the first retry's delay. Default 500 ms. */
  initial: number;
  /** Largest cap. Default 30 s. */
  max: number;
  /** Growth of the cap per failed attempt. Default 2. */
  multiplier: number;
  /**
   * A session that stayed open this long resets the attempt counter when it ends, so the next
   * reconnect starts small again. Default 30 s. (Resetting on `welcome` instead would let a server
   * that accepts and then drops at once, or two tabs replacing each other, loop every half second.)
   */
  stableAfter: number;
}

export const DEFAULT_BACKOFF: Readonly<BackoffOptions> = {
  initial: 500,
  max: 30_000,
  multiplier: 2,
  stableAfter: 30_000,
};

/** Uniform random number in [0, 1). */
export type Random = () => number;

/**
 * Delay before retry number `attempt` (0 for the first retry after a failure).
 * @example backoffDelay(3, DEFAULT_BACKOFF, () => 0.5) // 0.5 * min(30000, 500 * 2^3) = 2000
 */
export function backoffDelay(
  attempt: number,
  options: BackoffOptions = DEFAULT_BACKOFF,
  random: Random = Math.random,
): number {
  const cap = Math.min(options.max, options.initial * options.multiplier ** Math.max(0, attempt));
  return clampRandom(random) * cap;
}

/**
 * Delay after a server's `goaway`: exactly `reconnectAfter` (the server already spreads clients
 * over its drain window) plus up to 10% jitter.
 */
export function goawayDelay(reconnectAfter: number, random: Random = Math.random): number {
  return Math.max(0, reconnectAfter) * (1 + 0.1 * clampRandom(random));
}

/**
 * Delay after `RATE_LIMITED`: at least `retryAfter` (plus up to 10% jitter so the refused crowd
 * does not return in step), and never less than the backoff for this attempt.
 */
export function rateLimitedDelay(
  retryAfter: number,
  attempt: number,
  options: BackoffOptions = DEFAULT_BACKOFF,
  random: Random = Math.random,
): number {
  return Math.max(goawayDelay(retryAfter, random), backoffDelay(attempt, options, random));
}

/** Validates backoff settings, filling defaults. Throws a RangeError on nonsense. */
export function resolveBackoff(options: Partial<BackoffOptions> = {}): BackoffOptions {
  const o = { ...DEFAULT_BACKOFF, ...definedOnly(options) };
  if (!(o.initial > 0) || !(o.max >= o.initial) || !(o.multiplier >= 1) || !(o.stableAfter >= 0)) {
    throw new RangeError('backoff needs 0 < initial ≤ max, multiplier ≥ 1, stableAfter ≥ 0');
  }
  return o;
}

function clampRandom(random: Random): number {
  const r = random();
  return Number.isFinite(r) ? Math.min(Math.max(r, 0), 1) : 0;
}

/** Drops keys whose value is undefined, so spreading over defaults keeps the defaults. */
export function definedOnly<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}
