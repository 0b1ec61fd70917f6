/**
 * Scenario 1b, a node of several Pushwire processes: past one process's open-file limit (20,000
 * here), a node holds more devices by running more processes, each on its own port (behind a TCP
 * load balancer or `SO_REUSEPORT` in production), each with its own store. K processes, each with
 * N/K idle clients; RSS per connection = Σ (VmRSS after − VmRSS before) / N, and the most sockets
 * one process held; then a broadcast to all N (one publish per process). The processes share the
 * server core, as they would share a node's cores.
 */

import { procSample, quiesce } from '../lib/proc.js';
import type { ScenarioResult } from '../lib/report.js';
import { median, sleep } from '../lib/util.js';
import type { ClientSpec } from '../loadgen/messages.js';
import { LoadGen } from '../loadgen/pool.js';
import { PEER_LABEL, type Peer } from '../peers/targets.js';
import { type Ctx, errorSummary, peerFor, settle } from './context.js';

export async function nodeScenario(ctx: Ctx): Promise<ScenarioResult> {
  const { o } = ctx;
  const started = performance.now();
  const startedAt = new Date().toISOString();
  const k = Math.max(1, o.nodeProcesses);
  const perProcess = Math.ceil(o.nodeN / k);
  const n = perProcess * k;
  const rows: ScenarioResult['rows'] = [];
  const failures: string[] = [];
  const peers: Peer[] = [];
  const lg = await LoadGen.start(n);
  try {
    ctx.log(`node: ${k} Pushwire processes × ${perProcess} clients = ${n}`);
    for (let i = 0; i < k; i++) peers.push(await peerFor(ctx, 'pushwire', perProcess));
    const clients: ClientSpec[] = [];
    for (const peer of peers) {
      for (const c of peer.clients(perProcess)) clients.push({ ...c, port: peer.port });
    }
    const first = peers[0]!;
    const open = (specs: ClientSpec[]) =>
      lg.open({
        proto: 'pushwire',
        host: first.host,
        port: first.port,
        path: first.path,
        clients: specs,
        hb: o.hb,
        topic: first.topic,
        reconnect: { initialMs: 500, maxMs: 30_000 },
        trackSeqs: false,
        concurrency: o.connectConcurrency,
        rate: o.connectRate,
        ackDelayMs: o.ackDelayMs,
        topicAckDelayMs: o.topicAckDelayMs,
      });
    // Warm-up: a few connections per process opened and closed, as in the idle scenario.
    const warmEach = Math.min(200, Math.max(10, Math.floor(perProcess / 20)));
    const warm = peers.flatMap((_, i) => clients.slice(i * perProcess, i * perProcess + warmEach));
    await open(warm);
    await lg.waitFor('node warm-up', (t) => t.ready >= warm.length, 60_000);
    await lg.closeAll();
    await sleep(Math.min(2000, o.settleMs));
    const rss = () => peers.map((p) => procSample(p.pid())!);
    const before = rss();
    const t0 = performance.now();
    await open(clients);
    const w = await lg.waitFor(`node of ${k} × ${perProcess}`, (t) => t.ready >= n, Math.max(60_000, n * 6));
    const elapsedMs = performance.now() - t0;
    const connected = rss();
    await settle(ctx);
    const after = rss();
    const t = await lg.snapshot();
    if (!w.ok) failures.push(`only ${t.ready}/${n} ready (errors: ${errorSummary(t)})`);
    // Broadcast to the whole node: one topic publish to each process at once; time from the first
    // send to the last receipt over all N clients.
    await lg.reset();
    const times: number[] = [];
    let lost = 0;
    for (let r = 1; w.ok && r <= o.rounds; r++) {
      for (const p of peers) await quiesce(p.pid());
      const sent = await Promise.all(peers.map((p) => p.broadcast(r, o.payloadBytes)));
      const t0 = Math.min(...sent);
      const got = await lg.waitFor(
        `node broadcast ${r}`,
        (x) => (x.rounds[r]?.count ?? 0) >= n,
        Math.max(10_000, n / 5),
      );
      const st = got.totals.rounds[r];
      if (!got.ok || !st) lost += n - (st?.count ?? 0);
      else times.push(st.last - t0);
    }
    if (lost > 0) failures.push(`${lost} broadcast receipts missing`);
    const sum = (xs: { rssKb: number }[]) => xs.reduce((a, x) => a + x.rssKb, 0);
    const cpu = (xs: { cpuMs: number }[]) => xs.reduce((a, x) => a + x.cpuMs, 0);
    rows.push({
      peer: `${PEER_LABEL.pushwire}, ${k} processes`,
      n,
      ready: t.ready,
      perProcess,
      perConnKiB: (sum(after) - sum(before)) / Math.max(1, t.ready),
      rssBeforeMiB: sum(before) / 1024,
      rssAfterMiB: sum(after) / 1024,
      connectS: elapsedMs / 1000,
      connectRate: t.ready / (elapsedMs / 1000),
      cpuMsPer1k: ((cpu(connected) - cpu(before)) / Math.max(1, t.ready)) * 1000,
      rateLimited: t.rateLimited,
      broadcastMs: times.length > 0 ? median(times) : null,
      broadcastRounds: times.length,
      lost,
    });
  } finally {
    await lg.closeAll().catch(() => {});
    await lg.stop();
    for (const p of peers) await p.stop();
  }
  const row = rows[0];
  return {
    scenario: 'node',
    title: 'A node of several processes: idle connections past one process’s open-file limit',
    ok: failures.length === 0,
    failures,
    notes: [
      `${k} Pushwire processes (each its own port and SQLite store, all pinned to the server core), ${perProcess} clients each; clients hold a device stream and a topic stream, as in the idle scenario.`,
      'RSS per connection = Σ over the processes of (VmRSS with the clients idle, after settling − VmRSS before) / N.',
      `Broadcast: one ${o.payloadBytes}-byte topic publish to every process at once (each stores it, then fans out to its clients); time from the first send to the last receipt of all N, median of ${o.rounds} rounds.`,
    ],
    columns: [
      { key: 'peer', label: 'server' },
      { key: 'n', label: 'N' },
      { key: 'ready', label: 'ready' },
      { key: 'perProcess', label: 'sockets per process' },
      { key: 'perConnKiB', label: 'RSS / conn', unit: 'KiB' },
      { key: 'rssBeforeMiB', label: 'RSS before, all', unit: 'MiB' },
      { key: 'rssAfterMiB', label: 'RSS after, all', unit: 'MiB' },
      { key: 'connectS', label: 'connect time', unit: 's' },
      { key: 'connectRate', label: 'connect rate', unit: 'conn/s' },
      { key: 'cpuMsPer1k', label: 'server CPU / 1k connects', unit: 'ms' },
      { key: 'rateLimited', label: 'RATE_LIMITED' },
      { key: 'broadcastMs', label: 'broadcast to all, last receipt', unit: 'ms' },
      { key: 'broadcastRounds', label: 'rounds' },
      { key: 'lost', label: 'lost' },
    ],
    rows,
    targets: row
      ? [
          {
            target: `a node holds N = ${n.toLocaleString('en-US')} idle devices`,
            measured: `${Number(row.ready).toLocaleString('en-US')} ready in ${k} processes (${perProcess.toLocaleString('en-US')} sockets each)`,
            met: Number(row.ready) >= n,
          },
        ]
      : [],
    chart: {
      title: `Node of ${k} processes: RSS per idle connection`,
      unit: 'KiB per connection',
      better: 'lower',
      groups: [
        {
          label: `N = ${n.toLocaleString('en-US')}`,
          bars: rows.map((r) => ({ label: String(r.peer), value: Number(r.perConnKiB), accent: true })),
        },
      ],
    },
    options: {
      nodeN: o.nodeN,
      nodeProcesses: k,
      hb: o.hb,
      rounds: o.rounds,
      payloadBytes: o.payloadBytes,
      pushwire: o.pushwire,
    },
    startedAt,
    elapsedMs: performance.now() - started,
  };
}
