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
import { Timers } from './timers.js';
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

/**
 * One WebSocket session: the socket, frame encoding, and the heartbeat.
 *
 * Heartbeat: a ping goes out when nothing was sent for `interval` (any frame counts for the
 * server); if no frame comes back within `pongTimeout` the socket is declared dead (half-open)
 * and closed. Deadlines are kept as timestamps and checked when timers fire, so a timer that
 * fires late (the OS suspended the process) is recognised: an overdue pong deadline ends the
 * session at once, an overdue ping goes out at once.
 */
export class Session {
  readonly #clock: Clock;
  readonly #events: SessionEvents;
  readonly #timers: Timers<'ping' | 'pong'>;
  readonly #conn: Connection;
  #ready = false;
  #dead = false;
  #heartbeat = false;
  #intervalMs = 0;
  #pongTimeoutMs = 0;
  #lastSent: number;
  #lastActivity: number;
  #ping: { idle: number; deadline: number } | undefined;

  constructor(transport: Transport, url: string, clock: Clock, events: SessionEvents) {
    this.#clock = clock;
    this.#events = events;
    this.#timers = new Timers(clock);
    this.#lastSent = this.#lastActivity = clock.now();
    // A transport that calls back synchronously from connect() must not see a half-built session.
    const later =
      <A extends unknown[]>(fn: (...args: A) => void) =>
      (...args: A) =>
        this.#ready ? fn(...args) : queueMicrotask(() => fn(...args));
    this.#conn = transport.connect(url, SUBPROTOCOL, {
      onOpen: later(() => this.#onOpen()),
      onMessage: later((text: string) => this.#onMessage(text)),
      onClose: later((code: number, reason: string) =>
        this.#lose({ kind: 'closed', code, reason, idle: this.#idle() }),
      ),
      onError: later((error: unknown) => this.#lose({ kind: 'error', error, idle: this.#idle() })),
    });
    this.#ready = true;
  }

  /** Whether the session has ended. */
  get dead(): boolean {
    return this.#dead;
  }

  /** Current ping interval (s), 0 before the heartbeat starts. */
  get interval(): number {
    return this.#intervalMs / 1000;
  }

  /** Whether a ping is waiting for its pong. */
  get pinging(): boolean {
    return this.#ping !== undefined;
  }

  /** Milliseconds until the next ping is due (Infinity before the heartbeat starts). */
  pingDueIn(): number {
    return this.#heartbeat ? this.#lastSent + this.#intervalMs - this.#clock.now() : Number.POSITIVE_INFINITY;
  }

  /** Sends a frame; returns false when the session is dead or the send failed. */
  send(frame: ClientFrame): boolean {
    if (this.#dead) return false;
    try {
      this.#conn.send(encodeFrame(frame));
    } catch (error) {
      this.#lose({ kind: 'error', error, idle: this.#idle() });
      return false;
    }
    this.#lastSent = this.#lastActivity = this.#clock.now();
    return true;
  }

  /** Starts (or retunes) the heartbeat: ping every `interval` s, pong deadline `pongTimeout` s. */
  heartbeat(interval: number, pongTimeout: number): void {
    this.#heartbeat = true;
    this.#intervalMs = interval * 1000;
    this.#pongTimeoutMs = pongTimeout * 1000;
    this.#schedule();
  }

  /**
   * Sends a ping now, carrying `acks` (default: whatever acks are pending) and `hb` when declaring
   * a new interval. A plain ping does nothing while another is outstanding. Returns whether a ping
   * was sent.
   */
  ping(options: { hb?: number; acks?: Cursors } = {}): boolean {
    const { hb } = options;
    if (this.#dead || (this.#ping !== undefined && hb === undefined && options.acks === undefined))
      return false;
    const now = this.#clock.now();
    const idle = (now - this.#lastActivity) / 1000;
    const acks = options.acks ?? this.#events.acksForPing();
    const sent = this.send({ t: 'ping', ...(acks && { acks }), ...(hb !== undefined && { hb }) });
    if (!sent) return false;
    if (this.#ping === undefined) {
      this.#ping = { idle, deadline: now + this.#pongTimeoutMs };
      this.#timers.set('pong', this.#pongTimeoutMs, () => this.#onPongTimer());
    }
    this.#schedule();
    return true;
  }

  /** Ends the session from our side (no `lost` event). */
  close(code = 1000, reason = ''): void {
    if (this.#dead) return;
    this.#dead = true;
    this.#timers.clearAll();
    try {
      this.#conn.close(code, reason);
    } catch {
      // already closed
    }
  }

  #onOpen(): void {
    if (this.#dead) return;
    this.#lastActivity = this.#clock.now();
    this.#events.open();
  }

  #onMessage(text: string): void {
    if (this.#dead) return;
    this.#lastActivity = this.#clock.now();
    const ping = this.#ping;
    if (ping !== undefined) {
      this.#ping = undefined;
      this.#timers.clear('pong');
      this.#schedule();
      this.#events.proof(ping.idle);
    }
    this.#events.alive();
    let frame: ServerFrame;
    try {
      frame = decodeServerFrame(text);
    } catch (error) {
      // Unknown kinds come from a newer server: ignore them quietly. Anything else is reported.
      if (error instanceof ProtocolError && error.code === 'UNKNOWN_FRAME') return;
      this.#events.invalid(new ProtocolViolationError('the server sent an invalid frame', { cause: error }));
      return;
    }
    if (frame.t !== 'pong' && !this.#dead) this.#events.frame(frame);
  }

  #schedule(): void {
    if (!this.#heartbeat || this.#dead) return;
    this.#timers.set('ping', this.pingDueIn(), () => this.#onPingTimer());
  }

  #onPingTimer(): void {
    if (this.#ping !== undefined) return; // the pong deadline decides; the pong reschedules
    if (this.pingDueIn() > 0) {
      this.#schedule(); // something was sent meanwhile: the ping moved
      return;
    }
    // Due (or overdue after a suspend: the socket is suspect; the ping tests it at once).
    this.ping();
  }

  #onPongTimer(): void {
    const ping = this.#ping;
    if (ping === undefined) return;
    const left = ping.deadline - this.#clock.now();
    if (left > 0) {
      this.#timers.set('pong', left, () => this.#onPongTimer());
      return;
    }
    this.#lose({ kind: 'pong-timeout', idle: ping.idle });
  }

  #idle(): number {
    return this.#ping?.idle ?? (this.#clock.now() - this.#lastActivity) / 1000;
  }

  #lose(loss: SessionLoss): void {
    if (this.#dead) return;
    this.close(1000, loss.kind === 'pong-timeout' ? 'pong timeout' : '');
    this.#events.lost(loss);
  }
}
