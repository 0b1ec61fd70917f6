import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';
import type { Hub } from '../core/hub.js';
import type { Gateway } from '../gateway/gateway.js';
import type { Store, StoreStats } from '../store/types.js';

/** The metrics of one server, and the few figures the dashboard reads without parsing them. */
export interface ServerMetrics {
  /** Everything `/metrics` exposes: this server's metrics plus the process's default ones. */
  readonly registry: Registry;
  /** Live deliveries observed by the latency histogram, and the sum of their latencies (ms). */
  latency(): { count: number; sumMs: number };
}

let processRegistry: Registry | undefined;

/**
 * Process-wide default metrics (CPU, memory, GC, event-loop lag as `nodejs_eventloop_lag_*`),
 * collected once per process however many servers it runs.
 */
function processMetrics(): Registry {
  if (!processRegistry) {
    processRegistry = new Registry();
    collectDefaultMetrics({ register: processRegistry, eventLoopMonitoringPrecision: 20 });
  }
  return processRegistry;
}

/**
 * Creates the Prometheus metrics of a server. Counts the server already keeps (gateway, hub,
 * store) are read at scrape time by `collect()` callbacks; only three hot-path observations are
 * added: one histogram observe per live delivery, per declared heartbeat and per store commit.
 */
export function createMetrics(deps: { hub: Hub; gateway: Gateway; store: Store }): ServerMetrics {
  const { hub, gateway, store } = deps;
  const own = new Registry();
  const registers = [own];

  const gauge = (name: string, help: string, read: () => number) =>
    new Gauge({
      name,
      help,
      registers,
      collect() {
        this.set(read());
      },
    });
  const counter = (name: string, help: string, read: () => number) =>
    new Counter({
      name,
      help,
      registers,
      collect() {
        this.reset();
        this.inc(read());
      },
    });

  gauge(
    'pushwire_connections',
    'Open WebSocket connections, handshakes and closing sockets included.',
    () => {
      return gateway.connections;
    },
  );
  gauge('pushwire_sessions', 'Authenticated device sessions.', () => hub.online);
  const g = gateway.counters;
  counter('pushwire_handshakes_total', 'Sessions opened (welcome sent).', () => g.handshakes);
  counter(
    'pushwire_handshakes_refused_total',
    'New sessions refused with RATE_LIMITED: admission control, or too many handshakes from one address.',
    () => g.refused,
  );
  counter('pushwire_handshake_timeouts_total', 'Sockets closed for sending no hello in time.', () => {
    return g.handshakeTimeouts;
  });
  counter('pushwire_idle_closed_total', 'Sessions closed after their heartbeat plus grace.', () => {
    return g.idleClosed;
  });
  counter('pushwire_protocol_errors_total', 'Malformed frames received.', () => g.protocolErrors);
  counter(
    'pushwire_slow_consumers_total',
    'Sessions dropped because the client did not read and its send buffer passed the bound.',
    () => g.slowConsumers,
  );

  const h = hub.counters;
  counter('pushwire_messages_published_total', 'Publishes accepted (stored), duplicates excluded.', () => {
    return h.published;
  });
  counter('pushwire_messages_duplicate_total', 'Publishes whose id was seen before.', () => h.duplicates);
  counter(
    'pushwire_messages_delivered_total',
    'Stream entries written to device sockets (live and replayed; a redelivery counts again).',
    () => h.delivered,
  );
  counter(
    'pushwire_acks_total',
    'Stream cursors acknowledged by devices (one per stream per ack or ping frame).',
    () => h.acked,
  );

  const latency = new Histogram({
    name: 'pushwire_publish_to_deliver_seconds',
    help: 'From publish to the entry being written to a socket, for live deliveries (replays excluded).',
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers,
  });
  let delivered = 0;
  let sumMs = 0;
  gateway.observers.liveDelivery = (publishedAt, now) => {
    const ms = Math.max(0, now - publishedAt);
    delivered++;
    sumMs += ms;
    latency.observe(ms / 1000);
  };

  const heartbeat = new Histogram({
    name: 'pushwire_heartbeat_seconds',
    help: 'Heartbeat intervals in effect per hello and per ping declaring one (client value, clamped).',
    buckets: [5, 15, 30, 60, 120, 300, 600, 900, 1800],
    registers,
  });
  gateway.observers.heartbeat = (seconds) => heartbeat.observe(seconds);

  const stats = store.stats?.bind(store);
  if (stats) batchMetrics(store, stats, registers, counter);

  return {
    registry: Registry.merge([own, processMetrics()]),
    latency: () => ({ count: delivered, sumMs }),
  };
}

/** Counters and histograms of an engine that batches its writes (group commit). */
function batchMetrics(
  store: Store,
  stats: () => StoreStats,
  registers: Registry[],
  counter: (name: string, help: string, read: () => number) => Counter,
): void {
  counter('pushwire_messages_expired_total', 'Entries removed by the sweep past their expiry.', () => {
    return stats().expired;
  });
  counter(
    'pushwire_messages_collapsed_total',
    'Entries replaced by a newer message with the same collapse key.',
    () => stats().collapsed,
  );
  counter('pushwire_store_batches_total', 'Store commits carrying publishes (one fsync each).', () => {
    return stats().batches;
  });
  const size = new Histogram({
    name: 'pushwire_store_batch_size',
    help: 'Publishes per store commit (group commit).',
    buckets: [1, 2, 4, 8, 16, 32, 64, 128, 256, 512],
    registers,
  });
  const time = new Histogram({
    name: 'pushwire_store_batch_seconds',
    help: 'Duration of one store commit carrying publishes, fsync included.',
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
    registers,
  });
  const previous = store.onBatch;
  store.onBatch = (publishes, ms) => {
    previous?.(publishes, ms);
    size.observe(publishes);
    time.observe(ms / 1000);
  };
}
