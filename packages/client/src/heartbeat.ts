/**
 * Heartbeat policies: small pure objects. A policy turns evidence ("a ping sent after N seconds
 * of silence was answered", "the connection died after N seconds of silence") into the interval
 * to ping at. All intervals are in seconds, like `hb` on the wire.
 *
 * - {@link fixedHeartbeat}: one interval, learns nothing.
 * - {@link adaptiveHeartbeat}: learns, per network, the longest interval the path's NATs and
 *   proxies tolerate, like WeChat's Mars "smart heartbeat".
 *
 * Default numbers, and where they come from (details in docs/client.md):
 * - RFC 5382 (REQ-5) requires NATs to keep an idle established TCP mapping at least 2 h 4 min,
 *   but deployed NATs are far shorter: cloud NATs document 4 min (Azure), 350 s (AWS NAT
 *   Gateway) and 20 min (Google Cloud NAT); measurement studies of home gateways (Hätönen et al.,
 *   IMC 2010) and of cellular carriers (Wang et al., SIGCOMM 2011) found idle timeouts from a few
 *   minutes up, varying widely. Reverse proxies in front of servers commonly cut idle WebSockets
 *   after 60 s (nginx `proxy_read_timeout`, AWS ALB idle timeout).
 * - Mars probes between 4 min 30 s and 9 min 50 s in 60 s steps, confirming each step 3 times.
 */

import { definedOnly } from './backoff.js';

/** What the adaptive policy has learned about one network; persisted in the client state. */
export interface LearnedHeartbeat {
  /** Interval (s) in use. */
  interval: number;
  /** Longest interval (s) proven to keep the connection (or the floor, `min`, before any proof). */
  good: number;
  /** Shortest interval (s) seen to fail, if any: the NAT timeout is below it. */
  ceiling?: number;
  /** When probing stopped (ms since the epoch); absent while probing. */
  settledAt?: number;
}

/** Live policy state for the current network. */
export interface HeartbeatState extends LearnedHeartbeat {
  /** Proven successes at `interval` since it was chosen. */
  successes: number;
  /** Consecutive failures at a proven interval. */
  failures: number;
}

/** A heartbeat policy. Pure: every method returns a new state (or the same one when nothing changed). */
export interface HeartbeatPolicy {
  readonly kind: 'fixed' | 'adaptive' | (string & {});
  /** Seconds to wait for a pong (or any frame) after a ping before declaring the socket dead. */
  readonly pongTimeout: number;
  /** State for a network, from what was learned on it before (if anything). */
  start(learned?: LearnedHeartbeat): HeartbeatState;
  /** Seconds between pings in this state; `background` when the app is in the background. */
  interval(state: HeartbeatState, background: boolean): number;
  /** A ping sent after `idle` seconds without traffic got its pong. `now` in ms since the epoch. */
  success(state: HeartbeatState, idle: number, now: number): HeartbeatState;
  /** The connection died silently (pong timeout, abnormal close) after `idle` seconds without traffic. */
  failure(state: HeartbeatState, idle: number, now: number): HeartbeatState;
  /** What to remember for this network, or undefined when the policy learns nothing. */
  learned(state: HeartbeatState): LearnedHeartbeat | undefined;
}

// ── fixed ────────────────────────────────────────────────────────────────────────────────────────

/** Settings of the fixed policy (seconds). */
export interface FixedHeartbeatOptions {
  /** Seconds between pings. Default 60: under the 4-minute NAT timeouts seen in the wild. */
  interval: number;
  /** Seconds to wait for the pong. Default 10. */
  pongTimeout: number;
  /** Seconds between pings while in the background. Default: same as `interval`. */
  backgroundInterval?: number;
}

export const DEFAULT_FIXED_HEARTBEAT: Readonly<FixedHeartbeatOptions> = { interval: 60, pongTimeout: 10 };

/**
 * Pings every `interval` seconds, whatever happens.
 * @example fixedHeartbeat({ interval: 30, pongTimeout: 5 })
 */
export function fixedHeartbeat(options: Partial<FixedHeartbeatOptions> = {}): HeartbeatPolicy {
  const interval = options.interval ?? DEFAULT_FIXED_HEARTBEAT.interval;
  const pongTimeout = options.pongTimeout ?? DEFAULT_FIXED_HEARTBEAT.pongTimeout;
  const background = options.backgroundInterval ?? interval;
  positive({ interval, pongTimeout, backgroundInterval: background });
  return {
    kind: 'fixed',
    pongTimeout,
    start: () => ({ interval, good: interval, successes: 0, failures: 0 }),
    interval: (_s, inBackground) => (inBackground ? background : interval),
    success: (s) => s,
    failure: (s) => s,
    learned: () => undefined,
  };
}

// ── adaptive ─────────────────────────────────────────────────────────────────────────────────────

/** Settings of the adaptive policy (seconds unless stated). */
export interface AdaptiveHeartbeatOptions {
  /** Floor, assumed safe everywhere. Default 30 (half the 60 s idle cut of common proxies). */
  min: number;
  /** Ceiling of probing. Default 600: iOS's minimum keep-alive period, about Mars's 9 min 50 s. */
  max: number;
  /** Where a network without history starts. Default 60. */
  initial: number;
  /** Growth per probe while no failure is known. Default 60, like Mars. */
  step: number;
  /** Proven pings at an interval before probing a longer one. Default 3, like Mars. */
  successesToProbe: number;
  /**
   * Probing stops once the gap between the proven interval and the failed one is at most this
   * fraction of the proven one (after a failure the policy bisects the gap). Default 0.1.
   */
  precision: number;
  /** Consecutive silent deaths at a proven interval before it is halved. Default 2. */
  maxFailures: number;
  /** Seconds after settling before probing once more (NATs change). Default 43 200 (12 h). */
  reprobeAfter: number;
  /** Seconds to wait for the pong. Default 10. */
  pongTimeout: number;
}

export const DEFAULT_ADAPTIVE_HEARTBEAT: Readonly<AdaptiveHeartbeatOptions> = {
  min: 30,
  max: 600,
  initial: 60,
  step: 60,
  successesToProbe: 3,
  precision: 0.1,
  maxFailures: 2,
  reprobeAfter: 43_200,
  pongTimeout: 10,
};

/** A ping counts as proof of an interval when the silence before it was at least this share of it. */
const PROOF_SHARE = 0.95;
/** Silence longer than this many intervals (plus the pong deadline) means the device slept. */
const OVERSLEPT = 1.5;

/**
 * Learns the longest interval a network tolerates:
 *
 * ```
 *  probing ──K proven pings──▶ interval += step (or bisect good…ceiling once a failure is known)
 *     │                                  │
 *     └──silent death beyond `good`──────┴─▶ interval = good (confirmed K times again before the
 *                                             next probe), ceiling = failed interval
 *  settled (ceiling − good ≤ precision·good, or good = max) ──reprobeAfter──▶ probe again
 *  settled ──maxFailures deaths at `good`──▶ good = max(min, good / 2), probing resumes
 * ```
 *
 * A NAT with idle timeout T in [min, max] ends with `good` in [T / (1 + precision), T): the
 * additive probes overshoot once, then bisection narrows the gap.
 * @example adaptiveHeartbeat({ min: 60, max: 900 })
 */
export function adaptiveHeartbeat(options: Partial<AdaptiveHeartbeatOptions> = {}): HeartbeatPolicy {
  const o = { ...DEFAULT_ADAPTIVE_HEARTBEAT, ...definedOnly(options) };
  positive(o);
  if (o.min > o.max || o.initial < o.min || o.initial > o.max) {
    throw new RangeError('adaptive heartbeat needs min ≤ initial ≤ max');
  }
  const clamp = (s: number) => Math.min(o.max, Math.max(o.min, Math.round(s)));

  const next = (s: HeartbeatState): number | undefined => {
    if (s.ceiling === undefined) return s.good < o.max ? clamp(s.good + o.step) : undefined;
    if (s.ceiling - s.good <= Math.max(1, s.good * o.precision)) return undefined;
    const mid = clamp((s.good + s.ceiling) / 2);
    return mid > s.good && mid < s.ceiling ? mid : undefined;
  };
  const advance = (s: HeartbeatState, now: number): HeartbeatState => {
    const n = next(s);
    return n === undefined
      ? { ...s, interval: s.good, successes: 0, settledAt: now }
      : { ...s, interval: n, successes: 0, settledAt: undefined };
  };

  return {
    kind: 'adaptive',
    pongTimeout: o.pongTimeout,
    start(learned) {
      if (learned === undefined || !(learned.good > 0)) {
        return { interval: o.initial, good: o.min, successes: 0, failures: 0 };
      }
      const good = clamp(learned.good);
      const s: HeartbeatState = {
        interval: clamp(learned.interval ?? good),
        good,
        successes: 0,
        failures: 0,
      };
      if (learned.ceiling !== undefined && learned.ceiling > good) s.ceiling = learned.ceiling;
      if (learned.settledAt !== undefined) s.settledAt = learned.settledAt;
      return s;
    },
    interval: (s) => s.interval,
    success(s, idle, now) {
      if (idle < s.interval * PROOF_SHARE) return s; // traffic interrupted the silence: no proof
      const st: HeartbeatState = {
        ...s,
        good: Math.max(s.good, s.interval),
        successes: s.successes + 1,
        failures: 0,
      };
      if (st.settledAt === undefined) return st.successes < o.successesToProbe ? st : advance(st, now);
      if (now - st.settledAt < o.reprobeAfter * 1000) return st;
      // Re-probe once: try the interval that failed last time (or one step more).
      const retry = st.ceiling ?? (st.good < o.max ? clamp(st.good + o.step) : undefined);
      if (retry === undefined || retry <= st.good) return { ...st, settledAt: now };
      return { ...st, ceiling: undefined, interval: retry, successes: 0, settledAt: undefined };
    },
    failure(s, idle, now) {
      if (idle > s.interval * OVERSLEPT + o.pongTimeout) return s; // the device slept: not about the NAT
      if (s.interval > s.good && idle > s.good) {
        // A probe failed: fall back to the proven interval; the NAT timeout is below this one.
        // Confirm it again before bisecting the gap (or settle when the gap is small enough).
        const ceiling = Math.min(s.ceiling ?? Number.POSITIVE_INFINITY, s.interval);
        const st: HeartbeatState = { ...s, ceiling, interval: s.good, successes: 0, failures: 0 };
        return next(st) === undefined ? { ...st, settledAt: now } : st;
      }
      if (idle < s.good * 0.9) return s; // died soon after traffic: not a heartbeat problem
      const failures = s.failures + 1;
      if (failures < o.maxFailures) return { ...s, failures };
      // The proven interval keeps failing: the network changed. Halve it and search again.
      const good = clamp(s.good / 2);
      return { interval: good, good, ceiling: Math.max(s.good, good + 1), successes: 0, failures: 0 };
    },
    learned(s) {
      const l: LearnedHeartbeat = { interval: s.interval, good: s.good };
      if (s.ceiling !== undefined) l.ceiling = s.ceiling;
      if (s.settledAt !== undefined) l.settledAt = s.settledAt;
      return l;
    },
  };
}

function positive(o: object): void {
  for (const [k, v] of Object.entries(o)) {
    if (v !== undefined && !(typeof v === 'number' && v > 0 && Number.isFinite(v))) {
      throw new RangeError(`heartbeat option "${k}" must be a positive number`);
    }
  }
}
