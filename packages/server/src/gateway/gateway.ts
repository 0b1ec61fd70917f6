import type { IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import {
  CloseCode,
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
import { AddressCounts, addressKey } from '../util/address.js';
import { AdmissionControl } from '../util/admission.js';
import { DeadlineQueue } from '../util/deadline-queue.js';
import { DeadlineWheel } from '../util/deadline-wheel.js';
import { nextSessionNumber, tokenMatches } from '../util/ids.js';
import { LogThrottle } from '../util/log-throttle.js';
import { startCursors } from './cursors.js';
import { decodeInbound, Inbound } from './inbound.js';
import { PENDING_RETRY_MS, Pending, type PendingHost, refuse, sendFatal } from './pending.js';
import { Session, type SessionHost } from './session.js';
import { WireSockets } from './wire/registry.js';
import { WireSocket } from './wire/socket.js';
import { acceptUpgrade } from './wire/upgrade.js';

/** Largest inbound WebSocket message; the codec refuses frames past 256 KiB anyway. */
const MAX_INBOUND_BYTES = 512 * 1024;
const REPLAY_PAGE = 256;

/** Counters the metrics endpoint reads. */
export interface GatewayCounters {
  handshakes: number;
  refused: number;
  idleClosed: number;
  handshakeTimeouts: number;
  protocolErrors: number;
  /**
   * Sessions dropped for not reading: their unsent messages did not drain for
   * `slowConsumerTimeoutMs`, or replies to their frames passed `maxBufferedBytes`.
   */
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
export class Gateway implements PendingHost {
  private readonly pending = new Set<Pending>();
  /** Every upgraded socket not closed yet, and the close deadlines. */
  readonly sockets: WireSockets;
  private readonly wheel: DeadlineWheel<Session>;
  /** Handshake deadlines (all the same timeout); a handshake leaves it when it settles. */
  private readonly handshakes = new DeadlineQueue<Pending>();
  private readonly admission: AdmissionControl;
  /** Pending handshakes per client address. */
  private readonly pendingByAddress: AddressCounts;
  private readonly host: SessionHost;
  private readonly inbound: Inbound;
  private draining = false;
  /** A failing store fails every handshake: log a line per 10 s, with a count. */
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
    private readonly hub: Hub<Session>,
    private readonly opts: ResolvedOptions,
    private readonly log: Logger | undefined,
  ) {
    const now = opts.clock.now();
    this.sockets = new WireSockets(opts.closeTimeoutMs);
    this.wheel = new DeadlineWheel<Session>(250, (x) => this.deadlineOf(x), now);
    this.admission = new AdmissionControl(opts.admissionRate, opts.admissionBurst, now);
    // 0 turns the bound off (behind a reverse proxy every client has the proxy's address).
    this.pendingByAddress = new AddressCounts(opts.maxPendingPerAddress || Number.POSITIVE_INFINITY);
    this.inbound = new Inbound(
      hub,
      opts,
      {
        refile: (session) => this.wheel.add(session),
        protocolError: () => {
          this.counters.protocolErrors++;
        },
        heartbeat: (hb) => this.observers.heartbeat?.(hb),
      },
      log,
    );
    this.host = {
      read: (stream, after) => opts.store.read(stream, after, REPLAY_PAGE, opts.clock.now()),
      head: (stream) => opts.store.head(stream),
      pageSize: REPLAY_PAGE,
      maxBufferedBytes: opts.maxBufferedBytes,
      highWaterBytes: opts.sendHighWaterBytes,
      now: () => opts.clock.now(),
      onBlocked: (session) => this.wheel.add(session), // the stall deadline may be the earlier one
      onDelivered: (n, liveTs) => {
        hub.counters.delivered += n;
        if (liveTs !== undefined) this.observers.liveDelivery?.(liveTs, opts.clock.now());
      },
      onError: (err) => log?.error({ err }, 'session error'),
      onSlowConsumer: (session) => {
        this.counters.slowConsumers++;
        log?.debug({ session: session.id, device: session.deviceId }, 'slow consumer dropped');
      },
      onFrame: (session, data, binary) => this.inbound.onFrame(session, data, binary),
      onClosed: (session, code) => this.onClosed(session, code),
    };
  }

  /** Upgraded sockets not closed yet: sessions, handshakes, and sockets being closed. */
  get connections(): number {
    return this.sockets.open.size;
  }

  /** Handshakes waiting for their hello or being set up; a settled one is let go at once. */
  get handshaking(): number {
    return this.handshakes.size;
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
    // Small input limit until welcome.
    const address = peerAddress(req.socket);
    this.accept(new WireSocket(socket, head, this.opts.maxHelloBytes, this.sockets), address);
  }

  /** Sweeps idle sessions and handshakes past their deadline. Called by the server's one timer. */
  tick(): void {
    const now = this.opts.clock.now();
    this.wheel.advance(now, (x) => {
      const blocked = x.blockedSince;
      if (blocked !== undefined && blocked + this.opts.slowConsumerTimeoutMs <= now) return x.dropSlow();
      this.counters.idleClosed++;
      this.log?.debug({ session: x.id, device: x.deviceId }, 'idle timeout');
      x.close(CloseCode.IdleTimeout, 'idle timeout');
    });
    this.handshakes.advance(now, (p) => {
      this.counters.handshakeTimeouts++;
      this.log?.debug('handshake timeout');
      this.settle(p);
      sendFatal(p.socket, 'HANDSHAKE_TIMEOUT', 'no hello in time', CloseCode.HandshakeTimeout);
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
    for (const ws of this.sockets.open) ws.close(CloseCode.GoingAway, 'server closing');
    const end = Date.now() + graceMs;
    while (this.sockets.open.size > 0 && Date.now() < end) await delay(20);
    for (const ws of this.sockets.open) ws.terminate();
    this.sockets.stop();
  }

  private deadlineOf(x: Session): number | undefined {
    if (x.closed) return undefined;
    const idle = x.lastActivity + x.idleMs;
    const blocked = x.blockedSince;
    return blocked === undefined ? idle : Math.min(idle, blocked + this.opts.slowConsumerTimeoutMs);
  }

  /**
   * A new socket waits for its hello. It spends no admission token yet (only a device that proved
   * its token does), so anonymous sockets cannot refuse registered devices; they are bounded per
   * client address instead, and by the handshake deadline.
   */
  private accept(ws: WireSocket, remoteAddress: string | undefined): void {
    const address = addressKey(remoteAddress);
    if (!this.pendingByAddress.take(address)) {
      this.counters.refused++;
      this.log?.debug({ address }, 'socket refused: too many pending handshakes from its address');
      const retryAfter = Math.ceil(PENDING_RETRY_MS * (1 + Math.random()));
      sendFatal(
        ws,
        'RATE_LIMITED',
        'too many handshakes from this address',
        CloseCode.RateLimited,
        retryAfter,
      );
      return;
    }
    const p = new Pending(this, ws, address);
    ws.listener = p;
    this.pending.add(p);
    this.handshakes.add(p, this.opts.clock.now() + this.opts.handshakeTimeoutMs);
  }

  /** Ends a handshake's pending state (hello, close or deadline), once. */
  private settle(p: Pending): void {
    if (p.done) return;
    p.done = true;
    this.pending.delete(p);
    this.handshakes.remove(p);
    this.pendingByAddress.release(p.address);
  }

  /** @internal The first frame of a pending socket (its hello). */
  hello(p: Pending, data: Buffer, isBinary: boolean): void {
    this.settle(p);
    void this.handshake(p, data, isBinary).catch((err) => {
      const suppressed = this.handshakeErrors.take(this.opts.clock.now());
      if (suppressed !== undefined) this.log?.error({ err, suppressed }, 'handshake failed');
      sendFatal(p.socket, 'INTERNAL', 'handshake failed', 1011);
    });
  }

  /** @internal A pending socket closed. */
  forget(p: Pending): void {
    this.settle(p);
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
    if (ws.readyState !== WireSocket.OPEN) return;
    // Reconnect storm: refuse and give the device its own slot to come back in. Only now, after
    // its token was checked, so that a flood of anonymous sockets cannot spend the budget.
    const retryAfter = this.admission.admit(clock.now(), Math.random() * 250);
    if (retryAfter > 0) {
      this.counters.refused++;
      this.log?.debug({ device: device.id, retryAfter }, 'session refused: rate limited');
      return sendFatal(
        ws,
        'RATE_LIMITED',
        'too many new sessions; retry later',
        CloseCode.RateLimited,
        retryAfter,
      );
    }
    // A topic subscribed (or the device deleted) while this session is being set up is kept by
    // the hub and applied at attach, instead of being missed until the next reconnect.
    this.hub.beginJoin(device.id);
    try {
      // The device is read again once joining: a token rotated (or the device deleted) after the
      // first read is then either seen here or kept as a command by the hub, never missed.
      const [topics, stored, again] = await Promise.all([
        store.topicsOf(device.id),
        store.cursorsOf(device.id),
        store.getDevice(device.id),
      ]);
      if (ws.readyState !== WireSocket.OPEN) return;
      if (again?.tokenHash !== device.tokenHash) {
        return sendFatal(ws, 'UNAUTHORIZED', 'unknown device or wrong token', CloseCode.Unauthorized);
      }

      const streams = new Set([deviceStream(device.id), ...topics.map(topicStream)]);
      const cursors = await startCursors(store, streams, stored, hello.cursors);
      if (ws.readyState !== WireSocket.OPEN) return;

      const session = new Session(nextSessionNumber(), device.id, ws, this.host, clock.now());
      if (device.subscribe !== undefined) session.subscribePatterns = device.subscribe;
      if (device.user !== undefined) session.user = device.user;
      this.inbound.setHeartbeat(session, hello.hb ?? this.opts.defaultHeartbeat);

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
      ws.setMaxMessage(MAX_INBOUND_BYTES); // authenticated: the full message size from now on
      this.counters.handshakes++;
      this.log?.debug({ session: session.id, device: device.id, hb: session.heartbeat }, 'session open');
      store.touchDevice(device.id, clock.now()).catch(() => {}); // Redis may be away: never crash

      ws.listener = session;
      for (const e of p.early ?? []) this.inbound.onFrame(session, e.data, e.binary);
      p.early = undefined;
    } finally {
      this.hub.endJoin(device.id);
    }
  }

  private onClosed(session: Session, code: number): void {
    session.closed = true;
    this.hub.detach(session);
    session.resolveClosed();
    this.log?.debug({ session: session.id, device: session.deviceId, code }, 'session closed');
    const { store, clock } = this.opts;
    void store.touchDevice(session.deviceId, clock.now()).catch(() => {});
  }
}

/**
 * The client's address. Node caches it on the socket as an object with three fields (`_peername`,
 * ~90 bytes with its strings) for the socket's life; a session never asks again, so the cache is
 * dropped (Node reads the address from the kernel again if anything asks).
 */
function peerAddress(socket: Socket): string | undefined {
  const address = socket.remoteAddress;
  (socket as Socket & { _peername?: unknown })._peername = undefined;
  return address;
}

const delay = (ms: number) => new Promise<void>((r) => setTimeout(r, ms).unref());
