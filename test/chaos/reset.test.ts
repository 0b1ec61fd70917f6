import { createClient, memoryStorage, type PushwireClient } from '@pushwire/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { echo } from '../helpers/barrier.js';
import { Collector } from '../helpers/collector.js';
import { registerDevice, sleep, startServer, until } from '../helpers/server.js';
import { FaultProxy } from './fault-proxy.js';
import { publish, report, tally } from './helpers.js';

type Started = Awaited<ReturnType<typeof startServer>>;

/** Scenario 2: TCP resets every second while messages stream in at a steady rate. */
describe.sequential('chaos: reset mid-stream under a steady publish rate', () => {
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

  it('50 msg/s to a device and 50 msg/s to a topic, RST every second: nothing lost, nothing twice, in order', async () => {
    const [devA, devB] = await Promise.all([registerDevice(s.url), registerDevice(s.url)]);
    const a = {
      c: createClient({ url: proxy.url, credentials: devA, storage: memoryStorage() }),
      col: new Collector(),
    };
    const b = {
      c: createClient({ url: proxy.url, credentials: devB, storage: memoryStorage() }),
      col: new Collector(),
    };
    const clients: PushwireClient[] = [a.c, b.c];
    a.c.on('message', a.col.onMessage);
    b.c.on('message', b.col.onMessage);
    const errors = new Map<string, number>();
    for (const c of clients) c.on('error', (e) => errors.set(e.code, (errors.get(e.code) ?? 0) + 1));
    try {
      await b.c.subscribe('chaos.reset');
      await until(() => a.c.state === 'open' && b.c.state === 'open', 5000, 'open');

      const seconds = 4;
      const rate = 50;
      const pending: Promise<string | undefined>[][] = [[], []];
      const resets: number[] = [];
      const start = Date.now();
      for (let i = 0; i < seconds * rate; i++) {
        const due = start + (i * 1000) / rate;
        if (due > Date.now()) await sleep(due - Date.now());
        pending[0]!.push(publish(s.url, { to: { device: devA.deviceId }, data: { i } }));
        pending[1]!.push(publish(s.url, { to: { topic: 'chaos.reset' }, data: { i } }));
        if (i > 0 && i % rate === 0) resets.push(proxy.resetAll().length);
      }
      resets.push(proxy.resetAll().length);
      const sentA = (await Promise.all(pending[0]!)).filter((id): id is string => id !== undefined);
      const sentB = (await Promise.all(pending[1]!)).filter((id): id is string => id !== undefined);
      expect(sentA.length).toBe(seconds * rate); // the HTTP side is not behind the proxy: all 202
      expect(sentB.length).toBe(seconds * rate);

      await until(() => a.col.has(sentA) && b.col.has(sentB), 30_000, 'everything after the resets');
      // A marker after everything, on each stream: a duplicate (a replay after a reset) would reach
      // the app before it.
      const markA = await echo(s.url, { device: devA.deviceId }, (id) => a.col.has([id]), 30_000);
      const markB = await echo(s.url, { topic: 'chaos.reset' }, (id) => b.col.has([id]), 30_000);
      const ta = tally(sentA, a.col);
      const tb = tally(sentB, b.col);
      report('reset every 1 s under 2 × 50 msg/s', {
        device: ta,
        topic: tb,
        resetsHit: resets,
        connections: proxy.history.length,
        errors: Object.fromEntries(errors),
      });
      expect(ta).toEqual({ sent: 200, received: 200, duplicated: 0, lost: 0 });
      expect(tb).toEqual({ sent: 200, received: 200, duplicated: 0, lost: 0 });
      expect(a.col.outOfOrder()).toEqual([]);
      expect(b.col.outOfOrder()).toEqual([]);
      // No duplicate reached the app, even of other ids: the 200, then the marker.
      expect(a.col.messages.length).toBe(201);
      expect(b.col.messages.length).toBe(201);
      expect(a.col.messages.at(-1)?.id).toBe(markA);
      expect(b.col.messages.at(-1)?.id).toBe(markB);
      // The resets really cut live sessions (some resets can land while a client is in backoff).
      expect(resets.filter((n) => n > 0).length).toBeGreaterThanOrEqual(3);
      expect(errors.get('ERR_CONNECTION') ?? 0).toBeGreaterThanOrEqual(3);
    } finally {
      await Promise.all(clients.map((c) => c.close()));
    }
  }, 60_000);
});
