import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import type { ResolvedOptions } from '../config.js';
import type { Hub } from '../core/hub.js';
import { refuse } from '../gateway/pending.js';
import type { Session, SessionHost } from '../gateway/session.js';
import type { WireSockets } from '../gateway/wire/registry.js';
import { WireSocket } from '../gateway/wire/socket.js';
import { acceptUpgrade } from '../gateway/wire/upgrade.js';
import { AddressCounts, addressKey } from '../util/address.js';
import { AdmissionControl } from '../util/admission.js';
import { DeadlineWheel } from '../util/deadline-wheel.js';
import { KeyedRateLimiter } from '../webpush/rate-limit.js';
import type { WebPushRegistry } from '../webpush/registry.js';
import { WEB_PUSH_DEFAULTS, type WebPushOptions } from '../webpush/routes.js';
import { AUTOPUSH_SUBPROTOCOL, MAX_CLIENT_MESSAGE } from './codec.js';
import { Connection, deviceIdOfUaid } from './connection.js';

export { deviceIdOfUaid };

/** Options of the autopush endpoint (`autopush` of `createPushwireServer`). */
export interface AutopushOptions {
  /**
   * Anonymous hellos (each mints a new uaid, and its first register creates a device) per second
   * per client address, and burst. Defaults 0.2 and 20. Beyond: the socket is closed with 1013.
   */
  anonymousHelloRate?: number;
  anonymousHelloBurst?: number;
  /**
   * Seconds without any message after which a session is closed. Firefox pings every 30 minutes
   * (`dom.push.pingInterval`), so the default is 65 minutes.
   */
  idleTimeout?: number;
}

/** Counters the metrics endpoint reads. */
export interface AutopushCounters {
  /** Sessions opened (hello answered). */
  sessions: number;
  /** Hellos without a known uaid: a new uaid was issued. */
  anonymousHellos: number;
  /** Anonymous hellos refused by the per-address limit. */
  refusedHellos: number;
  /** Devices created by a first register. */
  devicesCreated: number;
  registrations: number;
  unregistrations: number;
  /** Notifications acknowledged by clients. */
  acks: number;
  nacks: number;
  protocolErrors: number;
}

/** Entries read from the store at once when a session replays its backlog. */
const REPLAY_PAGE = 256;

interface Deps {
  hub: Hub<Session>;
  opts: ResolvedOptions;
  registry: WebPushRegistry;
  webPush: WebPushOptions;
  /** The server's socket registry (shared with the gateway, so shutdown closes these too). */
  sockets: WireSockets;
  tls: boolean;
  log: Logger | undefined;
  /** The server's own base URL once listening: endpoints default to it, never to a `Host` header. */
  listenUrl?: () => string;
}

/**
 * The autopush device endpoint `GET /v1/autopush`: one {@link Connection} per socket, delivery
 * through the gateway's flow-controlled {@link Session} with notifications encoded the autopush way.
 */
export class AutopushService {
  readonly counters: AutopushCounters = {
    sessions: 0,
    anonymousHellos: 0,
    refusedHellos: 0,
    devicesCreated: 0,
    registrations: 0,
    unregistrations: 0,
    acks: 0,
    nacks: 0,
    protocolErrors: 0,
  };
  /** @internal */
  readonly host: SessionHost;
  /** @internal */
  readonly bySession = new Map<Session, Connection>();
  private readonly wheel: DeadlineWheel<Connection>;
  private readonly anonymous: KeyedRateLimiter;
  private readonly admission: AdmissionControl;
  private readonly pendingByAddress: AddressCounts;
  readonly idleMs: number;
  /** Open sockets of this endpoint. */
  readonly connections = new Set<Connection>();
  private closing = false;

  constructor(
    /** @internal */ readonly deps: Deps,
    options: AutopushOptions = {},
  ) {
    const { opts, hub, log } = deps;
    const now = opts.clock.now();
    this.idleMs = (options.idleTimeout ?? 65 * 60) * 1000;
    this.anonymous = new KeyedRateLimiter(
      options.anonymousHelloRate ?? 0.2,
      options.anonymousHelloBurst ?? 20,
    );
    this.admission = new AdmissionControl(opts.admissionRate, opts.admissionBurst, now);
    this.pendingByAddress = new AddressCounts(opts.maxPendingPerAddress || Number.POSITIVE_INFINITY);
    this.wheel = new DeadlineWheel<Connection>(250, (c) => c.deadline(), now);
    this.host = {
      read: (stream, after) => opts.store.read(stream, after, REPLAY_PAGE, opts.clock.now()),
      head: (stream) => opts.store.head(stream),
      pageSize: REPLAY_PAGE,
      maxBufferedBytes: opts.maxBufferedBytes,
      highWaterBytes: opts.sendHighWaterBytes,
      now: () => opts.clock.now(),
      onBlocked: (session) => {
        const c = this.bySession.get(session);
        if (c) this.wheel.add(c);
      },
      onDelivered: (n) => {
        hub.counters.delivered += n;
      },
      onError: (err) => log?.error({ err }, 'autopush session error'),
      onSlowConsumer: (session) => log?.debug({ device: session.deviceId }, 'autopush slow consumer dropped'),
      onFrame: () => {}, // the Connection is the socket's listener, not the Session
      onClosed: () => {},
      encode: (entry, session) => this.bySession.get(session)?.encode(entry),
      // Autopush has no error or goaway message: the close code that follows tells the client.
      control: () => undefined,
    };
  }

  /** Handles an HTTP upgrade request for `/v1/autopush`. */
  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    if (this.closing)
      return refuse(socket, 503, 'DRAINING', 'server is shutting down', { 'Retry-After': '5' });
    const offered = String(req.headers['sec-websocket-protocol'] ?? '')
      .split(',')
      .map((s) => s.trim());
    if (!offered.includes(AUTOPUSH_SUBPROTOCOL)) {
      return refuse(
        socket,
        426,
        'UPGRADE_REQUIRED',
        `offer the WebSocket subprotocol ${AUTOPUSH_SUBPROTOCOL}`,
      );
    }
    const upgrade = acceptUpgrade(req.method, req.headers, AUTOPUSH_SUBPROTOCOL);
    if ('refusal' in upgrade) {
      const r = upgrade.refusal;
      return refuse(socket, r.status, r.code, r.message, r.headers);
    }
    const base = this.baseUrl(req);
    if (base === undefined) return refuse(socket, 400, 'BAD_REQUEST', 'a valid Host header is required');
    const address = addressKey(req.socket.remoteAddress);
    if (!this.pendingByAddress.take(address)) {
      return refuse(socket, 429, 'RATE_LIMITED', 'too many handshakes from this address', {
        'Retry-After': '1',
      });
    }
    if (!socket.writable) {
      this.pendingByAddress.release(address);
      return void socket.destroy();
    }
    socket.write(upgrade.response);
    const ws = new WireSocket(socket, head, MAX_CLIENT_MESSAGE, this.deps.sockets);
    const c = new Connection(this, ws, address, base, this.deps.opts.clock.now());
    ws.listener = c;
    this.connections.add(c);
    this.wheel.add(c);
  }

  /** Closes idle sessions and handshakes past their deadline. Called by the server's timer. */
  tick(): void {
    const now = this.deps.opts.clock.now();
    this.wheel.advance(now, (c) => c.expire(now));
  }

  /** Refuses new sockets from now on (the gateway closes the open ones). */
  stop(): void {
    this.closing = true;
  }

  /** @internal */
  refile(c: Connection): void {
    this.wheel.add(c);
  }

  /** @internal A hello without a known uaid: the per-address limit; false = refused. */
  takeAnonymous(address: string): boolean {
    if (this.anonymous.take(address, this.deps.opts.clock.now()) > 0) {
      this.counters.refusedHellos++;
      return false;
    }
    this.counters.anonymousHellos++;
    return true;
  }

  /** @internal Admission of a known device (reconnect storm); ms to wait, 0 = admitted. */
  admit(): number {
    return this.admission.admit(this.deps.opts.clock.now(), Math.random() * 250);
  }

  /** @internal */
  releaseAddress(address: string): void {
    this.pendingByAddress.release(address);
  }

  get maxSubscriptions(): number {
    return this.deps.webPush.maxSubscriptionsPerDevice ?? WEB_PUSH_DEFAULTS.maxSubscriptionsPerDevice;
  }

  private baseUrl(req: IncomingMessage): string | undefined {
    const pub = this.deps.webPush.publicUrl;
    if (pub !== undefined) return pub.replace(/\/+$/, '');
    const own = this.deps.listenUrl?.();
    if (own) return own;
    const host = req.headers.host;
    if (typeof host !== 'string' || !/^[A-Za-z0-9.\-:[\]]{1,300}$/.test(host)) return undefined;
    return `${this.deps.tls ? 'https' : 'http'}://${host}`;
  }
}
