/**
 * Scenario 2, broadcast: N clients connected; one ~100-byte message to all of them per round
 * (Pushwire: a durable publish to a topic through the HTTP API; ws and Socket.IO: an HTTP trigger
 * to the in-process broadcast; Mosquitto: one QoS 0 PUBLISH). Time from the send to the last
 * receipt at the load generator, median of the rounds; server CPU time per round.
 */

import { procSample, quiesce } from '../lib/proc.js';
import type { ScenarioResult } from '../lib/report.js';
import { median } from '../lib/util.js';
import { LoadGen } from '../loadgen/pool.js';
import { PEER_LABEL, type PeerName } from '../peers/targets.js';
import { type Ctx, connectAll, errorSummary, peerFor, settle } from './context.js';

export async function broadcastScenario(ctx: Ctx): Promise<ScenarioResult> {
  const { o } = ctx;
  const started = performance.now();
  const startedAt = new Date().toISOString();
  // The HTTP floor (fastify) is a unicast peer; NATS broadcasts a JetStream publish to a subject.
  const base = o.peers.filter((p) => p !== 'fastify' && p !== 'pushwire-redis');
  const peers: PeerName[] =
    base.includes('mosquitto') && !base.includes('mosquitto-dup') ? [...base, 'mosquitto-dup'] : base;
  const rows: ScenarioResult['rows'] = [];
  const failures: string[] = [];
  const lg = await LoadGen.start(Math.max(...o.n));
  try {
    for (const n of o.n) {
      for (const name of peers) {
        ctx.log(`broadcast: ${name}, N=${n}`);
        const peer = await peerFor(ctx, name, n);
        try {
          const c = await connectAll(ctx, lg, peer, n, { label: `${name} N=${n}` });
          if (!c.ok) {
            failures.push(
              `${name} N=${n}: only ${c.totals.ready}/${n} ready (errors: ${errorSummary(c.totals)})`,
            );
            continue;
          }
          await settle(ctx);
          await lg.reset();
          const times: number[] = [];
          const firsts: number[] = [];
          const cpus: number[] = [];
          const lgCpus: number[] = [];
          let lost = 0;
          for (let r = 1; r <= o.rounds; r++) {
            await quiesce(peer.pid());
            const before = procSample(peer.pid())!;
            const lgBefore = lg.cpuMs();
            const t0 = await peer.broadcast(r, o.payloadBytes);
            const w = await lg.waitFor(
              `${name} round ${r}`,
              (t) => (t.rounds[r]?.count ?? 0) >= n,
              Math.max(10_000, n * 2),
            );
            const st = w.totals.rounds[r];
            if (!w.ok || !st) {
              lost += n - (st?.count ?? 0);
              continue;
            }
            // The load generator's one core reads every receipt: when it is busy all the round, the
            // last receipt measures the client side as much as the server.
            lgCpus.push(lg.cpuMs() - lgBefore);
            times.push(st.last - t0);
            firsts.push(st.first - t0);
            // CPU until the server is quiet again: the fan-out plus what follows it (acks).
            await quiesce(peer.pid());
            cpus.push(procSample(peer.pid())!.cpuMs - before.cpuMs);
          }
          const t = await lg.snapshot();
          if (lost > 0) failures.push(`${name} N=${n}: ${lost} receipts missing`);
          rows.push({
            peer: PEER_LABEL[name],
            n,
            rounds: times.length,
            lastMs: median(times),
            minLastMs: Math.min(...times),
            maxLastMs: Math.max(...times),
            firstMs: median(firsts),
            cpuMs: median(cpus),
            lgCpuMs: median(lgCpus),
            lost,
            dropped: t.dropped,
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
  const maxN = Math.max(...o.n);
  return {
    scenario: 'broadcast',
    title: `Broadcast: one ${o.payloadBytes}-byte message to N connected clients`,
    ok: failures.length === 0,
    failures,
    notes: [
      `Time to last receipt = last receipt at the load generator − send time, median of ${o.rounds} rounds (min–max shown); first = median time to the first receipt.`,
      "Server CPU = utime + stime of the server process (from /proc/PID/stat, 10 ms ticks) from the send until the server is idle again (so Pushwire's ack handling counts), median. Each round starts once the server is idle.",
      `Pushwire: POST /v1/messages to a topic (stored durably before the 202, then fanned out); clients ack as the SDK does: device streams in batches every ${o.ackDelayMs} ms (--ack-delay, the SDK's ackDelay), topic streams ${o.topicAckDelayMs > o.ackDelayMs ? `lazily, on their next ping or device ack, alone after ${o.topicAckDelayMs / 2000}–${o.topicAckDelayMs / 1000} s (--topic-ack-delay, the SDK's topicAckDelay): a broadcast's acks are spread over that window, one per device however many messages it covers, and mostly fall outside the rounds` : `with the device acks (--topic-ack-delay ${o.topicAckDelayMs})`}. ws / Socket.IO: HTTP trigger, then the in-process broadcast. Mosquitto: one QoS 0 PUBLISH from an external client. NATS JetStream: one publish with a reply inbox to the broadcast subject, which a file-storage stream captures; clients are core-NATS subscribers of it.`,
    ],
    columns: [
      { key: 'peer', label: 'server' },
      { key: 'n', label: 'N' },
      { key: 'lastMs', label: 'last receipt', unit: 'ms' },
      { key: 'minLastMs', label: 'min', unit: 'ms' },
      { key: 'maxLastMs', label: 'max', unit: 'ms' },
      { key: 'firstMs', label: 'first receipt', unit: 'ms' },
      { key: 'cpuMs', label: 'server CPU / round (incl. acks)', unit: 'ms' },
      { key: 'lgCpuMs', label: 'load-gen CPU / round', unit: 'ms' },
      { key: 'rounds', label: 'rounds' },
      { key: 'lost', label: 'lost' },
    ],
    rows,
    targets: checkTargets(rows, maxN, o.ackDelayMs, o.topicAckDelayMs),
    chart: {
      title: 'Broadcast: time to the last receipt (median)',
      unit: 'ms',
      better: 'lower',
      groups: o.n.map((n) => ({
        label: `N = ${n.toLocaleString('en-US')}`,
        bars: rows
          .filter((r) => r.n === n)
          .map((r) => ({
            label: String(r.peer),
            value: Number(r.lastMs),
            accent: r.peer === PEER_LABEL.pushwire,
          })),
      })),
    },
    options: { n: o.n, peers, rounds: o.rounds, payloadBytes: o.payloadBytes, pushwire: o.pushwire },
    startedAt,
    elapsedMs: performance.now() - started,
  };
}

function checkTargets(
  rows: ScenarioResult['rows'],
  n: number,
  ackDelayMs: number,
  topicAckDelayMs: number,
): ScenarioResult['targets'] {
  const at = (p: PeerName) =>
    rows.find((r) => r.peer === PEER_LABEL[p] && r.n === n)?.lastMs as number | undefined;
  const pw = at('pushwire');
  const ws = at('ws');
  const mq = at('mosquitto');
  const mqd = at('mosquitto-dup');
  const js = at('nats');
  const figure = `broadcast to ${n.toLocaleString('en-US')} with acks flowing (clients ack as the SDK: device acks after ${ackDelayMs} ms, topic acks ${topicAckDelayMs > ackDelayMs ? `on the next ping, at the latest ${topicAckDelayMs / 1000} s` : 'with them'})`;
  const out: ScenarioResult['targets'] = [
    pw === undefined || ws === undefined
      ? { figure, target: '≤ 1.0× ws', measured: 'not measured', met: null }
      : {
          figure,
          target: '≤ 1.0× ws',
          measured: `${(pw / ws).toFixed(2)}× (${pw.toFixed(0)} ms vs ws ${ws.toFixed(0)} ms)`,
          met: pw <= ws,
        },
  ];
  if (pw !== undefined && (mq !== undefined || mqd !== undefined || js !== undefined))
    out.push({
      figure: `broadcast to ${n.toLocaleString('en-US')}: the brokers`,
      target: '(information)',
      measured: `Pushwire ${pw.toFixed(0)} ms; Mosquitto ${mq?.toFixed(0) ?? '–'} ms, with allow_duplicate_messages ${mqd?.toFixed(0) ?? '–'} ms; NATS JetStream ${js?.toFixed(0) ?? '–'} ms`,
      met: null,
    });
  return out;
}
