/**
 * Scenario 4, reconnect storm: N clients connected (reconnecting with the SDK's full-jitter
 * backoff, 500 ms initial, 30 s cap, and honouring RATE_LIMITED retryAfter); the server is killed
 * with SIGKILL and started again on the same port and data. Time from the restart until every
 * client has a session again, peak RSS and CPU of the new process meanwhile.
 *
 * Pushwire also publishes to random devices while it is killed: every message answered 202 before
 * the kill must reach its device after the restart (lost must be 0). Clients present the cursors
 * they hold, as the SDK does.
 */

import { ProcWatch } from '../lib/proc.js';
import type { ScenarioResult } from '../lib/report.js';
import { sleep, wallMs } from '../lib/util.js';
import type { PublishResult } from '../loadgen/messages.js';
import { LoadGen } from '../loadgen/pool.js';
import { API_KEY } from '../peers/devices.js';
import { CONNECTION_PEERS, PEER_LABEL } from '../peers/targets.js';
import { type Ctx, connectAll, errorSummary, peerFor, settle } from './context.js';

export async function stormScenario(ctx: Ctx): Promise<ScenarioResult> {
  const { o } = ctx;
  const started = performance.now();
  const startedAt = new Date().toISOString();
  const peers = o.peers.filter((p) => CONNECTION_PEERS.includes(p));
  const n = o.stormN;
  const rows: ScenarioResult['rows'] = [];
  const failures: string[] = [];
  const lg = await LoadGen.start(n);
  try {
    for (const name of peers) {
      ctx.log(`storm: ${name}, N=${n}`);
      const peer = await peerFor(ctx, name, n);
      try {
        const c = await connectAll(ctx, lg, peer, n, {
          reconnect: true,
          trackSeqs: true,
          label: `${name} N=${n}`,
        });
        if (!c.ok) {
          failures.push(
            `${name}: only ${c.totals.ready}/${n} ready before the kill (errors: ${errorSummary(c.totals)})`,
          );
          continue;
        }
        await settle(ctx);
        await lg.reset();
        const before = await lg.snapshot();
        let pub: Promise<PublishResult> | undefined;
        if (name === 'pushwire') {
          pub = lg.publish({
            mode: 'http',
            host: peer.host,
            port: peer.port,
            apiKey: API_KEY,
            targets: peer.clients(n).map((d) => d.id),
            rate: o.stormRate,
            durationMs: 60_000,
            payloadBytes: o.payloadBytes,
            connections: 4,
            window: 16,
            batch: 1,
            keepAccepted: true,
          });
          await sleep(o.smoke ? 700 : 1500);
        }
        // Real clients are not queued behind each other: after the kill, every reconnect may be in flight.
        await lg.tune(o.stormConcurrency > 0 ? o.stormConcurrency : n);
        await lg.epoch();
        const killAt = wallMs();
        await peer.kill9();
        const published = pub ? await pub : undefined;
        const restart = await peer.restart();
        const watch = new ProcWatch(peer.pid(), 100).start();
        const w = await lg.waitFor(`${name} storm`, (t) => t.epochReady >= n, o.stormTimeoutMs);
        const resumedAt = w.totals.epochLastReadyAt;
        let lost: number | null = null;
        let deliveredMs: number | null = null;
        if (published) {
          const d = await lg.waitFor(`${name} redelivery`, (t) => t.received >= published.accepted, 20_000);
          deliveredMs = d.ok && d.totals.lastRecvAt ? d.totals.lastRecvAt - restart.spawnedAt : null;
          lost = countLost(published.acceptedEntries, await lg.seqs());
        }
        watch.stop();
        const t = await lg.snapshot();
        const resumedMs = w.ok ? resumedAt - restart.spawnedAt : null;
        if (!w.ok)
          failures.push(
            `${name}: ${t.epochReady}/${n} resumed after ${o.stormTimeoutMs} ms (errors: ${errorSummary(t)})`,
          );
        if (lost !== null && lost > 0) failures.push(`${name}: ${lost} accepted messages lost`);
        if (published && published.accepted === 0)
          failures.push(`${name}: no publish was accepted before the kill`);
        const cpuS = watch.first && watch.last ? (watch.last.cpuMs - watch.first.cpuMs) / 1000 : null;
        rows.push({
          peer: PEER_LABEL[name],
          n,
          startupMs: restart.listeningAt - restart.spawnedAt,
          resumedMs,
          sinceKillMs: w.ok ? resumedAt - killAt : null,
          resumed: t.epochReady,
          peakRssMiB: watch.peakRssKb / 1024,
          peakCpu: watch.peakCpu,
          cpuS,
          rateLimited: t.rateLimited - before.rateLimited,
          accepted: published?.accepted ?? null,
          unanswered: published?.unanswered ?? null,
          lost,
          dups: published ? t.dups : null,
          redeliveredMs: deliveredMs,
        });
      } finally {
        await lg.closeAll();
        await peer.stop();
      }
    }
  } finally {
    await lg.stop();
  }
  const pw = rows.find((r) => r.peer === PEER_LABEL.pushwire);
  return {
    scenario: 'storm',
    title: `Reconnect storm: N = ${n.toLocaleString('en-US')} clients, kill -9, restart`,
    ok: failures.length === 0,
    failures,
    notes: [
      'Resumed = time from spawning the new server process until the last client had a session again (Pushwire: welcome; Socket.IO: "40"; MQTT: SUBACK; ws: 101).',
      `Clients reconnect with full-jitter exponential backoff (500 ms initial, 30 s cap, like the Pushwire SDK) and wait retryAfter on RATE_LIMITED; ${o.stormConcurrency > 0 ? `at most ${o.stormConcurrency}` : 'no limit on'} reconnect handshakes in flight (the initial connect keeps 256 in flight).`,
      `Pushwire: a publisher sends ${o.stormRate} msg/s to random devices and the server is killed mid-stream; "accepted" = 202s received before the kill, "lost" = accepted messages never delivered after the restart, "unanswered" = requests cut by the kill (unknown outcome, not counted as lost).`,
      'Peak CPU over 500 ms windows, in cores; peak RSS of the new process.',
    ],
    columns: [
      { key: 'peer', label: 'server' },
      { key: 'n', label: 'N' },
      { key: 'resumedMs', label: 'all resumed after restart', unit: 'ms' },
      { key: 'sinceKillMs', label: 'after kill', unit: 'ms' },
      { key: 'startupMs', label: 'process start → listening', unit: 'ms' },
      { key: 'peakRssMiB', label: 'peak RSS', unit: 'MiB' },
      { key: 'peakCpu', label: 'peak CPU', unit: 'cores' },
      { key: 'cpuS', label: 'CPU until resumed', unit: 's' },
      { key: 'rateLimited', label: 'RATE_LIMITED' },
      { key: 'accepted', label: 'accepted' },
      { key: 'lost', label: 'lost' },
      { key: 'dups', label: 'dups' },
      { key: 'unanswered', label: 'cut by kill' },
    ],
    rows,
    targets: [
      pw === undefined || pw.resumedMs === null
        ? {
            target: `${n} devices resumed within 10 s of the restart, lost = 0`,
            measured: 'not measured',
            met: null,
          }
        : {
            target: `${n} devices resumed within 10 s of the restart, lost = 0`,
            measured: `${(Number(pw.resumedMs) / 1000).toFixed(2)} s, lost ${pw.lost}`,
            met: Number(pw.resumedMs) <= 10_000 && pw.lost === 0,
          },
    ],
    chart: {
      title: 'Reconnect storm: time until every client resumed',
      unit: 'ms after the restart',
      better: 'lower',
      groups: [
        {
          label: '',
          bars: rows.map((r) => ({
            label: String(r.peer),
            value: r.resumedMs === null ? Number.NaN : Number(r.resumedMs),
            accent: r.peer === PEER_LABEL.pushwire,
          })),
        },
      ],
    },
    options: {
      stormN: n,
      peers,
      stormRate: o.stormRate,
      stormTimeoutMs: o.stormTimeoutMs,
      pushwire: o.pushwire,
    },
    startedAt,
    elapsedMs: performance.now() - started,
  };
}

/** Accepted [stream, seq] entries that never arrived on their device. */
function countLost(accepted: [string, number][], seqs: Map<string, number[]>): number {
  const got = new Map<string, Set<number>>();
  for (const [id, list] of seqs) got.set(`d:${id}`, new Set(list));
  let lost = 0;
  for (const [stream, seq] of accepted) if (!got.get(stream)?.has(seq)) lost++;
  return lost;
}
