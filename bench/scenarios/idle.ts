/**
 * Scenario 1, idle connections: for each N and each peer, a fresh server, a short warm-up, then N
 * clients connected and idle. Server RSS per connection = (VmRSS after − VmRSS before) / N;
 * connect rate = N / time until the last client was ready.
 */

import { procSample } from '../lib/proc.js';
import type { ScenarioResult } from '../lib/report.js';
import { sleep } from '../lib/util.js';
import { LoadGen } from '../loadgen/pool.js';
import { CONNECTION_PEERS, PEER_LABEL, type PeerName } from '../peers/targets.js';
import { type Ctx, connectAll, errorSummary, peerFor, settle } from './context.js';

export async function idleScenario(ctx: Ctx): Promise<ScenarioResult> {
  const { o } = ctx;
  const started = performance.now();
  const startedAt = new Date().toISOString();
  const peers = o.peers.filter((p) => CONNECTION_PEERS.includes(p));
  const rows: ScenarioResult['rows'] = [];
  const failures: string[] = [];
  const maxN = Math.max(...o.n);
  const lg = await LoadGen.start(maxN);
  try {
    for (const n of o.n) {
      for (const name of peers) {
        ctx.log(`idle: ${name}, N=${n}`);
        const peer = await peerFor(ctx, name, n);
        try {
          // Warm-up: a few connections opened and closed, so lazy start-up costs are not counted.
          const warm = Math.min(200, Math.max(10, Math.floor(n / 20)));
          await connectAll(ctx, lg, peer, warm, { label: `${name} warm-up` });
          await lg.closeAll();
          await sleep(Math.min(2000, o.settleMs));
          const before = procSample(peer.pid())!;
          // The "after GC" figure: a full GC (Node peers) before both of its samples.
          await peer.gc?.();
          const beforeGc = procSample(peer.pid())!;
          const c = await connectAll(ctx, lg, peer, n, { label: `${name} N=${n}` });
          const connected = procSample(peer.pid())!;
          await settle(ctx);
          const after = procSample(peer.pid())!;
          await peer.gc?.();
          const afterGc = procSample(peer.pid())!;
          const t = await lg.snapshot();
          if (!c.ok) failures.push(`${name} N=${n}: only ${t.ready}/${n} ready (errors: ${errorSummary(t)})`);
          rows.push({
            peer: PEER_LABEL[name],
            n,
            ready: t.ready,
            rssBeforeMiB: before.rssKb / 1024,
            rssAfterMiB: after.rssKb / 1024,
            perConnKiB: (after.rssKb - before.rssKb) / Math.max(1, t.ready),
            perConnGcKiB: (afterGc.rssKb - beforeGc.rssKb) / Math.max(1, t.ready),
            rssAfterGcMiB: afterGc.rssKb / 1024,
            connectS: c.elapsedMs / 1000,
            connectRate: t.ready / (c.elapsedMs / 1000),
            cpuMsPer1k: ((connected.cpuMs - before.cpuMs) / Math.max(1, t.ready)) * 1000,
            rateLimited: t.rateLimited,
          });
        } finally {
          await lg.closeAll();
          await peer.stop();
        }
      }
    }
  } finally {
    await lg.stop();
  }
  const targets = checkTargets(rows, Math.max(...o.n));
  return {
    scenario: 'idle',
    title: 'Idle connections: server memory per connection and connect rate',
    ok: failures.length === 0,
    failures,
    notes: [
      'RSS per connection = (server VmRSS with N idle clients, after settling − VmRSS after a warm-up) / N; KiB = 1024 bytes.',
      'RSS / conn after GC = the same, each VmRSS sampled right after a full GC (the Node servers run with --expose-gc and call gc() four times on SIGUSR2); Mosquitto has no GC: its two figures are taken the same way without one.',
      `Pushwire clients send hello with a ${o.hb} s heartbeat and follow the "bench" topic (device stream + topic stream per session); MQTT clients subscribe to two topics; Socket.IO and ws clients only connect.`,
      "Connect rate includes Pushwire's admission control (token bucket; refused clients retry after `retryAfter`).",
    ],
    columns: [
      { key: 'peer', label: 'server' },
      { key: 'n', label: 'N' },
      { key: 'ready', label: 'ready' },
      { key: 'perConnKiB', label: 'RSS / conn', unit: 'KiB' },
      { key: 'perConnGcKiB', label: 'RSS / conn after GC', unit: 'KiB' },
      { key: 'rssBeforeMiB', label: 'RSS before', unit: 'MiB' },
      { key: 'rssAfterMiB', label: 'RSS after', unit: 'MiB' },
      { key: 'rssAfterGcMiB', label: 'RSS after GC', unit: 'MiB' },
      { key: 'connectS', label: 'connect time', unit: 's' },
      { key: 'connectRate', label: 'connect rate', unit: 'conn/s' },
      { key: 'cpuMsPer1k', label: 'server CPU / 1k connects', unit: 'ms' },
      { key: 'rateLimited', label: 'RATE_LIMITED' },
    ],
    rows,
    targets,
    chart: {
      title: 'Server RSS per idle connection',
      unit: 'KiB per connection',
      better: 'lower',
      groups: o.n.map((n) => ({
        label: `N = ${n.toLocaleString('en-US')}`,
        bars: rows
          .filter((r) => r.n === n)
          .map((r) => ({
            label: String(r.peer),
            value: Number(r.perConnKiB),
            accent: r.peer === PEER_LABEL.pushwire,
          })),
      })),
    },
    options: { n: o.n, peers, hb: o.hb, settleMs: o.settleMs, pushwire: o.pushwire },
    startedAt,
    elapsedMs: performance.now() - started,
  };
}

function checkTargets(rows: ScenarioResult['rows'], n: number): ScenarioResult['targets'] {
  const at = (p: PeerName) => rows.find((r) => r.peer === PEER_LABEL[p] && r.n === n);
  const pw = at('pushwire')?.perConnGcKiB as number | undefined;
  const ws = at('ws')?.perConnGcKiB as number | undefined;
  const figure = `idle RSS per connection after GC, ${n.toLocaleString('en-US')}`;
  if (pw === undefined || ws === undefined)
    return [{ figure, target: '≤ 0.45× ws', measured: 'Pushwire or ws not measured', met: null }];
  return [
    {
      figure,
      target: '≤ 0.45× ws',
      measured: `${(pw / ws).toFixed(2)}× (${pw.toFixed(2)} KiB vs ws ${ws.toFixed(2)} KiB)`,
      met: pw <= 0.45 * ws,
    },
  ];
}
