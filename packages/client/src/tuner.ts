import type { Clock } from './clock.js';
import type { HeartbeatPolicy, LearnedHeartbeat } from './heartbeat.js';
import type { Session } from './session.js';

/**
 * Applies a heartbeat policy to sessions: keeps the policy's state for the current network,
 * feeds it evidence, remembers what it learns, and keeps three intervals consistent:
 *
 * - wanted: what the policy asks for (foreground or background);
 * - declared: what the server was told (`hello.hb`, then `{t:'ping', hb}` when it changes);
 * - effective: what the session pings at — wanted, but never longer than a lower `hb` the
 *   server accepted in `welcome` (the server clamps to its bounds).
 */
export interface HeartbeatTuner {
  readonly networkKey: string;
  /** Seconds between pings the policy wants now. */
  readonly wanted: number;
  /** Seconds between pings for the current session. */
  readonly effective: number;
  /** Switches to a network, resuming what was learned on it (if anything). */
  use(networkKey: string, learned: LearnedHeartbeat | undefined): void;
  /** The interval to declare in a new session's hello. */
  hello(): number;
  /** The server accepted `hb`: if lower than declared, it is a ceiling for this session. */
  welcome(hb: number): void;
  /** Foreground/background; returns whether anything changed. */
  background(on: boolean): boolean;
  /** Feeds evidence to the policy; returns whether its state changed (then retune). */
  evidence(ok: boolean, idle: number): boolean;
  /** Applies the intervals to an open session, declaring a changed one with `{t:'ping', hb}`. */
  retune(session: Session): void;
}

export function createTuner(o: {
  policy: HeartbeatPolicy;
  clock: Clock;
  networkKey: string;
  remember: (networkKey: string, learned: LearnedHeartbeat) => void;
}): HeartbeatTuner {
  const { policy } = o;
  let networkKey = o.networkKey;
  let state = policy.start(undefined);
  let background = false;
  let declared = 0;
  /** A lower `hb` the server accepted in this session's welcome (Infinity: none). */
  let cap = Number.POSITIVE_INFINITY;
  const wanted = (): number => Math.max(1, Math.round(policy.interval(state, background)));
  const effective = (): number => Math.min(wanted(), cap);
  return {
    get networkKey() {
      return networkKey;
    },
    get wanted() {
      return wanted();
    },
    get effective() {
      return effective();
    },
    use(key, learned) {
      networkKey = key;
      state = policy.start(learned);
    },
    hello() {
      cap = Number.POSITIVE_INFINITY;
      declared = wanted();
      return declared;
    },
    welcome(hb) {
      cap = hb < declared ? hb : Number.POSITIVE_INFINITY;
    },
    background(on) {
      const changed = background !== on;
      background = on;
      return changed;
    },
    evidence(ok, idle) {
      const before = state;
      const now = o.clock.now();
      state = ok ? policy.success(before, idle, now) : policy.failure(before, idle, now);
      if (state === before) return false;
      const learned = policy.learned(state);
      if (learned) o.remember(networkKey, learned);
      return true;
    },
    retune(session) {
      if (effective() !== session.interval) session.heartbeat(effective(), policy.pongTimeout);
      if (wanted() !== declared) {
        declared = wanted();
        session.ping({ hb: declared });
      }
    },
  };
}
