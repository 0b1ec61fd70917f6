/**
 * Scenario 3, unicast: N clients connected; messages to random clients. For each server and each
 * of its publishers: first the maximum (closed loop), then fractions (--levels) of that maximum,
 * open loop: delivered messages/s and publish→deliver latency p50/p99/p999 (send time stamped in
 * the payload, receipt time at the load generator).
 *
 * Pushwire (on SQLite, and with --engines redis on a private Redis with appendfsync always), each
 * message stored (fsync'd) before its 202, published three ways over one set of connected devices
 * (--pushwire-publishers): one message per request through undici's Pool as an application
 * backend does, the pipelined HTTP client, and the batch API. The Fastify floor: the same Pool.
 * NATS JetStream: publish with ack. Mosquitto: an external QoS 0 publisher. ws and Socket.IO have
 * no publish API: generated in-process.
 */

import type { ScenarioResult } from '../lib/report.js';
import { LoadGen } from '../loadgen/pool.js';
import { API_KEY } from '../peers/devices.js';
import { PEER_LABEL, type Peer, type PeerName } from '../peers/targets.js';
import { type Ctx, connectAll, errorSummary, peerFor, settle } from './context.js';
import { type LevelResult, level, type PublisherSpec } from './unicast-level.js';
import { unicastTargets } from './unicast-targets.js';

export type PushwirePublisher = 'single' | 'pipelined' | 'batch' | 'stream';
export const PUSHWIRE_PUBLISHERS: PushwirePublisher[] = ['single', 'pipelined', 'batch', 'stream'];

const POOL_LABEL = 'one per request: undici Pool, 16 conn × 4 in flight';

export function pushwirePublisher(name: PushwirePublisher, batch: number): PublisherSpec {
  switch (name) {
    case 'single':
      return { name, label: POOL_LABEL, mode: 'pool', batch: 1, connections: 16, window: 4 };
    case 'pipelined':
      return {
        name,
        label: 'one per request, pipelined: 16 conn × 64 in flight',
        mode: 'http',
        batch: 1,
        connections: 16,
        window: 64,
      };
    case 'batch':
      return {
        name,
        label: `batch API: ${batch} per request, 16 conn × ${Math.max(2, Math.ceil(64 / batch))} pipelined`,
        mode: 'http',
        batch,
        connections: 16,
        window: Math.max(2, Math.ceil(64 / batch)),
      };
    case 'stream':
      // One long connection with per-message acks after the durable commit, like a JetStream publisher.
      return {
        name,
        label: 'publisher stream: 1 WebSocket × 256 in flight (GET /v1/publish)',
        mode: 'stream',
        batch: 1,
        connections: 1,
        window: 256,
      };
  }
}

/** The publishers a peer is measured with. */
function publishersOf(ctx: Ctx, name: PeerName): PublisherSpec[] {
  const { o } = ctx;
  switch (name) {
    case 'pushwire':
      return o.pushwirePublishers.map((p) => pushwirePublisher(p, o.batch));
    case 'pushwire-redis':
      return o.redisPublishers.map((p) => pushwirePublisher(p, o.batch));
    case 'fastify':
      return [{ name: 'single', label: POOL_LABEL, mode: 'pool', batch: 1, connections: 16, window: 4 }];
    case 'nats':
      return [
        {
          name: 'nats',
          label: 'JetStream publish, counted on its ack: 1 conn × 64 in flight',
          mode: 'nats',
          batch: 1,
          connections: 16,
          window: 4,
        },
      ];
    case 'mosquitto':
    case 'mosquitto-dup':
      return [{ name: 'mqtt', label: 'QoS 0, 1 conn', mode: 'mqtt', batch: 1, connections: 1, window: 1 }];
    case 'ws':
    case 'socketio':
      return [
        {
          name: 'in-process',
          label: 'in-process generator',
          mode: 'in-process',
          batch: 1,
          connections: 0,
          window: 0,
        },
      ];
  }
}

export async function unicastScenario(ctx: Ctx): Promise<ScenarioResult> {
  const { o } = ctx;
  const started = performance.now();
  const startedAt = new Date().toISOString();
  const peers: PeerName[] = [];
  for (const p of o.peers) {
    if (p === 'mosquitto-dup' || p === 'pushwire-redis') continue;
    if (p === 'pushwire') {
      if (o.engines.includes('sqlite') && o.pushwirePublishers.length > 0) peers.push('pushwire');
      if (o.engines.includes('redis') && o.redisPublishers.length > 0) peers.push('pushwire-redis');
    } else peers.push(p);
  }
  const n = o.unicastN;
  const rows: ScenarioResult['rows'] = [];
  const failures: string[] = [];
  const notes: string[] = [];
  const lg = await LoadGen.start(n);
  try {
    for (const name of peers) {
      ctx.log(`unicast: ${name}, N=${n}`);
      let peer: Peer;
      try {
        peer = await peerFor(ctx, name, n, name === 'pushwire-redis' ? { devices: n } : {});
      } catch (err) {
        failures.push(`${name}: did not start: ${String((err as Error).message).slice(0, 300)}`);
        continue;
      }
      try {
        const c = await connectAll(ctx, lg, peer, n, { label: `${name} N=${n}` });
        if (!c.ok) {
          failures.push(`${name}: only ${c.totals.ready}/${n} ready (errors: ${errorSummary(c.totals)})`);
          continue;
        }
        await settle(ctx);
        for (const pub of publishersOf(ctx, name)) {
          if (pub.batch > 1 && !(await hasBatchApi(peer))) {
            notes.push(`${PEER_LABEL[name]}: no POST /v1/messages/batch; the batch publisher was skipped.`);
            continue;
          }
          ctx.log(`unicast: ${name}, ${pub.name}`);
          const max = await level(ctx, lg, peer, pub, 0, o.maxMs);
          rows.push(row(name, pub, 'max', max));
          checkLoss(name, pub, 'max', max, failures);
          for (const f of levelsOf(ctx, name, pub)) {
            // At least two requests' worth in the level (a batch publisher sends whole batches).
            const floor = Math.ceil((2 * pub.batch * 1000) / Math.max(1, o.levelMs));
            const rate = Math.max(1, floor, Math.round(max.deliveredPerS * f));
            const r = await level(ctx, lg, peer, pub, rate, o.levelMs);
            rows.push(row(name, pub, `${Math.round(f * 100)}% (${rate.toLocaleString('en-US')}/s)`, r));
            checkLoss(name, pub, `${Math.round(f * 100)}%`, r, failures);
          }
        }
      } finally {
        await lg.closeAll();
        await peer.stop();
      }
    }
  } finally {
    await lg.stop();
  }
  return {
    scenario: 'unicast',
    title: `Unicast to random devices among N = ${n.toLocaleString('en-US')}`,
    ok: failures.length === 0,
    failures,
    notes: [
      "Delivered/s = receipts counted at the load generator per second over the steady part of each run (max = closed loop; the levels are open loop at that fraction of the same row's max).",
      'Latency = receipt time − send time stamped in the payload (same clock, different processes); with a client pool it includes the time a request waits in the pool.',
      "Load-gen CPU near 1.0 means the load generator's core (receivers and publisher together) was the limit, not the server.",
      'Pushwire: every message stored (fsync\'d group commit) before its 202. "one per request" = undici Pool, 16 keep-alive connections, no pipelining, 4 requests in flight per connection (64 in all), as an application backend publishes; "pipelined" = 16 connections × 64 pipelined requests; "batch API" = POST /v1/messages/batch.',
      'Pushwire on Redis: store and bus on a private redis-server (AOF, appendfsync always, pinned to the server core, files on the same disk); server CPU counts the Pushwire process only, Redis CPU the redis-server. Redis commands / msg and reads / msg come from INFO stats (total_commands_processed, total_reads_processed) over the run, per accepted message (the two INFO calls included): reads / msg well below 1 means the commands arrive pipelined, not one round trip per message.',
      'Fastify floor: a bare Fastify route with the same body schema and bearer check, nothing stored, the data sent to the client over `ws`, then 202: what HTTP + JSON + a WebSocket write cost without durability.',
      "NATS JetStream: a file-storage stream captures the devices' subjects; a message counts when its publish ack arrives (the stream appended it to its file; JetStream fsyncs its files every sync_interval, 2 min by default, not per message). Devices are core-NATS subscribers and get the message as it passes the server, not after the store.",
      'Mosquitto: external QoS 0 publisher (no durability), the reference the ratios are computed against. ws and Socket.IO: generated inside the server process (no durability, no publish API).',
      ...notes,
    ],
    columns: [
      { key: 'peer', label: 'server' },
      { key: 'publisher', label: 'publisher' },
      { key: 'level', label: 'offered' },
      { key: 'deliveredPerS', label: 'delivered', unit: 'msg/s' },
      { key: 'p50', label: 'p50', unit: 'ms' },
      { key: 'p99', label: 'p99', unit: 'ms' },
      { key: 'p999', label: 'p99.9', unit: 'ms' },
      { key: 'sent', label: 'sent' },
      { key: 'accepted', label: 'accepted' },
      { key: 'received', label: 'received' },
      { key: 'serverCpu', label: 'server CPU', unit: 'cores' },
      { key: 'loadgenCpu', label: 'load-gen CPU', unit: 'cores' },
      { key: 'redisCpu', label: 'Redis CPU', unit: 'cores' },
      { key: 'redisCmdsPerMsg', label: 'Redis commands / msg' },
      { key: 'redisReadsPerMsg', label: 'Redis reads / msg' },
    ],
    rows,
    targets: unicastTargets(rows),
    chart: {
      title: 'Unicast: maximum delivered rate',
      unit: 'messages per second',
      better: 'higher',
      groups: [
        {
          label: '',
          bars: rows
            .filter((r) => r.level === 'max')
            .map((r) => ({
              label: `${r.peer}${r.mode === 'in-process' || r.mode === 'mqtt' ? '' : ` (${r.mode})`}`,
              value: Number(r.deliveredPerS),
              accent: String(r.peer).startsWith('Pushwire'),
            })),
        },
      ],
    },
    options: {
      unicastN: n,
      peers,
      maxMs: o.maxMs,
      levelMs: o.levelMs,
      levels: o.levels,
      batch: o.batch,
      pushwirePublishers: o.pushwirePublishers,
      redisPublishers: o.redisPublishers,
      engines: o.engines,
      payloadBytes: o.payloadBytes,
    },
    startedAt,
    elapsedMs: performance.now() - started,
  };
}

/**
 * The open-loop levels after a row's max. The smoke run keeps them short: one row per open-loop
 * code path (Pool, pipelined HTTP, NATS, MQTT, in-process) and the target row (one per request).
 */
function levelsOf(ctx: Ctx, name: PeerName, pub: PublisherSpec): number[] {
  if (!ctx.o.smoke) return ctx.o.levels;
  const paths = ['pushwire/single', 'pushwire/pipelined', 'nats/nats', 'mosquitto/mqtt', 'ws/in-process'];
  return paths.includes(`${name}/${pub.name}`) ? ctx.o.levels : [];
}

async function hasBatchApi(peer: Peer): Promise<boolean> {
  const probe = await fetch(`http://${peer.host}:${peer.port}/v1/messages/batch`, {
    method: 'POST',
    headers: { authorization: `Bearer ${API_KEY}`, 'content-type': 'application/json' },
    body: '{"messages":[]}',
  });
  await probe.text();
  return probe.status !== 404;
}

function row(
  name: PeerName,
  pub: PublisherSpec,
  levelLabel: string,
  r: LevelResult,
): ScenarioResult['rows'][number] {
  return {
    peer: PEER_LABEL[name],
    peerName: name,
    mode: pub.name,
    publisher: pub.label,
    level: levelLabel,
    deliveredPerS: r.deliveredPerS,
    p50: r.lat.p50,
    p99: r.lat.p99,
    p999: r.lat.p999,
    sent: r.sent,
    accepted: r.accepted,
    received: r.received,
    serverCpu: r.serverCpu,
    loadgenCpu: r.loadgenCpu,
    redisCpu: r.store?.cpu ?? null,
    redisCmdsPerMsg: r.store?.commandsPerMsg ?? null,
    redisReadsPerMsg: r.store?.readsPerMsg ?? null,
  };
}

function checkLoss(
  name: PeerName,
  pub: PublisherSpec,
  label: string,
  r: LevelResult,
  failures: string[],
): void {
  if (r.received < r.accepted)
    failures.push(`${name} ${pub.name} ${label}: ${r.accepted - r.received} accepted messages not delivered`);
  if (r.accepted === 0) failures.push(`${name} ${pub.name} ${label}: nothing was accepted`);
}
