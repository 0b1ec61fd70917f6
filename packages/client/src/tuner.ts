import type { Clock } from './clock.js';
import type { HeartbeatPolicy, HeartbeatState, LearnedHeartbeat } from './heartbeat.js';
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
export class HeartbeatTuner {
  readonly policy: HeartbeatPolicy;
  readonly #clock: Clock;
  readonly #remember: (networkKey: string, learned: LearnedHeartbeat) => void;
  #networkKey: string;
  #state: HeartbeatState;
  #background = false;
  #declared = 0;
  #serverCap = Number.POSITIVE_INFINITY;

  constructor(options: {
    policy: HeartbeatPolicy;
    clock: Clock;
    networkKey: string;
    remember: (networkKey: string, learned: LearnedHeartbeat) => void;
  }) {
    this.policy = options.policy;
    this.#clock = options.clock;
    this.#remember = options.remember;
    this.#networkKey = options.networkKey;
    this.#state = options.policy.start(undefined);
  }

  get networkKey(): string {
    return this.#networkKey;
  }

  /** Seconds between pings the policy wants now. */
  get wanted(): number {
    return Math.max(1, Math.round(this.policy.interval(this.#state, this.#background)));
  }

  /** Seconds between pings for the current session. */
  get effective(): number {
    return Math.min(this.wanted, this.#serverCap);
  }

  /** Switches to a network, resuming what was learned on it (if anything). */
  use(networkKey: string, learned: LearnedHeartbeat | undefined): void {
    this.#networkKey = networkKey;
    this.#state = this.policy.start(learned);
  }

  /** The interval to declare in a new session's hello. */
  hello(): number {
    this.#serverCap = Number.POSITIVE_INFINITY;
    this.#declared = this.wanted;
    return this.#declared;
  }

  /** The server accepted `hb`: if lower than declared, it is a ceiling for this session. */
  welcome(hb: number): void {
    this.#serverCap = hb < this.#declared ? hb : Number.POSITIVE_INFINITY;
  }

  /** Foreground/background; returns whether anything changed. */
  background(on: boolean): boolean {
    if (this.#background === on) return false;
    this.#background = on;
    return true;
  }

  /** Feeds evidence to the policy; returns whether its state changed (then retune). */
  evidence(ok: boolean, idle: number): boolean {
    const before = this.#state;
    const now = this.#clock.now();
    this.#state = ok ? this.policy.success(before, idle, now) : this.policy.failure(before, idle, now);
    if (this.#state === before) return false;
    const learned = this.policy.learned(this.#state);
    if (learned) this.#remember(this.#networkKey, learned);
    return true;
  }

  /** Applies the intervals to an open session, declaring a changed one with `{t:'ping', hb}`. */
  retune(session: Session): void {
    if (this.effective !== session.interval) session.heartbeat(this.effective, this.policy.pongTimeout);
    if (this.wanted !== this.#declared) {
      this.#declared = this.wanted;
      session.ping({ hb: this.#declared });
    }
  }
}
