import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import {
  type ClientFrame,
  CloseCode,
  decodeClientFrame,
  deviceStream,
  type HelloFrame,
  PROTOCOL_VERSION,
  ProtocolError,
  SUBPROTOCOL,
  topicStream,
} from '@pushwire/protocol';
import type { Logger } from 'pino';
import type { ResolvedOptions } from '../config.js';
import type { Hub } from '../core/hub.js';
import { QuotaError } from '../store/errors.js';
import { AdmissionControl } from '../util/admission.js';
import { DeadlineWheel } from '../util/deadline-wheel.js';
import { newSessionId, tokenMatches } from '../util/ids.js';
import { LogThrottle } from '../util/log-throttle.js';
import { Session, type SessionHost } from './session.js';
import { type WireListener, WireSocket } from './wire/socket.js';
import { acceptUpgrade } from './wire/upgrade.js';

/** Largest inbound WebSocket message; the codec refuses frames past 256 KiB anyway. */
const MAX_INBOUND_BYTES = 512 * 1024;
const REPLAY_PAGE = 256;

/** Frames a device may send between its hello and the welcome; more are dropped. */
const MAX_EARLY_FRAMES = 16;

/** A socket between upgrade and welcome. */
class Pending implements WireListener {
  wheelSlot = -1;
  /** The hello arrived (or the socket closed, or its deadline passed): no longer pending. */
  done = false;
  /** Frames that arrived after the hello, while the handshake reads the store. */
  early: { data: Buffer; binary: boolean }[] | undefined;

  constructor(
    private readonly gateway: Gateway,
    readonly socket: WireSocket,
    readonly openedAt: number,
  ) {}

  onMessage(data: Buffer, binary: boolean): void {
    if (!this.done) return this.gateway.hello(this, data, binary);
    this.early ??= [];
    if (this.early.length < MAX_EARLY_FRAMES) this.early.push({ data, binary });
  }

  onClose(): void {
    this.gateway.forget(this);
  }
}

/** Counters the metrics endpoint reads. */
export interface GatewayCounters {
  handshakes: number;
  refused: number;
  idleClosed: number;
  handshakeTimeouts: number;
  protocolErrors: number;
  /** Sessions dropped because their unsent buffer passed `maxBufferedBytes`. */
  slowConsumers: number;
}

/**
 * Optional observers (installed by the metrics module). Each is one cheap synchronous call:
 * `liveDelivery` per entry handed live to a socket, `heartbeat` per hello and per ping with `hb`.
 */
export interface GatewayObservers {
  liveDelivery?(publishedAt: number, now: number): void;
  heartbeat?(seconds: number): void;
}

/**
 * WebSocket side of the server: upgrade checks, handshake deadline, admission control, hello,
 * frame dispatch, idle detection with one shared deadline wheel, and drain.
 */
export class Gateway {
  private readonly pending = new Set<Pending>();
  /** Every upgraded socket not closed yet: sessions, handshakes, and sockets being closed. */
  private readonly sockets = new Set<WireSocket>();
  private readonly wheel: DeadlineWheel<Session | Pending>;
  private readonly admission: AdmissionControl;
  private readonly host: SessionHost;
  private draining = false;
  /** A failing store fails every ack and handshake: log a line per 10 s of each, with a count. */
  private readonly ackErrors = new LogThrottle(10_000);
  private readonly handshakeErrors = new LogThrottle(10_000);
  readonly counters: GatewayCounters = {
    handshakes: 0,
    refused: 0,
    idleClosed: 0,
    handshakeTimeouts: 0,
    protocolErrors: 0,
    slowConsumers: 0,
  };
  readonly observers: GatewayObservers = {};

  constructor(
    private readonly hub: Hub,
    private readonly opts: ResolvedOptions,
    private readonly log: Logger | undefined,
  ) {
    const now = opts.clock.now();
    this.wheel = new DeadlineWheel<Session | Pending>(250, (x) => this.deadlineOf(x), now);
    this.admission = new AdmissionControl(opts.admissionRate, opts.admissionBurst, now);
    this.host = {
      read: (stream, after) => opts.store.read(stream, after, REPLAY_PAGE, opts.clock.now()),
      head: (stream) => opts.store.head(stream),
      pageSize: REPLAY_PAGE,
      maxBufferedBytes: opts.maxBufferedBytes,
      onDelivered: (n, liveTs) => {
        hub.counters.delivered += n;
        if (liveTs !== undefined) this.observers.liveDelivery?.(liveTs, opts.clock.now());
      },
      onError: (err) => log?.error({ err }, 'session error'),
      onSlowConsumer: (session) => {
        this.counters.slowConsumers++;
        log?.debug({ session: session.id, device: session.deviceId }, 'slow consumer dropped');
      },
      onFrame: (session, data, binary) => this.onFrame(session, data, binary),
      onClosed: (session, code) => this.onClosed(session, code),
    };
  }

  /** Sessions plus sockets still in their handshake. */
  get connections(): number {
    return this.hub.online + this.pending.size;
  }

  /** Handles an HTTP upgrade request for `/v1/connect`. */
  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    const path = (req.url ?? '').split('?')[0];
    if (path !== '/v1/connect') return refuse(socket, 404, 'NOT_FOUND', 'WebSocket endpoint is /v1/connect');
    if (this.draining)
      return refuse(socket, 503, 'DRAINING', 'server is shutting down', { 'Retry-After': '5' });
    const offered = String(req.headers['sec-websocket-protocol'] ?? '')
      .split(',')
      .map((s) => s.trim());
    if (!offered.includes(SUBPROTOCOL)) {
      return refuse(socket, 426, 'UPGRADE_REQUIRED', `offer the WebSocket subprotocol ${SUBPROTOCOL}`);
    }
    const upgrade = acceptUpgrade(req.method, req.headers, SUBPROTOCOL);
    if ('refusal' in upgrade) {
      const r = upgrade.refusal;
      return refuse(socket, r.status, r.code, r.message, r.headers);
    }
    if (!socket.writable) return void socket.destroy();
    socket.write(upgrade.response);
    this.accept(new WireSocket(socket, head, MAX_INBOUND_BYTES, this.sockets));
  }

  /** Sweeps idle sessions and handshakes past their deadline. Called by the server's one timer. */
  tick(): void {
    this.wheel.advance(this.opts.clock.now(), (x) => {
      if (x instanceof Session) {
        this.counters.idleClosed++;
        this.log?.debug({ session: x.id, device: x.deviceId }, 'idle timeout');
        x.close(CloseCode.IdleTimeout, 'idle timeout');
      } else {
        this.counters.handshakeTimeouts++;
        this.log?.debug('handshake timeout');
        x.done = true;
        this.pending.delete(x);
        sendFatal(x.socket, 'HANDSHAKE_TIMEOUT', 'no hello in time', CloseCode.HandshakeTimeout);
      }
    });
  }

  /**
   * Graceful drain: refuse new sockets, send every session a goaway whose reconnect-after is
   * spread evenly over the drain window, and close them. Resolves when all sockets are closed.
   */
  async drain(windowMs = this.opts.drainWindowMs): Promise<void> {
    this.draining = true;
    const sessions = [...this.hub.sessions()];
    const closed = sessions.map((s) => s.whenClosed());
    sessions.forEach((s, i) => {
      const reconnectAfter = Math.round(((i + Math.random()) / sessions.length) * windowMs);
      s.send({ t: 'goaway', reason: 'shutdown', reconnectAfter });
      s.close(CloseCode.GoingAway, 'server shutting down');
    });
    for (const p of this.pending) p.socket.close(CloseCode.GoingAway, 'server shutting down');
    await Promise.race([Promise.all(closed), delay(5000)]);
  }

  /**
   * Closes every socket (1001) and destroys those whose peer has not answered within `graceMs`,
   * so that a shutdown never waits on a silent client.
   */
  async close(graceMs = 1000): Promise<void> {
    this.draining = true;
    for (const ws of this.sockets) ws.close(CloseCode.GoingAway, 'server closing');
    const end = Date.now() + graceMs;
    while (this.sockets.size > 0 && Date.now() < end) await delay(20);
    for (const ws of this.sockets) ws.terminate();
  }

  private deadlineOf(x: Session | Pending): number | undefined {
    if (x instanceof Session) return x.closed ? undefined : x.lastActivity + x.idleMs;
    return x.done ? undefined : x.openedAt + this.opts.handshakeTimeoutMs;
  }

  private accept(ws: WireSocket): void {
    const now = this.opts.clock.now();
    // Reconnect storm: refuse and give the client its own slot to come back in.
    const retryAfter = this.admission.admit(now, Math.random() * 250);
    if (retryAfter > 0) {
      this.counters.refused++;
      this.log?.debug({ retryAfter }, 'session refused: rate limited');
      sendFatal(ws, 'RATE_LIMITED', 'too many new sessions; retry later', CloseCode.RateLimited, retryAfter);
      return;
    }
    const p = new Pending(this, ws, now);
    ws.listener = p;
    this.pending.add(p);
    this.wheel.add(p);
  }

  /** @internal The first frame of a pending socket (its hello). */
  hello(p: Pending, data: Buffer, isBinary: boolean): void {
    p.done = true;
    this.pending.delete(p);
    void this.handshake(p, data, isBinary).catch((err) => {
      const suppressed = this.handshakeErrors.take(this.opts.clock.now());
      if (suppressed !== undefined) this.log?.error({ err, suppressed }, 'handshake failed');
      sendFatal(p.socket, 'INTERNAL', 'handshake failed', 1011);
    });
  }

  /** @internal A pending socket closed. */
  forget(p: Pending): void {
    p.done = true;
    this.pending.delete(p);
  }

  private async handshake(p: Pending, data: Buffer, isBinary: boolean): Promise<void> {
    const ws = p.socket;
    let hello: HelloFrame;
    try {
      const frame = decodeInbound(data, isBinary);
      if (frame.t !== 'hello')
        return sendFatal(ws, 'HELLO_REQUIRED', 'first frame must be hello', CloseCode.ProtocolError);
      hello = frame;
    } catch (err) {
      const message = err instanceof ProtocolError ? err.message : 'bad frame';
      return sendFatal(
        ws,
        'HELLO_REQUIRED',
        `first frame must be a valid hello: ${message}`,
        CloseCode.ProtocolError,
      );
    }
    if (hello.v !== PROTOCOL_VERSION) {
      return sendFatal(
        ws,
        'UNSUPPORTED_VERSION',
        `server speaks version ${PROTOCOL_VERSION}`,
        CloseCode.ProtocolError,
      );
    }
    // Frames sent before welcome are kept (bounded, by the Pending) and handled once the session is open.
    const { store, clock } = this.opts;
    const device = await store.getDevice(hello.device);
    if (!device || !tokenMatches(device.tokenHash, hello.token)) {
      this.log?.debug({ device: hello.device }, 'session refused: unauthorized');
      return sendFatal(ws, 'UNAUTHORIZED', 'unknown device or wrong token', CloseCode.Unauthorized);
    }
    // A topic subscribed (or the device deleted) while this session is being set up is kept by
    // the hub and applied at attach, instead of being missed until the next reconnect.
    this.hub.beginJoin(device.id);
    try {
      const [topics, stored] = await Promise.all([store.topicsOf(device.id), store.cursorsOf(device.id)]);
      if (ws.readyState !== WireSocket.OPEN) return;

      const session = new Session(newSessionId(), device.id, ws, this.host, clock.now());
      this.setHeartbeat(session, hello.hb ?? this.opts.defaultHeartbeat);
      const streams = new Set([deviceStream(device.id), ...topics.map(topicStream)]);
      const cursors: Record<string, number> = { ...stored };
      for (const [s, seq] of Object.entries(hello.cursors ?? {})) if (streams.has(s)) cursors[s] = seq;

      session.send({
        t: 'welcome',
        v: PROTOCOL_VERSION,
        session: session.id,
        hb: session.heartbeat,
        idle: Math.ceil(session.idleMs / 1000),
        maxPayload: this.opts.maxPayload,
        topics,
      });
      this.hub.attach(session, topics, cursors);
      this.wheel.add(session);
      this.counters.handshakes++;
      this.log?.debug({ session: session.id, device: device.id, hb: session.heartbeat }, 'session open');
      store.touchDevice(device.id, clock.now()).catch(() => {}); // Redis may be away: never crash

      ws.listener = session;
      for (const e of p.early ?? []) this.onFrame(session, e.data, e.binary);
      p.early = undefined;
    } finally {
      this.hub.endJoin(device.id);
    }
  }

  private setHeartbeat(session: Session, declared: number): void {
    const hb = Math.min(this.opts.maxHeartbeat, Math.max(this.opts.minHeartbeat, declared));
    session.heartbeat = hb;
    session.idleMs = (hb + this.opts.idleGrace) * 1000;
    this.observers.heartbeat?.(hb);
  }

  private onClosed(session: Session, code: number): void {
    session.closed = true;
    this.hub.detach(session);
    session.resolveClosed();
    this.log?.debug({ session: session.id, device: session.deviceId, code }, 'session closed');
    const { store, clock } = this.opts;
    void store.touchDevice(session.deviceId, clock.now()).catch(() => {});
  }

  private onFrame(session: Session, data: Buffer, isBinary: boolean): void {
    if (session.closed) return;
    session.lastActivity = this.opts.clock.now();
    // The device is awake now: what waited for its heartbeat goes out with the reply.
    session.flushHeld();
    let frame: ClientFrame;
    try {
      frame = decodeInbound(data, isBinary);
    } catch (err) {
      this.counters.protocolErrors++;
      const e = err instanceof ProtocolError ? err : new ProtocolError('BAD_FRAME', 'bad frame');
      return session.fail(e.code, e.message, false);
    }
    switch (frame.t) {
      case 'ping':
        if (frame.hb !== undefined) {
          this.setHeartbeat(session, frame.hb);
          this.wheel.add(session); // the deadline may have moved earlier
        }
        if (frame.acks) this.ack(session, frame.acks);
        return session.send({ t: 'pong' });
      case 'ack':
        return this.ack(session, frame.acks);
      case 'sub':
        return void this.hub.subscribe(session.deviceId, frame.topic).then(
          (seq) =>
            session.send({
              t: 'subbed',
              topic: frame.topic,
              seq,
              ...(frame.ref !== undefined && { ref: frame.ref }),
            }),
          (err) => this.internal(session, err, frame.ref),
        );
      case 'unsub':
        return void this.hub.unsubscribe(session.deviceId, frame.topic).then(
          () =>
            session.send({
              t: 'unsubbed',
              topic: frame.topic,
              ...(frame.ref !== undefined && { ref: frame.ref }),
            }),
          (err) => this.internal(session, err, frame.ref),
        );
      case 'hello':
        return session.fail('BAD_FRAME', 'hello was already received', false);
    }
  }

  private ack(session: Session, acks: Record<string, number>): void {
    const entitled = session.entitledAcks(acks);
    const n = Object.keys(entitled).length;
    if (n === 0) return;
    this.hub.counters.acked += n;
    this.opts.store.ack(session.deviceId, entitled).catch((err) => {
      const suppressed = this.ackErrors.take(this.opts.clock.now());
      if (suppressed !== undefined) this.log?.error({ err, suppressed }, 'ack failed');
    });
  }

  private internal(session: Session, err: unknown, ref?: number): void {
    if (err instanceof QuotaError && err.quota === 'TOO_MANY_TOPICS') {
      return session.fail(err.quota, err.message, false, undefined, ref !== undefined ? { ref } : undefined);
    }
    this.log?.error({ err }, 'frame handling failed');
    session.fail('INTERNAL', 'request failed', false, undefined, ref !== undefined ? { ref } : undefined);
  }
}

function decodeInbound(data: Buffer, isBinary: boolean): ClientFrame {
  if (isBinary) throw new ProtocolError('BAD_FRAME', 'frames are text messages');
  return decodeClientFrame(data.toString('utf8'));
}

function sendFatal(
  ws: WireSocket,
  code: Parameters<Session['fail']>[0],
  message: string,
  closeCode: number,
  retryAfter?: number,
): void {
  if (ws.readyState !== WireSocket.OPEN) return;
  ws.send(
    JSON.stringify({
      t: 'error',
      code,
      message,
      fatal: true,
      ...(retryAfter !== undefined && { retryAfter }),
    }),
  );
  ws.close(closeCode, code);
}

function refuse(
  socket: Duplex,
  status: number,
  code: string,
  message: string,
  headers: Record<string, string> = {},
): void {
  const body = JSON.stringify({ error: code, message });
  const head = [
    `HTTP/1.1 ${status} ${code}`,
    'Content-Type: application/json',
    `Content-Length: ${Buffer.byteLength(body)}`,
    'Connection: close',
    ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`),
  ];
  socket.end(`${head.join('\r\n')}\r\n\r\n${body}`);
}

const delay = (ms: number) => new Promise<void>((r) => setTimeout(r, ms).unref());
