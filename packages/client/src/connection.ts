import type { HelloFrame, ServerFrame, WelcomeFrame } from '@pushwire/protocol';
import type { BackoffOptions, Random } from './backoff.js';
import type { Clock } from './clock.js';
import { PushwireError, TimeoutError } from './errors.js';
import {
  isSilentDeath,
  type Loss,
  lossOfErrorFrame,
  lossOfException,
  lossOfSession,
  retryDelay,
} from './losses.js';
import { openSession, type Session, type SessionEvents, type SessionLoss } from './session.js';
import { type ConnectionState, canTransition, type StateChange } from './state.js';
import type { Credentials } from './storage/types.js';
import { createTimers } from './timers.js';
import type { Transport } from './transport/types.js';

/** What the machine is given: time, sockets, randomness and the numbers of its policy. */
export interface ConnectionOptions {
  clock: Clock;
  transport: Transport;
  random: Random;
  backoff: BackoffOptions;
  /** The WebSocket URL of each server, in order: attempts rotate through them. */
  urls: readonly string[];
  /** Milliseconds from starting an attempt to `welcome`. */
  connectTimeout: number;
  /** The heartbeat's pong deadline (s), for the text of a pong timeout. */
  pongTimeout(): number;
}

/** What the machine asks of the rest of the client. Every hook is called synchronously. */
export interface ConnectionHost {
  /** Before each attempt: the stored state is loaded and the credentials found (a rejection is a loss). */
  prepare(): Promise<Credentials>;
  /** The socket of an attempt is open: the `hello` to send. */
  hello(credentials: Credentials): HelloFrame;
  /** `welcome` arrived; called before the state becomes `open`. */
  welcome(frame: WelcomeFrame): void;
  /** The session is open (state `open`): start its heartbeat, send what waits. */
  opened(session: Session): void;
  /**
   * Every other frame of the current session: `msg`, `subbed`, `unsubbed`, `error`. A fatal
   * `error` then ends the session (after this call, which may settle the request it refers to).
   */
  frame(frame: ServerFrame): void;
  /** The session events the machine passes through unchanged. */
  session: Pick<SessionEvents, 'invalid' | 'proof' | 'alive' | 'acksForPing'>;
  /** The open session died silently after `idle` s without traffic (evidence for the heartbeat). */
  silentDeath(idle: number): void;
  /**
   * The current session (if any) ends now, the socket still usable for this call; `goaway`: a
   * draining server asked for it, and takes fresh cursors (acks) before the socket closes.
   */
  dropping(goaway: boolean): void;
  /** Every state change: the machine is the only writer of the state. */
  state(change: StateChange): void;
  /** An error to report: a non-fatal loss, or the error {@link ConnectionMachine.stop} was given. */
  report(error: PushwireError): void;
  /** A fatal loss (bad credentials, unsupported version, fatal config): the client must stop. */
  fatal(error: PushwireError): void;
}

/**
 * The connection state machine of a client: connect, lose, back off, rotate servers. It owns the
 * state, the current attempt (a generation number that makes every stale event harmless), the
 * backoff counter and the server index; the rest of the client sees it through
 * {@link ConnectionHost}.
 *
 * ```
 *          start                welcome
 *   idle ─────────▶ connecting ─────────▶ open
 *                    ▲  │   ▲               │
 *                    │  │   └───────────────┤ networkChanged()
 *     retry timer /  │  │ failure           │ socket lost, pong timeout, goaway, fatal server error
 *     networkChanged │  ▼                   │
 *     / wake()       backoff ◀──────────────┘      (offline: backoff waits without a timer)
 *
 *   any state ── stop() / UNAUTHORIZED / UNSUPPORTED_VERSION / fatal config ──▶ closed
 * ```
 *
 * After each non-fatal loss the next attempt goes to the next server, after
 * {@link retryDelay}: exponential backoff with full jitter (the attempt counter resets once a
 * session stayed open `stableAfter`), a `goaway`'s delay (not counted as a failure), or at least
 * a rate limit's `retryAfter`.
 */
export interface ConnectionMachine {
  readonly state: ConnectionState;
  /** Index in the server list of the server being tried or used. */
  readonly server: number;
  /** The session of the current attempt or open connection. */
  readonly session: Session | undefined;
  /** Starts an attempt now, without backoff, dropping the current session. Nothing once closed. */
  connect(): void;
  /** The network changed: online again, attempt counter reset, reconnect now (unless idle). */
  networkChanged(): void;
  /** Offline: no attempts until online (which is {@link ConnectionMachine.networkChanged}). */
  setOnline(online: boolean): void;
  /**
   * The current attempt or session cannot go on for a reason outside it (the Web Push code could
   * not be loaded): it is lost like a failed one. In backoff the error is only reported.
   */
  fail(error: PushwireError): void;
  /** Stops for good: no more attempts, the socket closed with 1000, `error` reported, state `closed`. */
  stop(error?: PushwireError): void;
}

export function createConnectionMachine(o: ConnectionOptions, host: ConnectionHost): ConnectionMachine {
  const timers = createTimers<'retry' | 'connect'>(o.clock);
  let state: ConnectionState = 'idle';
  let session: Session | undefined;
  /** The current attempt; events of an older one are ignored. */
  let gen = 0;
  let attempt = 0;
  let server = 0;
  let openedAt: number | undefined;
  let online = true;

  /** The only writer of the state. */
  const setState = (to: ConnectionState): void => {
    const from = state;
    if (from === to) return;
    if (!canTransition(from, to)) {
      host.report(new PushwireError('ERR_INTERNAL', `invalid state transition ${from} → ${to}`));
      return;
    }
    state = to;
    host.state({ from, to });
  };

  const connect = (): void => {
    if (state === 'closed') return;
    timers.clear('retry');
    drop('reconnecting', false);
    const mine = ++gen;
    setState('connecting');
    timers.set('connect', o.connectTimeout, () =>
      lose(mine, {
        kind: 'failure',
        error: new TimeoutError(`no welcome within ${o.connectTimeout} ms`),
      }),
    );
    host.prepare().then(
      (creds) => {
        if (mine === gen) open(mine, creds);
      },
      (error: unknown) => {
        if (mine === gen) lose(mine, lossOfException(error));
      },
    );
  };

  const open = (mine: number, creds: Credentials): void => {
    try {
      session = openSession(o.transport, o.urls[server]!, o.clock, {
        ...host.session,
        open: () => {
          const hello = host.hello(creds);
          session?.send(hello);
        },
        frame: (frame) => {
          if (mine === gen) onFrame(mine, frame);
        },
        lost: (loss) => {
          if (mine === gen) onSessionLost(mine, loss);
        },
      });
    } catch (error) {
      lose(mine, lossOfException(error));
    }
  };

  const onFrame = (mine: number, f: ServerFrame): void => {
    if (f.t === 'welcome') onWelcome(f);
    else if (f.t === 'goaway') lose(mine, { kind: 'goaway', after: f.reconnectAfter });
    else {
      host.frame(f);
      if (f.t === 'error' && f.fatal) lose(mine, lossOfErrorFrame(f));
    }
  };

  const onWelcome = (w: WelcomeFrame): void => {
    timers.clear('connect');
    openedAt = o.clock.now();
    host.welcome(w);
    setState('open');
    const s = session;
    if (state !== 'open' || s === undefined) return; // a state listener moved on
    host.opened(s);
  };

  const onSessionLost = (mine: number, loss: SessionLoss): void => {
    if (isSilentDeath(loss) && state === 'open') host.silentDeath(loss.idle);
    lose(mine, lossOfSession(loss, o.pongTimeout()));
  };

  /** The attempt or session `mine` ended: report, then back off (or stop, when fatal). */
  const lose = (mine: number, loss: Loss): void => {
    if (mine !== gen || state === 'closed') return;
    gen++;
    timers.clear('connect');
    drop(loss.kind === 'goaway' ? 'goaway' : '', loss.kind === 'goaway');
    if (loss.kind === 'fatal') {
      host.fatal(loss.error);
      return;
    }
    if (loss.kind !== 'goaway') host.report(loss.error);
    // With several servers, the next attempt goes to the next one (the failed one may be down).
    server = (server + 1) % o.urls.length;
    const { backoff, clock, random } = o;
    const stable = openedAt !== undefined && clock.now() - openedAt >= backoff.stableAfter;
    if (stable) attempt = 0;
    openedAt = undefined;
    const delay = retryDelay(loss, attempt, backoff, random);
    if (loss.kind !== 'goaway') attempt++; // a drain is not a failure
    setState('backoff');
    if (state === 'backoff' && online) timers.set('retry', delay, connect);
  };

  const drop = (reason: string, goaway: boolean): void => {
    host.dropping(goaway);
    const s = session;
    session = undefined;
    s?.close(1000, reason);
  };

  const machine: ConnectionMachine = {
    get state() {
      return state;
    },
    get server() {
      return server;
    },
    get session() {
      return session;
    },
    connect,
    networkChanged() {
      if (state === 'closed') return;
      online = true;
      attempt = 0;
      if (state !== 'idle') connect();
    },
    setOnline(on) {
      if (state === 'closed') return;
      if (on) {
        if (!online) machine.networkChanged();
        return;
      }
      online = false;
      if (state === 'backoff') timers.clear('retry');
    },
    fail(error) {
      if (state === 'backoff') host.report(error);
      else lose(gen, { kind: 'failure', error });
    },
    stop(error) {
      if (state === 'closed') return;
      gen++;
      timers.clearAll();
      drop('client closed', false);
      if (error) host.report(error);
      setState('closed');
    },
  };
  return machine;
}
