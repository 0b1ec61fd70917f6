/**
 * Scenario 3, unicast: N clients connected; messages to random clients. First the maximum
 * (closed loop for Pushwire's HTTP API; as fast as possible for the others), then 25 %, 50 % and
 * 90 % of each server's own maximum, open loop: delivered messages/s and publish→deliver latency
 * p50/p99/p999 (send time stamped in the payload, receipt time at the load generator).
 *
 * Pushwire: POST /v1/messages (or /v1/messages/batch with --batch) from an external publisher
 * process, each message stored (fsync'd group commit) before the 202. Mosquitto: an external QoS 0
 * publisher. ws and Socket.IO have no publish API: generated in-process.
 */

import { procSample } from '../lib/proc.js';
import type { ScenarioResult } from '../lib/report.js';
import { latencySummary, sleep } from '../lib/util.js';
import type { PublishResult } from '../loadgen/messages.js';
import { LoadGen } from '../loadgen/pool.js';
import { API_KEY } from '../peers/devices.js';
import { PEER_LABEL, type Peer, type PeerName } from '../peers/targets.js';
import { type Ctx, connectAll, errorSummary, peerFor, settle } from './context.js';

const LEVELS = [0.25, 0.5, 0.9];

export async function unicastScenario(ctx: Ctx): Promise<ScenarioResult> {
  const { o } = ctx;
  const started = performance.now();
  const startedAt = new Date().toISOString();
  const peers = o.peers.filter((p) => p !== 'mosquitto-dup');
  const n = o.unicastN;
  const rows: ScenarioResult['rows'] = [];
  const failures: string[] = [];
  const notes: string[] = [];
  const lg = await LoadGen.start(n);
  try {
    for (const name of peers) {
      ctx.log(`unicast: ${name}, N=${n}`);
      const peer = await peerFor(ctx, name, n);
      try {
        const c = await connectAll(ctx, lg, peer, n, { label: `${name} N=${n}` });
        if (!c.ok) {
          failures.push(`${name}: only ${c.totals.ready}/${n} ready (errors: ${errorSummary(c.totals)})`);
          continue;
        }
        await settle(ctx);
        let batch = 1;
        if (name === 'pushwire' && o.batch > 1) {
          const probe = await fetch(`http://${peer.host}:${peer.port}/v1/messages/batch`, {
            method: 'POST',
            headers: { authorization: `Bearer ${API_KEY}`, 'content-type': 'application/json' },
            body: '{"messages":[]}',
          });
          await probe.text();
          if (probe.status === 404)
            notes.push(
              `--batch ${o.batch}: the server has no POST /v1/messages/batch; single publishes used.`,
            );
          else batch = o.batch;
        }
        const max = await level(ctx, lg, peer, 0, o.maxMs, batch);
        rows.push(row(name, 'max', max));
        checkLoss(name, 'max', max, failures);
        for (const f of LEVELS) {
          const rate = Math.max(1, Math.round(max.deliveredPerS * f));
          const r = await level(ctx, lg, peer, rate, o.levelMs, batch);
          rows.push(row(name, `${f * 100}% (${rate.toLocaleString('en-US')}/s)`, r));
          checkLoss(name, `${f * 100}%`, r, failures);
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
      'Delivered/s = receipts counted at the load generator per second over the steady part of each run.',
      'Latency = receipt time − send time stamped in the payload (same clock, different processes).',
      "Load-gen CPU near 1.0 means the load generator's core (receivers and publisher together) was the limit, not the server.",
      `Pushwire publisher: ${o.batch > 1 ? `batches of ${o.batch}` : 'one message per request'}, 16 keep-alive connections with pipelining; the max run keeps 64 requests in flight per connection. Every message is stored (fsync'd) before its 202.`,
      'Mosquitto: external QoS 0 publisher (no durability). ws and Socket.IO: generated inside the server process (no durability, no publish API).',
      ...notes,
    ],
    columns: [
      { key: 'peer', label: 'server' },
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
    ],
    rows,
    targets: checkTargets(rows),
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
              label: String(r.peer),
              value: Number(r.deliveredPerS),
              accent: r.peer === PEER_LABEL.pushwire,
            })),
        },
      ],
    },
    options: {
      unicastN: n,
      peers,
      maxMs: o.maxMs,
      levelMs: o.levelMs,
      batch: o.batch,
      payloadBytes: o.payloadBytes,
    },
    startedAt,
    elapsedMs: performance.now() - started,
  };
}

interface LevelResult {
  deliveredPerS: number;
  sent: number;
  accepted: number;
  received: number;
  dups: number;
  lat: ReturnType<typeof latencySummary>;
  serverCpu: number;
  loadgenCpu: number;
  publish?: PublishResult;
}

/** One run at `rate` (0 = maximum) for `durationMs`; waits for stragglers, then collects. */
async function level(
  ctx: Ctx,
  lg: LoadGen,
  peer: Peer,
  rate: number,
  durationMs: number,
  batch: number,
): Promise<LevelResult> {
  await lg.reset();
  await lg.latencies();
  const cpu0 = procSample(peer.pid())!;
  const lg0 = lg.cpuMs();
  const start = performance.now();
  const gen = generate(lg, peer, ctx.o.unicastN, rate, durationMs, batch, ctx.o.payloadBytes);
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
  const lat = latencySummary(await lg.latencies());
  return {
    deliveredPerS: (b.received - a.received) / ((bAt - aAt) / 1000),
    sent: g.sent,
    accepted: g.accepted,
    received: t.received,
    dups: t.dups,
    lat,
    serverCpu: (cpu1.cpuMs - cpu0.cpuMs) / (cpu1.at - cpu0.at),
    loadgenCpu: (lg1 - lg0) / (cpu1.at - cpu0.at),
    ...(g.publish && { publish: g.publish }),
  };
}

async function generate(
  lg: LoadGen,
  peer: Peer,
  n: number,
  rate: number,
  durationMs: number,
  batch: number,
  payloadBytes: number,
): Promise<{ sent: number; accepted: number; publish?: PublishResult }> {
  if (peer.generate) {
    const sent = await peer.generate(rate, durationMs, payloadBytes);
    return { sent, accepted: sent };
  }
  const ids = peer.clients(n).map((c) => c.id);
  const publish = await lg.publish({
    mode: peer.proto === 'mqtt' ? 'mqtt' : 'http',
    host: peer.host,
    port: peer.port,
    apiKey: API_KEY,
    targets: peer.proto === 'mqtt' ? ids.map((id) => `d/${id}`) : ids,
    rate,
    durationMs,
    payloadBytes,
    connections: 16,
    window: Math.max(2, Math.ceil(64 / batch)),
    batch,
    keepAccepted: false,
  });
  return { sent: publish.sent, accepted: publish.accepted, publish };
}

function row(name: PeerName, levelLabel: string, r: LevelResult): ScenarioResult['rows'][number] {
  return {
    peer: PEER_LABEL[name],
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
  };
}

function checkLoss(name: PeerName, label: string, r: LevelResult, failures: string[]): void {
  if (r.received < r.accepted)
    failures.push(`${name} ${label}: ${r.accepted - r.received} accepted messages not delivered`);
  if (r.accepted === 0) failures.push(`${name} ${label}: nothing was accepted`);
}

function checkTargets(rows: ScenarioResult['rows']): ScenarioResult['targets'] {
  const max = (p: PeerName) =>
    rows.find((r) => r.peer === PEER_LABEL[p] && r.level === 'max')?.deliveredPerS as number | undefined;
  const pw = max('pushwire');
  const mq = max('mosquitto');
  const half = rows.find((r) => r.peer === PEER_LABEL.pushwire && String(r.level).startsWith('50%'));
  return [
    pw === undefined || mq === undefined
      ? { target: 'durable unicast ≥ 0.8 × Mosquitto QoS 0', measured: 'not measured', met: null }
      : {
          target: 'durable unicast ≥ 0.8 × Mosquitto QoS 0',
          measured: `${Math.round(pw).toLocaleString('en-US')} vs ${Math.round(mq).toLocaleString('en-US')} msg/s (${(pw / mq).toFixed(2)}×)`,
          met: pw >= 0.8 * mq,
        },
    half === undefined
      ? { target: 'p99 publish→deliver ≤ 20 ms at 50% of max', measured: 'not measured', met: null }
      : {
          target: 'p99 publish→deliver ≤ 20 ms at 50% of max',
          measured: `p99 ${Number(half.p99).toFixed(1)} ms at ${half.level}`,
          met: Number(half.p99) <= 20,
        },
  ];
}
