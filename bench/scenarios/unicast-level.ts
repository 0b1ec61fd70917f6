/**
 * One unicast measurement: a publisher (or a peer's in-process generator) at a fixed rate, or as
 * fast as the server answers (rate 0), for a duration; receipts, latencies and CPU around it.
 */
import { procSample } from '../lib/proc.js';
import { latencySummary, sleep } from '../lib/util.js';
import type { PublishMode, PublishResult } from '../loadgen/messages.js';
import type { LoadGen } from '../loadgen/pool.js';
import { API_KEY } from '../peers/devices.js';
import type { Peer } from '../peers/targets.js';
import type { Ctx } from './context.js';

/** How a run publishes: an external publisher of `mode`, or the peer's in-process generator. */
export interface PublisherSpec {
  /** Short name: single | pipelined | batch | nats | mqtt | in-process. */
  name: string;
  label: string;
  mode: PublishMode | 'in-process';
  batch: number;
  connections: number;
  /** Closed loop: requests (or publishes) in flight per connection. */
  window: number;
}

export interface LevelResult {
  deliveredPerS: number;
  sent: number;
  accepted: number;
  received: number;
  dups: number;
  lat: ReturnType<typeof latencySummary>;
  serverCpu: number;
  loadgenCpu: number;
  /** Pushwire on Redis: Redis commands and read events per accepted message, Redis CPU (cores). */
  store?: { commandsPerMsg: number; readsPerMsg: number; cpu: number };
  publish?: PublishResult;
}

/** One run at `rate` (0 = maximum) for `durationMs`; waits for stragglers, then collects. */
export async function level(
  ctx: Ctx,
  lg: LoadGen,
  peer: Peer,
  pub: PublisherSpec,
  rate: number,
  durationMs: number,
): Promise<LevelResult> {
  await lg.reset();
  await lg.latencies();
  const st0 = await peer.storeStats?.();
  const stCpu0 = peer.storeCpuMs?.() ?? 0;
  const cpu0 = procSample(peer.pid())!;
  const lg0 = lg.cpuMs();
  const start = performance.now();
  const gen = generate(lg, peer, ctx.o.unicastN, pub, rate, durationMs, ctx.o.payloadBytes);
  const warm = Math.min(1000, durationMs * 0.25);
  await sleep(warm);
  const a = await lg.snapshot();
  const aAt = performance.now();
  await sleep(Math.max(0, start + durationMs - performance.now()));
  const b = await lg.snapshot();
  const bAt = performance.now();
  const cpu1 = procSample(peer.pid())!;
  const lg1 = lg.cpuMs();
  const g = await gen;
  // Stragglers: wait (bounded) until everything accepted has arrived.
  await lg.waitFor(`${peer.name} drain`, (t) => t.received >= g.accepted, 10_000);
  const t = await lg.snapshot();
  const st1 = await peer.storeStats?.();
  const stCpu1 = peer.storeCpuMs?.() ?? 0;
  const lat = latencySummary(await lg.latencies());
  const per = (x: number) => x / Math.max(1, g.accepted);
  return {
    deliveredPerS: (b.received - a.received) / ((bAt - aAt) / 1000),
    sent: g.sent,
    accepted: g.accepted,
    received: t.received,
    dups: t.dups,
    lat,
    serverCpu: (cpu1.cpuMs - cpu0.cpuMs) / (cpu1.at - cpu0.at),
    loadgenCpu: (lg1 - lg0) / (cpu1.at - cpu0.at),
    ...(st0 &&
      st1 && {
        store: {
          commandsPerMsg: per(st1.commands - st0.commands),
          readsPerMsg: per(st1.reads - st0.reads),
          cpu: (stCpu1 - stCpu0) / (cpu1.at - cpu0.at),
        },
      }),
    ...(g.publish && { publish: g.publish }),
  };
}

async function generate(
  lg: LoadGen,
  peer: Peer,
  n: number,
  pub: PublisherSpec,
  rate: number,
  durationMs: number,
  payloadBytes: number,
): Promise<{ sent: number; accepted: number; publish?: PublishResult }> {
  if (pub.mode === 'in-process') {
    if (!peer.generate) throw new Error(`${peer.name} has no in-process generator`);
    const sent = await peer.generate(rate, durationMs, payloadBytes);
    return { sent, accepted: sent };
  }
  const ids = peer.clients(n).map((c) => c.id);
  const targets =
    pub.mode === 'mqtt' ? ids.map((id) => `d/${id}`) : pub.mode === 'nats' ? ids.map((id) => `d.${id}`) : ids;
  const publish = await lg.publish({
    mode: pub.mode,
    host: peer.host,
    port: peer.port,
    apiKey: API_KEY,
    targets,
    rate,
    durationMs,
    payloadBytes,
    connections: pub.connections,
    window: pub.window,
    batch: pub.batch,
    keepAccepted: false,
  });
  return { sent: publish.sent, accepted: publish.accepted, publish };
}
