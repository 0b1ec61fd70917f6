import type { Logger } from 'pino';
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
  /** Admin API keys accepted as `Authorization: Bearer KEY`. */
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
  /** Bytes a connection may have queued unsent before it is closed as a slow consumer. Default 1 MiB. */
  maxBufferedBytes?: number;
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
  /** Serve `GET /metrics` without the API key (for scrapers on a private network). Default false. */
  metricsPublic?: boolean;
  logger?: Logger;
  clock?: Clock;
  /** Serve HTTPS and WSS (PEM certificate chain and private key) instead of HTTP and WS. */
  tls?: { cert: string | Buffer; key: string | Buffer };
  /** Web Push service (RFC 8030/8291/8292) options; `false` turns it off. On by default. */
  webPush?: WebPushOptions | false;
  /** Content-free wake-ups through APNs/FCM for devices without a session; off unless a provider is configured. */
  wake?: WakeOptions;
}

export type ResolvedOptions = Required<Omit<ServerOptions, 'logger' | 'tls' | 'webPush' | 'wake'>> & {
  logger: Logger | undefined;
};

const DAY = 24 * 3600;

export function resolveOptions(o: ServerOptions): ResolvedOptions {
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
    maxBufferedBytes: o.maxBufferedBytes ?? 1024 * 1024,
    drainWindowMs: o.drainWindowMs ?? 10_000,
    admissionRate: o.admissionRate ?? 5000,
    admissionBurst: o.admissionBurst ?? 5000,
    sweepIntervalMs: o.sweepIntervalMs ?? 60_000,
    metricsPublic: o.metricsPublic ?? false,
    logger: o.logger,
    clock: o.clock ?? { now: () => Date.now() },
  };
}
