import {
  type ClientFrame,
  type Cursors,
  decodeServerFrame,
  encodeFrame,
  ProtocolError,
  type ServerFrame,
  SUBPROTOCOL,
} from '@pushwire/protocol';
import type { Clock } from './clock.js';
import { ProtocolViolationError } from './errors.js';
import { microtask } from './microtask.js';
import { createTimers } from './timers.js';
import type { Connection, Transport } from './transport/types.js';

/** Why a session ended, with the silence (s) before the end, for the heartbeat policy. */
export type SessionLoss =
  | { kind: 'closed'; code: number; reason: string; idle: number }
  | { kind: 'error'; error: unknown; idle: number }
  | { kind: 'pong-timeout'; idle: number };

/** What a session reports to its owner. */
export interface SessionEvents {
  /** The socket is open: send hello. */
  open(): void;
  /** A decoded server frame (pongs are handled here and not forwarded). */
  frame(frame: ServerFrame): void;
  /** A frame the codec refused (ignored otherwise). */
  invalid(error: ProtocolViolationError): void;
  /** A frame arrived while a ping was outstanding: the ping sent after `idle` s of silence worked. */
  proof(idle: number): void;
  /** Any frame arrived. */
  alive(): void;
  /** The session ended; called once, never after {@link Session.close}. */
  lost(loss: SessionLoss): void;
  /** Acks to carry on a ping about to be sent. */
  acksForPing(): Cursors | undefined;
}

/** One WebSocket session: see {@link openSession}. */
export interface Session {
  /** Whether the session has ended. */
  readonly dead: boolean;
  /** Current ping interval (s), 0 before the heartbeat starts. */
  readonly interval: number;
  /** Whether a ping is waiting for its pong. */
  readonly pinging: boolean;
  /** Milliseconds until the next ping is due (Infinity before the heartbeat starts). */
  pingDueIn(): number;
  /** Sends a frame; returns false when the session is dead or the send failed. */
  send(frame: ClientFrame): boolean;
  /** Starts (or retunes) the heartbeat: ping every `interval` s, pong deadline `pongTimeout` s. */
  heartbeat(interval: number, pongTimeout: number): void;
  /**
   * Sends a ping now, carrying `acks` (default: whatever acks are pending) and `hb` when declaring
   * a new interval. A plain ping does nothing while another is outstanding. Returns whether a ping
   * was sent.
   */
  ping(options?: { hb?: number; acks?: Cursors }): boolean;
  /** Ends the session from our side (no `lost` event). */
  close(code?: number, reason?: string): void;
}

/**
 * Opens one WebSocket session: the socket, frame encoding, and the heartbeat.
 *
 * Heartbeat: a ping goes out when nothing was sent for `interval` (any frame counts for the
 * server); if no frame comes back within `pongTimeout` the socket is declared dead (half-open)
 * and closed. Deadlines are kept as timestamps and checked when timers fire, so a timer that
 * fires late (the OS suspended the process) is recognised: an overdue pong deadline ends the
 * session at once, an overdue ping goes out at once.
 */
export function openSession(transport: Transport, url: string, clock: Clock, events: SessionEvents): Session {
  const timers = createTimers<'ping' | 'pong'>(clock);
  let ready = false;
  let dead = false;
  let heartbeat = false;
  let intervalMs = 0;
  let pongTimeoutMs = 0;
  let lastSent = clock.now();
  let lastActivity = lastSent;
  let pinging: { idle: number; deadline: number } | undefined;

  const pingDueIn = (): number =>
    heartbeat ? lastSent + intervalMs - clock.now() : Number.POSITIVE_INFINITY;

  const idleFor = (): number => pinging?.idle ?? (clock.now() - lastActivity) / 1000;

  const close = (code = 1000, reason = ''): void => {
    if (dead) return;
    dead = true;
    timers.clearAll();
    try {
      conn.close(code, reason);
    } catch {
      // already closed
    }
  };

  const lose = (loss: SessionLoss): void => {
    if (dead) return;
    close(1000, loss.kind === 'pong-timeout' ? 'pong timeout' : '');
    events.lost(loss);
  };

  const send = (frame: ClientFrame): boolean => {
    if (dead) return false;
    try {
      conn.send(encodeFrame(frame));
    } catch (error) {
      lose({ kind: 'error', error, idle: idleFor() });
      return false;
    }
    lastSent = lastActivity = clock.now();
    return true;
  };

  const schedule = (): void => {
    if (heartbeat && !dead) timers.set('ping', pingDueIn(), onPingTimer);
  };

  const onPingTimer = (): void => {
    if (pinging !== undefined) return; // the pong deadline decides; the pong reschedules
    if (pingDueIn() > 0) {
      schedule(); // something was sent meanwhile: the ping moved
      return;
    }
    // Due (or overdue after a suspend: the socket is suspect; the ping tests it at once).
    ping();
  };

  const onPongTimer = (): void => {
    if (pinging === undefined) return;
    const left = pinging.deadline - clock.now();
    if (left > 0) timers.set('pong', left, onPongTimer);
    else lose({ kind: 'pong-timeout', idle: pinging.idle });
  };

  const ping = (options: { hb?: number; acks?: Cursors } = {}): boolean => {
    const { hb } = options;
    if (dead || (pinging !== undefined && hb === undefined && options.acks === undefined)) return false;
    const now = clock.now();
    const idle = (now - lastActivity) / 1000;
    const acks = options.acks ?? events.acksForPing();
    if (!send({ t: 'ping', ...(acks && { acks }), ...(hb !== undefined && { hb }) })) return false;
    if (pinging === undefined) {
      pinging = { idle, deadline: now + pongTimeoutMs };
      timers.set('pong', pongTimeoutMs, onPongTimer);
    }
    schedule();
    return true;
  };

  const onMessage = (text: string): void => {
    if (dead) return;
    lastActivity = clock.now();
    const answered = pinging;
    if (answered !== undefined) {
      pinging = undefined;
      timers.clear('pong');
      schedule();
      events.proof(answered.idle);
    }
    events.alive();
    let frame: ServerFrame;
    try {
      frame = decodeServerFrame(text);
    } catch (error) {
      // Unknown kinds come from a newer server: ignore them quietly. Anything else is reported.
      if (error instanceof ProtocolError && error.code === 'UNKNOWN_FRAME') return;
      events.invalid(new ProtocolViolationError('the server sent an invalid frame', { cause: error }));
      return;
    }
    if (frame.t !== 'pong' && !dead) events.frame(frame);
  };

  // A transport that calls back synchronously from connect() must not see a half-built session.
  const later =
    <A extends unknown[]>(fn: (...args: A) => void) =>
    (...args: A) =>
      ready ? fn(...args) : microtask(() => fn(...args));
  const conn: Connection = transport.connect(url, SUBPROTOCOL, {
    onOpen: later(() => {
      if (dead) return;
      lastActivity = clock.now();
      events.open();
    }),
    onMessage: later(onMessage),
    onClose: later((code: number, reason: string) => lose({ kind: 'closed', code, reason, idle: idleFor() })),
    onError: later((error: unknown) => lose({ kind: 'error', error, idle: idleFor() })),
  });
  ready = true;

  return {
    get dead() {
      return dead;
    },
    get interval() {
      return intervalMs / 1000;
    },
    get pinging() {
      return pinging !== undefined;
    },
    pingDueIn,
    send,
    heartbeat(interval, pongTimeout) {
      heartbeat = true;
      intervalMs = interval * 1000;
      pongTimeoutMs = pongTimeout * 1000;
      schedule();
    },
    ping,
    close,
  };
}
