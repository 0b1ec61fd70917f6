import { type ClientFrame, CloseCode, decodeClientFrame, ProtocolError } from '@pushwire/protocol';
import type { Logger } from 'pino';
import type { ResolvedOptions } from '../config.js';
import type { Hub } from '../core/hub.js';
import { anyMatches } from '../core/topic-patterns.js';
import { QuotaError } from '../store/errors.js';
import { LogThrottle } from '../util/log-throttle.js';
import { RequestLimiter } from './requests.js';
import type { Session } from './session.js';

/** What frame handling needs from the gateway. */
export interface InboundHost {
  /** The session's idle deadline may have moved earlier. */
  refile(session: Session): void;
  /** Counts a frame answered with a protocol error. */
  protocolError(): void;
  heartbeat?(seconds: number): void;
}

/**
 * The frames of open sessions: pings, acks, and requests. Requests (`sub`, `unsub`, and frames
 * answered with an error) pass each session's {@link RequestLimiter}; pings and acks do not (a pong
 * is bounded by the send buffer, acks are cumulative and coalesced by the store).
 */
export class Inbound {
  /** A failing store fails every ack: log a line per 10 s, with a count. */
  private readonly ackErrors = new LogThrottle(10_000);

  constructor(
    private readonly hub: Hub<Session>,
    private readonly opts: ResolvedOptions,
    private readonly host: InboundHost,
    private readonly log: Logger | undefined,
  ) {}

  /** Applies a declared heartbeat, clamped to the server's bounds. */
  setHeartbeat(session: Session, declared: number): void {
    const hb = Math.min(this.opts.maxHeartbeat, Math.max(this.opts.minHeartbeat, declared));
    session.heartbeat = hb;
    session.idleMs = (hb + this.opts.idleGrace) * 1000;
    this.host.heartbeat?.(hb);
  }

  onFrame(session: Session, data: Buffer, isBinary: boolean): void {
    if (session.closed) return;
    session.lastActivity = this.opts.clock.now();
    // The device is awake now: what waited for its heartbeat goes out with the reply.
    session.flushHeld();
    let frame: ClientFrame;
    try {
      frame = decodeInbound(data, isBinary);
    } catch (err) {
      this.host.protocolError();
      if (!this.admit(session)) return;
      const e = err instanceof ProtocolError ? err : new ProtocolError('BAD_FRAME', 'bad frame');
      return session.fail(e.code, e.message, false);
    }
    switch (frame.t) {
      case 'ping':
        if (frame.hb !== undefined) {
          this.setHeartbeat(session, frame.hb);
          this.host.refile(session);
        }
        if (frame.acks) this.ack(session, frame.acks);
        return session.send({ t: 'pong' });
      case 'ack':
        return this.ack(session, frame.acks);
      case 'sub': {
        const { topic, ref } = frame;
        if (!this.admit(session, ref)) return;
        const allowed = session.subscribePatterns;
        if (allowed !== undefined && !anyMatches(allowed, topic, session.user)) {
          return session.fail(
            'FORBIDDEN',
            `this device may not subscribe to ${JSON.stringify(topic)} (see its registration key's patterns)`,
            false,
            undefined,
            ref !== undefined ? { ref } : undefined,
          );
        }
        return session.requests?.run(async () => {
          if (session.closed) return; // nobody to answer: the client subscribes again
          await this.hub.subscribe(session.deviceId, topic).then(
            (seq) => session.send({ t: 'subbed', topic, seq, ...(ref !== undefined && { ref }) }),
            (err) => this.internal(session, err, ref),
          );
        });
      }
      case 'unsub': {
        const { topic, ref } = frame;
        if (!this.admit(session, ref)) return;
        return session.requests?.run(async () => {
          if (session.closed) return;
          await this.hub.unsubscribe(session.deviceId, topic).then(
            () => session.send({ t: 'unsubbed', topic, ...(ref !== undefined && { ref }) }),
            (err) => this.internal(session, err, ref),
          );
        });
      }
      case 'hello':
        if (!this.admit(session)) return;
        return session.fail('BAD_FRAME', 'hello was already received', false);
    }
  }

  /**
   * Takes a request token; past the rate the request is answered with a non-fatal RATE_LIMITED
   * (its `ref` and a `retryAfter`), and a session refused a whole burst in a row is closed.
   */
  private admit(session: Session, ref?: number): boolean {
    const { sessionRequestRate: rate, sessionRequestBurst: burst, clock } = this.opts;
    const now = clock.now();
    session.requests ??= new RequestLimiter(rate, burst, now);
    const retryAfter = session.requests.admit(now);
    if (retryAfter === 0) return true;
    if (session.requests.refusedInRow >= burst) {
      this.log?.debug({ session: session.id, device: session.deviceId }, 'session closed: request flood');
      session.fail('RATE_LIMITED', `over ${rate} requests/s, persistently`, true, CloseCode.RateLimited, {
        retryAfter: Math.ceil((burst / rate) * 1000),
      });
    } else {
      session.fail('RATE_LIMITED', `over ${rate} requests/s`, false, undefined, {
        retryAfter,
        ...(ref !== undefined && { ref }),
      });
    }
    return false;
  }

  private ack(session: Session, acks: Record<string, number>): void {
    const n = session.entitleAcks(acks);
    if (n === 0) return;
    this.hub.counters.acked += n;
    const written = this.opts.store.ack(session.deviceId, acks);
    // Acks of one store batch share one promise: one handler for all of them.
    if (written === this.lastAck) return;
    this.lastAck = written;
    written.catch(this.ackFailed);
  }

  /** The last ack promise a failure handler was attached to. */
  private lastAck: Promise<void> | undefined;

  private readonly ackFailed = (err: unknown): void => {
    const suppressed = this.ackErrors.take(this.opts.clock.now());
    if (suppressed !== undefined) this.log?.error({ err, suppressed }, 'ack failed');
  };

  private internal(session: Session, err: unknown, ref?: number): void {
    if (err instanceof QuotaError && err.quota === 'TOO_MANY_TOPICS') {
      return session.fail(err.quota, err.message, false, undefined, ref !== undefined ? { ref } : undefined);
    }
    this.log?.error({ err }, 'frame handling failed');
    session.fail('INTERNAL', 'request failed', false, undefined, ref !== undefined ? { ref } : undefined);
  }
}

/** Decodes a client frame (text messages only). */
export function decodeInbound(data: Buffer, isBinary: boolean): ClientFrame {
  if (isBinary) throw new ProtocolError('BAD_FRAME', 'frames are text messages');
  return decodeClientFrame(data.toString('utf8'));
}
