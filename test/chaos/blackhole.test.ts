import { createClient, memoryStorage, type PushwireClient } from '@pushwire/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Collector } from '../helpers/collector.js';
import { registerDevice, sleep, startServer, until } from '../helpers/server.js';
import { FaultProxy } from './fault-proxy.js';
import { publish, report, tally } from './helpers.js';

type Started = Awaited<ReturnType<typeof startServer>>;

/**
 * Scenario 1: an idle connection goes silent (a NAT drops its mapping, Wi-Fi vanishes: no FIN,
 * no RST). The client must notice within interval + pong deadline, reconnect, and get what was
 * published meanwhile.
 */
describe.sequential('chaos: silent black-hole of an idle connection', () => {
  let s: Started;
  let proxy: FaultProxy;
  beforeAll(async () => {
    s = await startServer();
    proxy = await FaultProxy.start({ target: { port: Number(new URL(s.url).port) } });
  });
  afterAll(async () => {
    await proxy.close();
    await s.stop();
  });

  const policies = [
    { interval: 2, pongTimeout: 1 },
    { interval: 4, pongTimeout: 2 },
  ];

  it('detects within interval + pong deadline, reconnects, and gets what was published meanwhile', async () => {
    const devs = await Promise.all(policies.map(() => registerDevice(s.url)));
    const clients: {
      c: PushwireClient;
      col: Collector;
      lostAt?: number;
      detections: number[];
      errors: string[];
    }[] = [];
    for (const [i, hb] of policies.entries()) {
      const c = createClient({
        url: proxy.url,
        credentials: devs[i]!,
        storage: memoryStorage(),
        heartbeat: hb,
      });
      const col = new Collector();
      c.on('message', col.onMessage);
      const entry: (typeof clients)[number] = { c, col, detections: [], errors: [] };
      c.on('error', (err) => entry.errors.push(err.code));
      c.on('state', ({ from }) => {
        if (from === 'open' && entry.lostAt !== undefined) {
          entry.detections.push(Date.now() - entry.lostAt);
          entry.lostAt = undefined;
        }
      });
      clients.push(entry);
    }
    const sent: string[][] = policies.map(() => []);
    try {
      await until(() => clients.every(({ c }) => c.state === 'open'), 5000, 'all open');
      const rounds = 2;
      for (let round = 0; round < rounds; round++) {
        // Idle for a while, at a different phase of the ping cycle each round.
        await sleep(1500 + round * 1300);
        const hit = proxy.blackholeAll();
        const at = Date.now();
        for (const e of clients) e.lostAt = at;
        expect(hit.length).toBe(clients.length);
        // Published while the path is dead: the server writes it into the black hole.
        for (const [i, d] of devs.entries()) {
          const id = await publish(s.url, { to: { device: d.deviceId }, data: { round } });
          expect(id).toBeDefined();
          sent[i]!.push(id!);
        }
        await until(
          () =>
            clients.every((e, i) => e.c.state === 'open' && e.col.has(sent[i]!) && e.lostAt === undefined),
          15_000,
          `round ${round}: detection, reconnect and delivery`,
        );
      }
      for (const [i, e] of clients.entries()) {
        const hb = policies[i]!;
        const bound = (hb.interval + hb.pongTimeout) * 1000;
        const t = tally(sent[i]!, e.col);
        report(`black-hole idle, heartbeat ${hb.interval}s + pong ${hb.pongTimeout}s`, {
          detectionMs: e.detections,
          boundMs: bound,
          ...t,
        });
        expect(e.detections).toHaveLength(rounds);
        // Found by the heartbeat (no pong in time): nothing else ever reached the client.
        expect(e.errors).toEqual(Array(rounds).fill('ERR_TIMEOUT'));
        // Timers on a loaded 2-core box may fire late (never early): 1.5 s of room over the bound.
        for (const d of e.detections) expect(d).toBeLessThanOrEqual(bound + 1500);
        expect(t).toEqual({ sent: rounds, received: rounds, duplicated: 0, lost: 0 });
        expect(e.col.outOfOrder()).toEqual([]);
      }
      // The server never saw a FIN or RST: the dead sockets were replaced by the new sessions.
      expect(proxy.history.filter((c) => c.blackholed).length).toBe(rounds * clients.length);
    } finally {
      await Promise.all(clients.map(({ c }) => c.close()));
    }
  }, 45_000);

  it('wake(9000) from an OS keep-alive handler on a silently dead socket: replaces it and delivers, before the deadline', async () => {
    // The iOS case: the app slept; meanwhile the NAT dropped the mapping. The keep-alive handler
    // gets ~10 s. The default heartbeat (60 s, pong deadline 10 s) must not eat the whole budget.
    const dev = await registerDevice(s.url);
    const c = createClient({ url: proxy.url, credentials: dev, storage: memoryStorage() });
    const col = new Collector();
    c.on('message', col.onMessage);
    try {
      await until(() => c.state === 'open', 5000, 'open');
      await sleep(300);
      proxy.blackholeAll();
      const id = (await publish(s.url, { to: { device: dev.deviceId }, data: { woke: true } }))!;
      const wake = await c.wake(9000);
      const t = tally([id], col);
      report('wake(9000) on a black-holed socket, default heartbeat 60 s / 10 s', { ...wake, ...t });
      expect(wake.durationMs).toBeLessThan(9000);
      expect(wake).toMatchObject({ state: 'open', connected: true, messages: 1 });
      expect(t).toEqual({ sent: 1, received: 1, duplicated: 0, lost: 0 });
    } finally {
      await c.close();
    }
  }, 30_000);
});
