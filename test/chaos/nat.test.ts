import { createClient, type HeartbeatOption, memoryStorage, type PushwireClient } from '@pushwire/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { echo } from '../helpers/barrier.js';
import { Collector } from '../helpers/collector.js';
import { registerDevice, sleep, startServer, until } from '../helpers/server.js';
import { FaultProxy } from './fault-proxy.js';
import { publish, report, tally } from './helpers.js';
import { dailyCost, heartbeatCycleBytes, type Measured } from './idle-cost.js';

type Started = Awaited<ReturnType<typeof startServer>>;

/**
 * Time runs 30× faster than in the field: 1 test second = 30 real seconds. The NAT drops
 * mappings idle for more than 8.5 s (a 255 s NAT, just above Azure's documented 4 minutes), and
 * the adaptive policy's bounds are its defaults scaled the same way: min 30 s → 1, initial 60 s →
 * 2, step 60 s → 2, max 600 s → 20. Heartbeats are whole seconds, so a probe can land exactly on
 * a whole-second T; T = 8.5 keeps every probe clearly on one side of it. Pong deadlines are not
 * scaled (they are about round trips, not NATs): 1 s here, 10 s in the field.
 */
const SCALE = 30;
const T_MS = 8500;
const FIELD_PONG_TIMEOUT = 10;

const policies: Record<'adaptive' | 'short' | 'long', HeartbeatOption> = {
  adaptive: {
    adaptive: {
      min: 1,
      initial: 2,
      step: 2,
      max: 20,
      // One proof per step (Mars and our default use 3: 3× the probing time, same end point).
      successesToProbe: 1,
      // Stop once the gap to the failed interval is ≤ 25% of the proven one: good ≥ T / 1.25 = 0.8 T.
      precision: 0.25,
      pongTimeout: 1,
    },
  },
  short: { interval: 2, pongTimeout: 1 }, // the fixed default, 60 s in the field
  long: { interval: 20, pongTimeout: 1 }, // 600 s in the field: the seed's "ping every 10 minutes"
};

/** Scenario 6: a NAT with idle timeout T, three heartbeat policies side by side. */
describe.sequential('chaos: NAT idle timeout — adaptive vs fixed short vs fixed too long', () => {
  let s: Started;
  const proxies: FaultProxy[] = [];
  beforeAll(async () => {
    s = await startServer();
  });
  afterAll(async () => {
    await Promise.all(proxies.map((p) => p.close()));
    await s.stop();
  });

  it('adaptive settles in [0.8 T, T) in a few probes; fixed short never drops; fixed long drops every cycle', async () => {
    const port = Number(new URL(s.url).port);
    const names = Object.keys(policies) as (keyof typeof policies)[];
    const run: Record<
      string,
      {
        c: PushwireClient;
        col: Collector;
        proxy: FaultProxy;
        storage: ReturnType<typeof memoryStorage>;
        intervals: [number, number][];
        drops: number;
      }
    > = {};
    const start = Date.now();
    for (const name of names) {
      const proxy = await FaultProxy.start({ target: { port } });
      proxy.natIdleMs = T_MS;
      proxies.push(proxy);
      const dev = await registerDevice(s.url);
      const storage = memoryStorage();
      const c = createClient({ url: proxy.url, credentials: dev, storage, heartbeat: policies[name] });
      const col = new Collector();
      c.on('message', col.onMessage);
      const r = { c, col, proxy, storage, intervals: [] as [number, number][], drops: 0, dev };
      c.on('state', ({ from }) => {
        if (from === 'open') r.drops++;
      });
      run[name] = r;
    }
    const devOf = (name: string) => (run[name] as unknown as { dev: { deviceId: string } }).dev.deviceId;
    // Follow the interval each client pings at (the adaptive one changes it as it learns).
    const watcher = setInterval(() => {
      for (const name of names) {
        const r = run[name]!;
        const now = r.c.heartbeatInterval;
        if (r.intervals.at(-1)?.[1] !== now) r.intervals.push([Date.now() - start, now]);
      }
    }, 50);
    const sent: Record<string, string[]> = { adaptive: [], short: [], long: [] };
    const publishAll = async () => {
      for (const name of names) sent[name]!.push((await publish(s.url, { to: { device: devOf(name) } }))!);
    };
    try {
      await until(() => names.every((n) => run[n]!.c.state === 'open'), 5000, 'all open');
      // What one handshake costs on the WebSocket layer, from the proxy's counters at welcome.
      await sleep(200);
      const hs = run.short!.proxy.history[0]!.forwarded;
      const handshake = { up: hs.up, down: hs.down };

      // Mid-run traffic: the long client's mapping is already gone by now.
      await sleep(12_000 - (Date.now() - start));
      await publishAll();
      // The short client's heartbeat cost, measured between two snapshots with no traffic.
      await sleep(1500);
      const shortConn = run.short!.proxy.history.at(-1)!;
      const before = { ...shortConn.forwarded };
      const t0 = Date.now();
      await sleep(10_000);
      const hbUp = shortConn.forwarded.up - before.up;
      const hbDown = shortConn.forwarded.down - before.down;
      const pings = Math.round(hbUp / 7);
      const measuredSpanMs = Date.now() - t0;

      // The adaptive client settles: its learned state says so.
      const learned = async () => (await run.adaptive!.storage.load())?.heartbeat?.default;
      await until(async () => (await learned())?.settledAt !== undefined, 40_000, 'adaptive settled');
      const settledAtMs = Date.now() - start;
      const settled = (await learned())!;
      // One more cycle at the settled interval proves it holds.
      await sleep(settled.interval * 1000 + 1500);
      await publishAll();
      await until(() => names.every((n) => run[n]!.col.has(sent[n]!)), 30_000, 'every message');
      // A marker per device after both messages: a duplicate would reach the app before it.
      const markers: Record<string, string> = {};
      for (const n of names)
        markers[n] = await echo(s.url, { device: devOf(n) }, (id) => run[n]!.col.has([id]), 30_000);
      clearInterval(watcher);

      const T = T_MS / 1000;
      const tallies = Object.fromEntries(names.map((n) => [n, tally(sent[n]!, run[n]!.col)]));
      const adaptive = run.adaptive!;
      const probes = adaptive.intervals.map(([, i]) => i);
      report('NAT idle timeout, per policy', {
        T,
        scale: `1 s here = ${SCALE} s in the field`,
        adaptive: {
          intervals: adaptive.intervals,
          settled,
          settledAfterMs: settledAtMs,
          failedProbes: adaptive.drops,
        },
        reconnects: Object.fromEntries(names.map((n) => [n, run[n]!.proxy.history.length - 1])),
        natDropped: Object.fromEntries(
          names.map((n) => [
            n,
            run[n]!.proxy.history.filter((c) => c.blackholed?.reason === 'nat-idle').length,
          ]),
        ),
        heartbeat: { pings, up: hbUp, down: hbDown, spanMs: measuredSpanMs },
        handshake,
        tallies,
      });

      // Adaptive: below T, at least 0.8 T, after a bounded number of probes and failures.
      expect(settled.interval).toBeLessThan(T);
      expect(settled.interval).toBeGreaterThanOrEqual(0.8 * T);
      expect(settled.good).toBe(settled.interval);
      expect(probes.length).toBeLessThanOrEqual(6); // 2 → 4 → 6 → 8 → 10 ✗ → 8
      expect(adaptive.drops).toBeLessThanOrEqual(2);
      expect(adaptive.drops).toBeGreaterThanOrEqual(1); // it did find the ceiling
      // Fixed short: never lost its mapping. Fixed long: lost it every cycle.
      expect(run.short!.drops).toBe(0);
      expect(run.long!.drops).toBeGreaterThanOrEqual(2);
      for (const n of names) expect(run[n]!.proxy.history.length - 1).toBe(run[n]!.drops); // one socket per session
      // The heartbeat is as small as the transport allows: 7 bytes up (masked 1-byte frame), 3 down.
      expect(pings).toBeGreaterThanOrEqual(4);
      expect(hbUp).toBe(pings * 7);
      expect(hbDown).toBe(pings * 3);
      for (const n of names) {
        expect(tallies[n]).toEqual({ sent: 2, received: 2, duplicated: 0, lost: 0 });
        expect(run[n]!.col.messages.map((m) => m.id)).toEqual([...sent[n]!, markers[n]]);
      }

      // The same three policies at field scale, per idle device per day.
      const m: Measured = { ping: 7, pong: 3, handshakeUp: handshake.up, handshakeDown: handshake.down };
      const fieldT = T * SCALE;
      const table = {
        [`adaptive (settles at ${settled.interval * SCALE} s, re-probes twice a day)`]: dailyCost(m, {
          interval: settled.interval * SCALE,
          natTimeout: fieldT,
          pongTimeout: FIELD_PONG_TIMEOUT,
          extraLossesPerDay: 2,
        }),
        [`fixed ${2 * SCALE} s`]: dailyCost(m, {
          interval: 2 * SCALE,
          natTimeout: fieldT,
          pongTimeout: FIELD_PONG_TIMEOUT,
        }),
        [`fixed ${20 * SCALE} s`]: dailyCost(m, {
          interval: 20 * SCALE,
          natTimeout: fieldT,
          pongTimeout: FIELD_PONG_TIMEOUT,
        }),
      };
      report(`per idle device per day behind a ${fieldT} s NAT (field scale)`, {
        heartbeatCycleBytes: heartbeatCycleBytes(m),
        ...table,
      });
      console.table(table);
    } finally {
      clearInterval(watcher);
      await Promise.all(names.map((n) => run[n]?.c.close()));
    }
  }, 90_000);
});
