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
  private readonly _clock: Clock;
  private readonly _remember: (networkKey: string, learned: LearnedHeartbeat) => void;
  private _networkKey: string;
  private _state: HeartbeatState;
  private _background = false;
  private _declared = 0;
  private _serverCap = Number.POSITIVE_INFINITY;

  constructor(options: {
    policy: HeartbeatPolicy;
    clock: Clock;
    networkKey: string;
    remember: (networkKey: string, learned: LearnedHeartbeat) => void;
  }) {
    this.policy = options.policy;
    this._clock = options.clock;
    this._remember = options.remember;
    this._networkKey = options.networkKey;
    this._state = options.policy.start(undefined);
  }

  get networkKey(): string {
    return this._networkKey;
  }

  /** Seconds between pings the policy wants now. */
  get wanted(): number {
    return Math.max(1, Math.round(this.policy.interval(this._state, this._background)));
  }

  /** Seconds between pings for the current session. */
  get effective(): number {
    return Math.min(this.wanted, this._serverCap);
  }

  /** Switches to a network, resuming what was learned on it (if anything). */
  use(networkKey: string, learned: LearnedHeartbeat | undefined): void {
    this._networkKey = networkKey;
    this._state = this.policy.start(learned);
  }

  /** The interval to declare in a new session's hello. */
  hello(): number {
    this._serverCap = Number.POSITIVE_INFINITY;
    this._declared = this.wanted;
    return this._declared;
  }

  /** The server accepted `hb`: if lower than declared, it is a ceiling for this session. */
  welcome(hb: number): void {
    this._serverCap = hb < this._declared ? hb : Number.POSITIVE_INFINITY;
  }

  /** Foreground/background; returns whether anything changed. */
  background(on: boolean): boolean {
    if (this._background === on) return false;
    this._background = on;
    return true;
  }

  /** Feeds evidence to the policy; returns whether its state changed (then retune). */
  evidence(ok: boolean, idle: number): boolean {
    const before = this._state;
    const now = this._clock.now();
    this._state = ok ? this.policy.success(before, idle, now) : this.policy.failure(before, idle, now);
    if (this._state === before) return false;
    const learned = this.policy.learned(this._state);
    if (learned) this._remember(this._networkKey, learned);
    return true;
  }

  /** Applies the intervals to an open session, declaring a changed one with `{t:'ping', hb}`. */
  retune(session: Session): void {
    if (this.effective !== session.interval) session.heartbeat(this.effective, this.policy.pongTimeout);
    if (this.wanted !== this._declared) {
      this._declared = this.wanted;
      session.ping({ hb: this._declared });
    }
  }
}
