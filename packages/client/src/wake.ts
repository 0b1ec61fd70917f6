import type { Clock } from './clock.js';
import type { Disposer } from './emitter.js';
import type { ConnectionState } from './state.js';
import { createTimers } from './timers.js';

/** What {@link runWake} reports. */
export interface WakeReport {
  /** Client state when the wake resolved. */
  state: ConnectionState;
  /** True when a live connection was confirmed during the wake (pong or welcome) and is open. */
  connected: boolean;
  /** Messages handed to the app during the wake. */
  messages: number;
  /** Milliseconds the wake took; always less than the deadline it was given. */
  durationMs: number;
}

/** What a wake needs from the client. */
export interface WakeHost {
  readonly clock: Clock;
  state(): ConnectionState;
  /** Pings now on an open session; false if none is open. */
  ping(): boolean;
  /** Connects now (no backoff) unless already connecting or open. */
  connectNow(): void;
  /** Drops the open session (its socket is presumed dead) and connects now. */
  reconnectNow(): void;
  /** The heartbeat policy's pong deadline (ms). */
  readonly pongTimeoutMs: number;
  /** True when every processed message is saved and acknowledged. */
  settled(): boolean;
  /** Subscribes to client happenings; returns a disposer. */
  on(event: 'alive' | 'welcome' | 'message' | 'closed', fn: () => void): Disposer;
  /** Acks without delay while > 0 wakes run. */
  holdImmediateAcks(): Disposer;
}

/** Part of the deadline kept in reserve, so the report is in the caller's hands before it. */
export function wakeBudget(deadlineMs: number): number {
  if (!(deadlineMs > 0)) return 0;
  const reserve = Math.min(1000, Math.max(1, Math.floor(deadlineMs * 0.05)));
  return Math.max(0, deadlineMs - reserve);
}

/**
 * For an OS wake-up (iOS keep-alive handler, Android job, background fetch): make sure the
 * connection is alive, take in what is waiting, and report strictly before the deadline.
 *
 * Open: ping and wait for the pong — at most a third of the budget (or the pong deadline, if
 * shorter): a socket that stays silent that long is presumed dead (the NAT dropped the mapping
 * while the app slept), dropped, and replaced at once, so the budget is spent reconnecting, not
 * waiting. Not open: connect now (no backoff). Then drain: wait until no message came for
 * `quietMs` and everything processed is saved and acknowledged. Resolves early with what it has
 * when the budget (deadline minus a small reserve) runs out or the client closes.
 */
export function runWake(host: WakeHost, deadlineMs: number, quietMs: number): Promise<WakeReport> {
  const { clock } = host;
  const start = clock.now();
  const budget = wakeBudget(deadlineMs);
  const timers = createTimers<'deadline' | 'quiet' | 'pong'>(clock);
  const disposers: Disposer[] = [];
  let messages = 0;
  let confirmed = false;

  return new Promise<WakeReport>((resolve) => {
    let done = false;
    const finish = () => {
      if (done) return;
      done = true;
      timers.clearAll();
      for (const d of disposers.splice(0)) d();
      const state = host.state();
      resolve({ state, connected: confirmed && state === 'open', messages, durationMs: clock.now() - start });
    };
    const drain = () => timers.set('quiet', quietMs, () => (host.settled() ? finish() : drain()));

    if (budget <= 0 || host.state() === 'closed') {
      finish();
      return;
    }
    timers.set('deadline', budget, finish);
    disposers.push(
      host.holdImmediateAcks(),
      host.on('closed', finish),
      host.on('message', () => {
        messages++;
        if (confirmed) drain();
      }),
      host.on('welcome', () => {
        confirmed = true;
        drain();
      }),
      host.on('alive', () => {
        if (confirmed || host.state() !== 'open') return;
        confirmed = true;
        drain();
      }),
    );
    if (host.state() !== 'open' || !host.ping()) {
      host.connectNow();
      return;
    }
    timers.set('pong', Math.min(host.pongTimeoutMs, budget / 3), () => {
      if (!confirmed && host.state() === 'open') host.reconnectNow();
    });
  });
}
