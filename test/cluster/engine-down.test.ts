import { afterAll, describe, expect, it } from 'vitest';
import { report } from '../chaos/helpers.js';
import { API_KEY, http, registerDevice, sleep, until } from '../helpers/server.js';
import { type App, CLUSTER_ENGINES, type Cluster, openApp, pick, startCluster } from './cluster.js';

describe.each(CLUSTER_ENGINES)('cluster on %s: the engine down', (engine) => {
  let cluster: Cluster | undefined;
  const apps: App[] = [];
  afterAll(async () => {
    await Promise.all(apps.map((a) => a.client.close()));
    await cluster?.stop();
  });

  it('publish answers 503 JSON at once; nodes keep their sockets; all recover when the engine returns', async () => {
    cluster = await startCluster(2, { appendonly: true }, engine);
    const c = cluster;
    const urls = c.nodes.map((n) => n.url);
    const creds = await Promise.all(Array.from({ length: 4 }, () => registerDevice(pick(urls))));
    // Pings every 2 s: the sockets carry traffic (and acks) all through the outage.
    for (const [i, cr] of creds.entries()) {
      apps.push(openApp(cr, [urls[i % 2]!], { heartbeat: { interval: 2, pongTimeout: 5 } }));
    }
    await until(() => apps.every((a) => a.client.state === 'open'), 15_000, 'all open');
    const first = await http<{ id: string }>(urls[0]!, 'POST', '/v1/messages', {
      to: { device: creds[1]!.deviceId },
    });
    expect(first.status).toBe(202);
    await until(() => apps[1]!.seen.has([first.body.id]), 5000, 'delivery before the outage');

    await c.engine.kill();
    // PostgreSQL's backends outlive their postmaster by a few milliseconds (and may still commit):
    // wait on the state itself, each node refusing a publish, rather than a fixed 500 ms.
    for (const url of urls) {
      await until(
        async () =>
          (await http(url, 'POST', '/v1/messages', { to: { device: creds[0]!.deviceId } })).status === 503,
        10_000,
        `${url} refusing publishes`,
      );
    }
    // Every node answers publishes with 503 and a JSON body, quickly, not after a long hang.
    const latencies: number[] = [];
    for (const url of urls) {
      for (const to of [{ device: creds[0]!.deviceId }, { topic: 'x' }, { user: 'nobody' }]) {
        const t0 = Date.now();
        const r = await http<{ error: string; message: string }>(url, 'POST', '/v1/messages', { to });
        latencies.push(Date.now() - t0);
        expect(r.status).toBe(503);
        expect(r.body.error).toBe('STORE_UNAVAILABLE');
        expect(typeof r.body.message).toBe('string');
        expect(r.headers.get('retry-after')).toBe('1');
      }
      const ready = await http<{ error: string }>(url, 'GET', '/readyz');
      expect(ready.status).toBe(503);
      expect(ready.body.error).toBe('STORE_UNAVAILABLE');
      expect((await http(url, 'GET', '/healthz')).status).toBe(200); // alive, not ready
    }
    expect(Math.max(...latencies)).toBeLessThan(2500); // at most one command timeout, not a hang

    // Down for 5 s (over two heartbeats): a real-time outage, so a real wait; what is asserted is
    // observed state — no client lost its socket (its states), and below, no session was closed by
    // a node's idle timer (its metrics).
    await sleep(5000);
    for (const a of apps) expect(a.states).toEqual(['connecting', 'open']);

    await c.engine.start();
    const upAt = Date.now();
    // Publishing works again (through the other node too), and the message is delivered live.
    let id = '';
    await until(
      async () => {
        const r = await http<{ id: string }>(urls[1]!, 'POST', '/v1/messages', {
          to: { device: creds[0]!.deviceId },
        });
        if (r.status === 202) id = r.body.id;
        return r.status === 202;
      },
      15_000,
      'publish accepted again',
    );
    const acceptedAfter = Date.now() - upAt;
    await until(() => apps[0]!.seen.has([id]), 10_000, 'delivery after recovery');
    for (const url of urls) {
      await until(async () => (await http(url, 'GET', '/readyz')).status === 200, 10_000, 'ready again');
    }
    for (const a of apps) {
      expect(a.states).toEqual(['connecting', 'open']);
      expect(a.seen.duplicated).toBe(0);
    }
    for (const url of urls) {
      const res = await fetch(`${url}/metrics`, { headers: { authorization: `Bearer ${API_KEY}` } });
      const text = await res.text();
      expect(res.status).toBe(200);
      expect(text).toMatch(/^pushwire_idle_closed_total 0$/m);
      expect(text).toMatch(/^pushwire_sessions 2$/m);
    }
    report(`cluster ${engine} down`, {
      maxPublishLatencyWhileDownMs: Math.max(...latencies),
      acceptedAgainAfterMs: acceptedAfter,
    });
  }, 90_000);
});
