/**
 * Scenario 5, idle cost: bytes on the wire per idle client per hour, by keep-alive policy.
 *
 * The keep-alive exchange of each protocol is measured on real sockets with the interval scaled
 * down to 1 s (socket byte counters over a few seconds, divided by the exchanges counted), then
 * multiplied by the number of exchanges per hour of each policy's real interval. "On the wire"
 * adds TCP/IP headers: 52 bytes per segment (IPv4 20 + TCP 20 + timestamps option 12), three
 * segments per exchange (request, reply, delayed ACK of the reply); TLS would add ~22 bytes per
 * record on top of that for every protocol alike.
 */

import type { ScenarioResult } from '../lib/report.js';
import { sleep } from '../lib/util.js';
import { LoadGen } from '../loadgen/pool.js';
import { type Peer, type PeerName, startPeer } from '../peers/targets.js';
import { type Ctx, connectAll, errorSummary } from './context.js';

/** TCP/IP bytes per keep-alive exchange: three 52-byte headers. */
export const TCP_IP_PER_EXCHANGE = 3 * 52;

/** Defaults of the Pushwire SDK's adaptive policy (packages/client/src/heartbeat.ts). */
const ADAPTIVE = { initial: 60, step: 60, successesToProbe: 3, max: 600 };

/** Pings in the first hour of the adaptive policy on a network that tolerates `max`. */
export function adaptiveFirstHour(a = ADAPTIVE): number {
  let t = 0;
  let interval = a.initial;
  let ok = 0;
  let count = 0;
  for (let guard = 0; guard < 10_000 && t + interval <= 3600; guard++) {
    t += interval;
    count++;
    if (++ok >= a.successesToProbe && interval < a.max) {
      interval = Math.min(a.max, interval + a.step);
      ok = 0;
    }
  }
  return count;
}

type Measured = { perExchange: number; exchanges: number; clients: number };

interface Policy {
  label: string;
  protocol: 'pushwire' | 'socketio' | 'mqtt' | 'ws';
  interval: string;
  perHour: number;
  note?: string;
}

const POLICIES: Policy[] = [
  { label: 'Pushwire, fixed 60 s (SDK fixed default)', protocol: 'pushwire', interval: '60 s', perHour: 60 },
  {
    label: 'Pushwire, adaptive, first hour on a new network',
    protocol: 'pushwire',
    interval: '60 s → 360 s',
    perHour: adaptiveFirstHour(),
  },
  {
    label: 'Pushwire, adaptive, settled (default max 600 s)',
    protocol: 'pushwire',
    interval: '600 s',
    perHour: 6,
  },
  { label: 'Pushwire, hb 1800 s (server maximum)', protocol: 'pushwire', interval: '1800 s', perHour: 2 },
  { label: 'Socket.IO 4 default (pingInterval 25 s)', protocol: 'socketio', interval: '25 s', perHour: 144 },
  {
    label: 'MQTT / Mosquitto, mqtt.js default keepalive 60 s',
    protocol: 'mqtt',
    interval: '60 s',
    perHour: 60,
  },
  {
    label: 'ws default (no keep-alive)',
    protocol: 'ws',
    interval: 'none',
    perHour: 0,
    note: 'a NAT or proxy silently drops the idle connection',
  },
  { label: 'ws + common 30 s ping recipe', protocol: 'ws', interval: '30 s', perHour: 120 },
];

const PEER_OF: Record<Policy['protocol'], PeerName> = {
  pushwire: 'pushwire',
  socketio: 'socketio',
  mqtt: 'mosquitto',
  ws: 'ws',
};

export async function idleCostScenario(ctx: Ctx): Promise<ScenarioResult> {
  const { o } = ctx;
  const started = performance.now();
  const startedAt = new Date().toISOString();
  const k = o.idleCostClients;
  const failures: string[] = [];
  const measured = new Map<Policy['protocol'], Measured>();
  const lg = await LoadGen.start(k);
  try {
    for (const proto of ['pushwire', 'socketio', 'mqtt', 'ws'] as const) {
      const name = PEER_OF[proto];
      if (!o.peers.includes(name)) continue;
      ctx.log(`idle-cost: ${name}, ${k} clients, keep-alive scaled to 1 s`);
      const pool = name === 'pushwire' ? await ctx.pool(k) : undefined;
      const peer: Peer = await startPeer(name, { ...ctx.peerOptions(pool), pingMs: 1000 });
      try {
        const c = await connectAll(ctx, lg, peer, k, { hb: 1, label: `${name} idle-cost` });
        if (!c.ok) {
          failures.push(`${name}: only ${c.totals.ready}/${k} ready (errors: ${errorSummary(c.totals)})`);
          continue;
        }
        await sleep(o.smoke ? 800 : 1500);
        const a = await lg.snapshot();
        await sleep(o.idleCostMs);
        const b = await lg.snapshot();
        const exchanges = b.hbIn - a.hbIn;
        const bytes = b.bytesIn - a.bytesIn + (b.bytesOut - a.bytesOut);
        if (exchanges === 0) failures.push(`${name}: no keep-alive exchange observed`);
        measured.set(proto, {
          perExchange: exchanges ? bytes / exchanges : Number.NaN,
          exchanges,
          clients: k,
        });
      } finally {
        await lg.closeAll();
        await peer.stop();
      }
    }
  } finally {
    await lg.stop();
  }
  const socketIoWire = wirePerHour(POLICIES.find((p) => p.protocol === 'socketio')!, measured);
  const rows: ScenarioResult['rows'] = POLICIES.filter((p) => measured.has(p.protocol)).map((p) => {
    const m = measured.get(p.protocol)!;
    const wire = wirePerHour(p, measured) ?? Number.NaN;
    return {
      policy: p.label,
      interval: p.interval,
      perHour: p.perHour,
      perExchange: m.perExchange,
      framesPerHour: p.perHour * m.perExchange,
      wirePerHour: wire,
      perDay: wire * 24,
      vsSocketIo: socketIoWire ? wire / socketIoWire : null,
      note: p.note ?? '',
    };
  });
  const pwRows = rows.filter((r) => String(r.policy).startsWith('Pushwire'));
  return {
    scenario: 'idle-cost',
    title: 'Idle cost: keep-alive bytes per idle client per hour',
    ok: failures.length === 0,
    failures,
    notes: [
      `Bytes per exchange measured on ${k} real connections per protocol with the keep-alive scaled to 1 s for ${o.idleCostMs / 1000} s (socket byte counters / exchanges counted): WebSocket or MQTT framing, both directions.`,
      `On the wire adds ${TCP_IP_PER_EXCHANGE} bytes of TCP/IP per exchange (3 segments × 52 bytes); TLS adds ~22 bytes per record for every protocol alike.`,
      `Adaptive first hour: ${adaptiveFirstHour()} pings (start 60 s, +60 s after 3 proven pings, up to 600 s).`,
    ],
    columns: [
      { key: 'policy', label: 'keep-alive policy' },
      { key: 'interval', label: 'interval' },
      { key: 'perHour', label: 'exchanges / h' },
      { key: 'perExchange', label: 'frame bytes / exchange' },
      { key: 'framesPerHour', label: 'frame bytes / h' },
      { key: 'wirePerHour', label: 'on the wire / h', unit: 'B' },
      { key: 'perDay', label: 'on the wire / day', unit: 'B' },
      { key: 'vsSocketIo', label: '× Socket.IO' },
      { key: 'note', label: 'note' },
    ],
    rows,
    targets: pwRows.map((r) => ({
      target: `idle wire bytes ≤ 1/10 of Socket.IO default — ${r.policy}`,
      measured: `${Math.round(Number(r.wirePerHour))} vs ${Math.round(socketIoWire ?? Number.NaN)} B/h (${Number(r.vsSocketIo).toFixed(3)}×)`,
      met: r.vsSocketIo === null ? null : Number(r.vsSocketIo) <= 0.1,
    })),
    chart: {
      title: 'Idle cost: bytes on the wire per idle client per hour',
      unit: 'bytes per hour (TCP/IP included)',
      better: 'lower',
      groups: [
        {
          label: '',
          bars: rows.map((r) => ({
            label: String(r.policy).replace(/ \(.*\)$/, ''),
            value: Number(r.wirePerHour),
            accent: String(r.policy).startsWith('Pushwire'),
          })),
        },
      ],
    },
    options: { clients: k, measureMs: o.idleCostMs, measured: Object.fromEntries(measured) },
    startedAt,
    elapsedMs: performance.now() - started,
  };
}

function wirePerHour(p: Policy, measured: Map<Policy['protocol'], Measured>): number | null {
  const m = measured.get(p.protocol);
  if (!m) return null;
  return p.perHour * (m.perExchange + TCP_IP_PER_EXCHANGE);
}
