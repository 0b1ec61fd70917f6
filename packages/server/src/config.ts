import type { Logger } from 'pino';
import type { AutopushOptions } from './autopush/host.js';
import { LocalBus } from './bus/local.js';
import type { Bus } from './bus/types.js';
import type { Store } from './store/types.js';
import type { Clock } from './util/clock.js';
import type { WakeOptions } from './wake/service.js';
import type { WebPushOptions } from './webpush/routes.js';

/** Options of {@link createPushwireServer}. Every field but the store has a default. */
export interface ServerOptions {
  /** Durable store (SQLite by default through {@link openServer}). */
  store: Store;
  /** How new messages reach the node holding the device: in-process (default) or a cluster's `RedisBus`. */
  bus?: Bus;
  /**
   * Admin API keys accepted as `Authorization: Bearer KEY` (every scope). Scoped keys live in the
   * store (`POST /v1/keys`).
   */
  apiKeys: string[];
  /** Largest `data` + `notification` of one message, in bytes. Default 4096. */
  maxPayload?: number;
  /** Default message TTL in seconds when a publish gives none. Default 30 days. */
  defaultTtl?: number;
  /** Largest TTL in seconds; larger ones are capped. Default 30 days. */
  maxTtl?: number;
  /** Heartbeat interval (s) assumed when a client declares none. Default 60. */
  defaultHeartbeat?: number;
  /** Smallest and largest heartbeat interval (s) a client may declare. Defaults 1 and 1800. */
  minHeartbeat?: number;
  maxHeartbeat?: number;
  /** Seconds of silence past the declared interval before a session is closed. Default 15. */
  idleGrace?: number;
  /** Milliseconds a new socket has to send hello. Default 10,000. */
  handshakeTimeoutMs?: number;
  /**
   * Largest WebSocket message (and partial frame held) a socket may send before its session is
   * open; larger ones close the socket with 1009. Keeps anonymous sockets cheap. It must fit the
   * largest `hello` your clients send (about 40 bytes plus the stream name per cursor). Default 48 KiB (a hello at the default 200-topic bound with 128-character names is ~30 KB).
   */
  maxHelloBytes?: number;
  /** Milliseconds a close handshake may take before the socket is destroyed. Default 10,000. */
  closeTimeoutMs?: number;
  /**
   * Bytes a connection may have queued unsent before it is closed as a slow consumer, each queued
   * write counted with an overhead of 160 bytes. Default 1 MiB.
   * Messages never fill it: they stop at {@link ServerOptions.sendHighWaterBytes}; only control frames
   * answering a client that keeps sending but never reads (pongs, errors) can reach it.
   */
  maxBufferedBytes?: number;
  /**
   * Flow control of message delivery (replay and live): messages are written while the socket's unsent
   * bytes are under this mark, then the stream waits until the socket drained and goes on where it
   * stopped. Default 256 KiB; at most half of `maxBufferedBytes`.
   */
  sendHighWaterBytes?: number;
  /**
   * A connection whose unsent messages have not drained for this long (the client stopped reading)
   * is dropped as a slow consumer; it resumes from its cursor when it reconnects. Default 60,000 ms:
   * draining 256 KiB in that time is about 35 kbit/s, slower than any link worth waiting for.
   */
  slowConsumerTimeoutMs?: number;
  /**
   * WebSocket handshakes (upgraded, no hello yet) one client address may have open at once (IPv6: one
   * /64). More are refused with `RATE_LIMITED`. A real client's hello follows its upgrade within a
   * round trip, so only a reconnect storm behind a large NAT comes near. Default 1024; 0 turns it off
   * (behind a reverse proxy every client has the proxy's address: bound handshakes at the proxy).
   */
  maxPendingPerAddress?: number;
  /**
   * Requests (`sub`, `unsub`, frames answered with an error) one session may send: a token bucket of
   * `sessionRequestRate` per second and `sessionRequestBurst`. Past it a request is answered with a
   * non-fatal `RATE_LIMITED` (with `retryAfter`); a session refused `sessionRequestBurst` times in a row
   * is closed (fatal `RATE_LIMITED`, close code 4029). Defaults 50/s and 500.
   */
  sessionRequestRate?: number;
  sessionRequestBurst?: number;
  /** Drain window (ms): goaway reconnect-after values are spread over it. Default 10,000. */
  drainWindowMs?: number;
  /**
   * Admission control: new sessions per second (token refill rate) and burst. Defaults 5000 / 5000:
   * about what one core completes here (19,000 resumed in 6 s), so a storm is served at full speed
   * and refused only beyond it.
   */
  admissionRate?: number;
  admissionBurst?: number;
  /** Interval of the expiry and retention sweep, ms. Default 60,000. */
  sweepIntervalMs?: number;
  /**
   * Topics one device may follow. Default 200: the welcome frame lists them, about 130 bytes per
   * 128-character topic (26 KB for 200), far below the 256 KiB frame limit. Beyond it: HTTP 429 /
   * protocol error `TOO_MANY_TOPICS`.
   */
  maxTopicsPerDevice?: number;
  /** Devices one user may have. Default 100. Beyond it: HTTP 429 `TOO_MANY_DEVICES`. */
  maxDevicesPerUser?: number;
  /**
   * Undelivered messages kept for one device (its own stream). Default 10,000. A publish beyond
   * it is refused with HTTP 507 `DEVICE_BACKLOG_FULL` (retry once the device has caught up).
   */
  maxPendingPerDevice?: number;
  /** Bytes of undelivered `data` + `notification` kept for one device. Default 16 MiB; as above. */
  maxPendingBytesPerDevice?: number;
  /**
   * Stream entries one request may create (a message to a user creates one per device; a batch
   * adds up its messages). Default 10,000. A message beyond it: HTTP 413 `TOO_MANY_ENTRIES`.
   */
  maxEntriesPerRequest?: number;
  /**
   * Seconds a message to a topic nobody follows is kept (nobody can read it: a new subscriber
   * starts at the head). Default 3600; only the dashboard and delivery status see it meanwhile.
   */
  unfollowedTopicTtl?: number;
  /**
   * Deepest nesting of arrays and objects a JSON request body may have. Default 64; deeper bodies
   * answer 400 `JSON_TOO_DEEP`.
   */
  maxJsonDepth?: number;
  /**
   * Devices one client address (IPv6: one /64) may register per second with a `register` key
   * (token bucket), and burst. Defaults 1 and 20; 0 turns it off. Admin keys are not limited.
   * Beyond it: HTTP 429 `RATE_LIMITED` with `Retry-After`.
   */
  registerRate?: number;
  registerBurst?: number;
  /**
   * Devices one `register` key may have created and still alive, across all addresses. Default
   * 100,000; 0 turns it off. Admin keys are not limited. Beyond it: HTTP 429 `DEVICE_QUOTA_EXCEEDED`.
   * Counted from this version on: devices registered earlier are not counted.
   */
  maxDevicesPerRegisterKey?: number;
  /** Serve `GET /metrics` without the API key (for scrapers on a private network). Default false. */
  metricsPublic?: boolean;
  logger?: Logger;
  clock?: Clock;
  /** Serve HTTPS and WSS (PEM certificate chain and private key) instead of HTTP and WS. */
  tls?: { cert: string | Buffer; key: string | Buffer };
  /** Web Push service (RFC 8030/8291/8292) options; `false` turns it off. On by default. */
  webPush?: WebPushOptions | false;
  /**
   * The key `/demo` registers its devices with (`GET /demo/config.json`): a `register` key, see
   * `ensureDemoKey`. Without it the demo page asks for a key.
   */
  demoKey?: string;
  /** Content-free wake-ups through APNs/FCM for devices without a session; off unless a provider is configured. */
  wake?: WakeOptions;
  /**
   * The autopush device endpoint `GET /v1/autopush` (Firefox's push client, UnifiedPush
   * distributors): `true` or options to turn it on. Off by default: anonymous hellos create devices.
   * Needs the Web Push service (its subscriptions are Web Push subscriptions).
   */
  autopush?: AutopushOptions | boolean;
}

export type ResolvedOptions = Required<
  Omit<ServerOptions, 'logger' | 'tls' | 'webPush' | 'wake' | 'autopush' | 'demoKey'>
> & {
  logger: Logger | undefined;
};

const DAY = 24 * 3600;

export function resolveOptions(o: ServerOptions): ResolvedOptions {
  const maxBufferedBytes = o.maxBufferedBytes ?? 1024 * 1024;
  return {
    store: o.store,
    bus: o.bus ?? new LocalBus(),
    apiKeys: o.apiKeys,
    maxPayload: o.maxPayload ?? 4096,
    defaultTtl: o.defaultTtl ?? 30 * DAY,
    maxTtl: o.maxTtl ?? 30 * DAY,
    defaultHeartbeat: o.defaultHeartbeat ?? 60,
    minHeartbeat: o.minHeartbeat ?? 1,
    maxHeartbeat: o.maxHeartbeat ?? 1800,
    idleGrace: o.idleGrace ?? 15,
    handshakeTimeoutMs: o.handshakeTimeoutMs ?? 10_000,
    maxBufferedBytes,
    maxHelloBytes: o.maxHelloBytes ?? 48 * 1024,
    closeTimeoutMs: o.closeTimeoutMs ?? 10_000,
    sendHighWaterBytes: Math.min(o.sendHighWaterBytes ?? 256 * 1024, Math.floor(maxBufferedBytes / 2)),
    slowConsumerTimeoutMs: o.slowConsumerTimeoutMs ?? 60_000,
    maxPendingPerAddress: o.maxPendingPerAddress ?? 1024,
    sessionRequestRate: o.sessionRequestRate ?? 50,
    sessionRequestBurst: o.sessionRequestBurst ?? 500,
    drainWindowMs: o.drainWindowMs ?? 10_000,
    admissionRate: o.admissionRate ?? 5000,
    admissionBurst: o.admissionBurst ?? 5000,
    sweepIntervalMs: o.sweepIntervalMs ?? 60_000,
    metricsPublic: o.metricsPublic ?? false,
    registerRate: o.registerRate ?? 1,
    registerBurst: o.registerBurst ?? 20,
    maxDevicesPerRegisterKey: o.maxDevicesPerRegisterKey ?? 100_000,
    maxTopicsPerDevice: o.maxTopicsPerDevice ?? 200,
    maxDevicesPerUser: o.maxDevicesPerUser ?? 100,
    maxPendingPerDevice: o.maxPendingPerDevice ?? 10_000,
    maxPendingBytesPerDevice: o.maxPendingBytesPerDevice ?? 16 * 1024 * 1024,
    maxEntriesPerRequest: o.maxEntriesPerRequest ?? 10_000,
    unfollowedTopicTtl: o.unfollowedTopicTtl ?? 3600,
    maxJsonDepth: o.maxJsonDepth ?? 64,
    logger: o.logger,
    clock: o.clock ?? { now: () => Date.now() },
  };
}
