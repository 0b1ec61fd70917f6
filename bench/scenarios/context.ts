/** What every scenario gets: options, logging, the device pool, and connect helpers. */
import type { ServerOptions } from '@pushwire/server';
import { sleep } from '../lib/util.js';
import type { LoadGen, Totals } from '../loadgen/pool.js';
import { type DevicePool, devicePool } from '../peers/devices.js';
import { type Peer, type PeerName, type PeerOptions, startPeer } from '../peers/targets.js';
import type { PushwirePublisher } from './unicast.js';

export interface Options {
  /** Connection counts for idle and broadcast. */
  n: number[];
  peers: PeerName[];
  rounds: number;
  unicastN: number;
  /** Duration of the max-rate probe and of each rate level (ms). */
  maxMs: number;
  levelMs: number;
  stormN: number;
  stormTimeoutMs: number;
  /** Reconnect handshakes in flight during the storm (all clients at once by default). */
  stormConcurrency: number;
  /** Clients of the node scenario, spread over `nodeProcesses` Pushwire processes. */
  nodeN: number;
  nodeProcesses: number;
  /** Pushwire publish rate while the server is killed (msg/s). */
  stormRate: number;
  connectConcurrency: number;
  /** Pushwire clients gather acks this long before sending them (the SDK's `ackDelay`). */
  ackDelayMs: number;
  /** Pushwire clients ack topic streams lazily, alone after at most this long (the SDK's `topicAckDelay`). */
  topicAckDelayMs: number;
  connectRate: number;
  payloadBytes: number;
  /** Messages per request of the batch publisher (POST /v1/messages/batch). */
  batch: number;
  /** Publishers Pushwire on SQLite is measured with in the unicast scenario. */
  pushwirePublishers: PushwirePublisher[];
  /** Publishers Pushwire on Redis is measured with (engines include redis). */
  redisPublishers: PushwirePublisher[];
  /** Stores Pushwire runs on in the unicast scenario: sqlite, redis (a private redis-server). */
  engines: ('sqlite' | 'redis')[];
  /** Fractions of each unicast row's maximum measured open loop after it. */
  levels: number[];
  /** Heartbeat the Pushwire and MQTT load clients declare (s). */
  hb: number;
  settleMs: number;
  idleCostClients: number;
  idleCostMs: number;
  pushwire: Partial<ServerOptions>;
  cpuProf: boolean;
  out: string;
  smoke: boolean;
}

export interface Ctx {
  o: Options;
  log(s: string): void;
  pool(n: number): Promise<DevicePool>;
  peerOptions(pool?: DevicePool): PeerOptions;
}

export function makeCtx(o: Options, log: (s: string) => void, profDir: string): Ctx {
  // One pool, as large as the largest scenario of the run needs: built (or found) once.
  const size = Math.max(...o.n, o.unicastN, o.stormN, o.idleCostClients);
  let pool: Promise<DevicePool> | undefined;
  return {
    o,
    log,
    async pool(n) {
      pool ??= devicePool(size, log).then((p) => {
        if (p.how !== 'cached') log(`  device pool: ${p.devices.length} devices (${p.how})`);
        return p;
      });
      const p = await pool;
      return { ...p, devices: p.devices.slice(0, n) };
    },
    peerOptions: (pool) => ({
      ...(pool && { pool }),
      pushwire: o.pushwire,
      ...(o.cpuProf && { nodeFlags: ['--cpu-prof', `--cpu-prof-dir=${profDir}`] }),
    }),
  };
}

/** Starts a peer (with the device pool when it is Pushwire). */
export async function peerFor(ctx: Ctx, name: PeerName, n: number, extra: PeerOptions = {}): Promise<Peer> {
  const pool = name === 'pushwire' ? await ctx.pool(n) : undefined;
  return startPeer(name, { ...ctx.peerOptions(pool), ...extra });
}

export interface ConnectOpts {
  /** Reconnect after a close (default true: refused clients retry, as real ones do). */
  reconnect?: boolean;
  trackSeqs?: boolean;
  hb?: number;
  label?: string;
}

/** Opens `n` clients of `peer` and waits (bounded) until all are ready. */
export async function connectAll(
  ctx: Ctx,
  lg: LoadGen,
  peer: Peer,
  n: number,
  c: ConnectOpts = {},
): Promise<{ ok: boolean; elapsedMs: number; totals: Totals }> {
  await lg.open({
    proto: peer.proto,
    host: peer.host,
    port: peer.port,
    path: peer.path,
    clients: peer.clients(n),
    hb: c.hb ?? ctx.o.hb,
    topic: peer.topic,
    reconnect: c.reconnect === false ? null : { initialMs: 500, maxMs: 30_000 },
    trackSeqs: c.trackSeqs ?? false,
    concurrency: ctx.o.connectConcurrency,
    rate: ctx.o.connectRate,
    ackDelayMs: ctx.o.ackDelayMs,
    topicAckDelayMs: ctx.o.topicAckDelayMs,
  });
  const r = await lg.waitFor(c.label ?? `${peer.name} connect`, (t) => t.ready >= n, Math.max(30_000, n * 6));
  return r;
}

/** Settles after a phase: lets timers fire and garbage be collected before sampling. */
export const settle = (ctx: Ctx) => sleep(ctx.o.settleMs);

export function errorSummary(t: Totals): string {
  const e = Object.entries(t.errors)
    .sort((a, b) => b[1] - a[1])
    .slice(0, 4)
    .map(([k, v]) => `${k}×${v}`)
    .join(', ');
  return e || 'none';
}
