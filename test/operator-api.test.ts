import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { nothingPending, pendingOf } from './helpers/barrier.js';
import { RawClient } from './helpers/raw-client.js';
import { http, ROOT, registerDevice, startServer, until } from './helpers/server.js';

type Started = Awaited<ReturnType<typeof startServer>>;

interface DeviceStatus {
  device: string;
  state: string;
  at?: number;
  collapsedBy?: string;
}
interface Status {
  id: string;
  ts: number;
  devices: DeviceStatus[];
  topics: { topic: string; state: string; counts: Record<string, number> }[];
  summary: Record<string, number>;
}

describe('delivery status, dashboard API, OpenAPI and pages', () => {
  let s: Started;
  let url: string;
  /** Added to the server's clock: expiry is tested by moving it, not by waiting out a TTL. */
  let skewMs = 0;
  const clients: RawClient[] = [];

  beforeAll(async () => {
    s = await startServer({ sweepIntervalMs: 3_600_000, clock: { now: () => Date.now() + skewMs } });
    url = s.url;
  });
  afterAll(async () => {
    for (const c of clients) c.close();
    await s.stop();
  });

  const publish = async (body: Record<string, unknown>) => {
    const r = await http<{ id: string; ts: number }>(url, 'POST', '/v1/messages', body);
    expect(r.status).toBe(202);
    return r.body;
  };
  const status = async (id: string) => {
    const r = await http<Status>(url, 'GET', `/v1/messages/${id}`);
    expect(r.status).toBe(200);
    return r.body;
  };
  /** Connects a device over a real socket; acks every message it gets. */
  const online = async (device: { deviceId: string; token: string }) => {
    const c = new RawClient(url);
    clients.push(c);
    await c.opened();
    c.ws.on('message', (d) => {
      const f = JSON.parse(d.toString());
      if (f.t === 'msg') c.send(JSON.stringify({ t: 'ack', acks: { [f.stream]: f.seq } }));
    });
    c.hello(device.deviceId, device.token);
    await c.next('welcome');
    return c;
  };

  it('reports a message to an online device as delivered, with the ack time', async () => {
    const device = await registerDevice(url);
    await online(device);
    const m = await publish({ to: { device: device.deviceId }, notification: { title: 'hi' } });
    await until(async () => (await status(m.id)).devices[0]?.state === 'delivered', 10_000, 'delivered');
    const st = await status(m.id);
    expect(st.devices).toEqual([
      {
        device: device.deviceId,
        stream: `d:${device.deviceId}`,
        seq: 1,
        state: 'delivered',
        at: expect.any(Number),
      },
    ]);
    expect(st.devices[0]!.at).toBeGreaterThanOrEqual(m.ts);
    expect(st.devices[0]!.at).toBeLessThanOrEqual(Date.now());
    expect(st.summary).toMatchObject({ delivered: 1, pending: 0 });
  });

  it('tells pending, collapsed (by which message), expired and deleted apart; sweeps change nothing', async () => {
    const device = await registerDevice(url);
    const to = { device: device.deviceId };
    const pending = await publish({ to, data: 'waiting' });
    const k1 = await publish({ to, collapseKey: 'score', data: '1-0' });
    const k2 = await publish({ to, collapseKey: 'score', data: '2-0' });
    const short = await publish({ to, ttl: 1, data: 'short-lived' });
    skewMs += 1100; // the server's clock passes the 1 s TTL

    expect((await status(pending.id)).devices[0]).toMatchObject({ state: 'pending' });
    expect((await status(k1.id)).devices[0]).toMatchObject({
      state: 'collapsed',
      collapsedBy: k2.id,
      at: k2.ts,
    });
    expect((await status(k2.id)).devices[0]).toMatchObject({ state: 'pending' });
    expect((await status(short.id)).devices[0]).toMatchObject({ state: 'expired', at: short.ts + 1000 });

    // The device comes online: it gets `pending` and `k2` only, and acks them.
    const c = await online(device);
    const got = [(await c.next('msg')).id, (await c.next('msg')).id];
    expect(got).toEqual([pending.id, k2.id]);
    // The acks are in once the server reports nothing pending for the device.
    await nothingPending(url, device.deviceId);
    for (const id of [pending.id, k2.id]) expect((await status(id)).devices[0]?.state).toBe('delivered');
    expect((await status(k1.id)).devices[0]?.state).toBe('collapsed');
    expect((await status(short.id)).devices[0]?.state).toBe('expired');

    // The sweep removes the entries; the status stays the same.
    await s.server.options.store.sweep(Date.now() + skewMs);
    expect((await status(pending.id)).devices[0]?.state).toBe('delivered');
    expect((await status(k1.id)).devices[0]?.state).toBe('collapsed');
    expect((await status(short.id)).devices[0]?.state).toBe('expired');

    const gone = await registerDevice(url);
    const lost = await publish({ to: { device: gone.deviceId }, data: 'never read' });
    expect((await http(url, 'DELETE', `/v1/devices/${gone.deviceId}`)).status).toBe(204);
    expect((await status(lost.id)).devices[0]).toMatchObject({ state: 'deleted' });
  });

  it("lists each of a user's devices, and counts a topic's subscribers by state", async () => {
    const a = await registerDevice(url, 'status-user');
    const b = await registerDevice(url, 'status-user');
    await online(a);
    const m = await publish({ to: { user: 'status-user' }, data: 'to both' });
    // a's ack is in once nothing is pending for it; b (offline) keeps the message pending.
    await nothingPending(url, a.deviceId);
    expect(await pendingOf(url, b.deviceId)).toBe(1);
    const st = await status(m.id);
    expect(st.devices.map((d) => [d.device, d.state]).sort()).toEqual(
      [
        [a.deviceId, 'delivered'],
        [b.deviceId, 'pending'],
      ].sort(),
    );
    expect(st.summary).toMatchObject({ delivered: 1, pending: 1 });

    const subs = [await registerDevice(url), await registerDevice(url), await registerDevice(url)];
    for (const d of subs) await http(url, 'PUT', `/v1/devices/${d.deviceId}/topics/status-news`);
    await online(subs[0]!);
    const t = await publish({ to: { topic: 'status-news' }, data: 'news' });
    // The online subscriber has acked once the counts say so; the two offline ones stay pending.
    await until(
      async () => (await status(t.id)).topics[0]?.counts.delivered === 1,
      10_000,
      "the online subscriber's ack",
    );
    const ts = await status(t.id);
    expect(ts.devices).toEqual([]);
    expect(ts.topics).toEqual([
      {
        topic: 'status-news',
        stream: 't:status-news',
        seq: 1,
        state: 'pending',
        counts: { delivered: 1, pending: 2, expired: 0, collapsed: 0 },
      },
    ]);
  });

  it("GET /v1/devices/:id/messages: a device's recent messages with their state", async () => {
    const device = await registerDevice(url);
    const to = { device: device.deviceId };
    const ids = [];
    for (let i = 0; i < 3; i++) ids.push((await publish({ to, notification: { title: `n${i}` } })).id);
    const r = await http<{ messages: { id: string; state: string; notification?: { title: string } }[] }>(
      url,
      'GET',
      `/v1/devices/${device.deviceId}/messages?limit=2`,
    );
    expect(r.status).toBe(200);
    expect(r.body.messages.map((m) => [m.id, m.state, m.notification?.title])).toEqual([
      [ids[2], 'pending', 'n2'],
      [ids[1], 'pending', 'n1'],
    ]);
    for (const q of ['limit=0', 'limit=abc', 'limit=101', 'other=1']) {
      expect((await http(url, 'GET', `/v1/devices/${device.deviceId}/messages?${q}`)).status).toBe(400);
    }
    expect((await http(url, 'GET', '/v1/devices/nobody/messages')).status).toBe(404);
    expect(
      (await http(url, 'GET', `/v1/devices/${device.deviceId}/messages`, undefined, 'wrong')).status,
    ).toBe(401);
  });

  it('GET /v1/admin/stats: live counters behind the API key', async () => {
    expect((await http(url, 'GET', '/v1/admin/stats', undefined, 'wrong')).status).toBe(401);
    const r = await http<Record<string, number>>(url, 'GET', '/v1/admin/stats');
    expect(r.status).toBe(200);
    expect(r.body.sessions).toBe(clients.filter((c) => !c.closed).length);
    expect(r.body.published).toBeGreaterThanOrEqual(10);
    expect(r.body.liveDeliveries).toBeGreaterThanOrEqual(2);
    expect(r.body).toHaveProperty('store');
  });

  it('GET /openapi.json documents the routes from their schemas; GET /docs renders it offline', async () => {
    const r = await fetch(`${url}/openapi.json`);
    expect(r.status).toBe(200);
    const doc = (await r.json()) as {
      openapi: string;
      paths: Record<
        string,
        Record<
          string,
          {
            summary?: string;
            tags?: string[];
            security?: unknown[];
            requestBody?: unknown;
            responses: Record<string, unknown>;
          }
        >
      >;
      components: { securitySchemes: Record<string, unknown> };
    };
    expect(doc.openapi).toMatch(/^3\./);
    const publishOp = doc.paths['/v1/messages']!.post!;
    expect(publishOp.summary).toMatch(/Publish/);
    expect(publishOp.tags).toEqual(['messages']);
    expect(publishOp.security).toEqual([{ apiKey: [] }]);
    expect(JSON.stringify(publishOp.requestBody)).toContain('collapseKey');
    expect(JSON.stringify(doc.paths['/v1/messages/{id}']!.get!.responses['200'])).toContain('collapsed');
    expect(doc.paths['/healthz']!.get!.security).toBeUndefined();
    expect(doc.paths['/metrics']!.get!.security).toEqual([{ apiKey: [] }]);
    expect(doc.components.securitySchemes).toHaveProperty('apiKey');
    for (const hidden of ['/demo', '/dashboard', '/sdk/{file}', '/openapi.json'])
      expect(doc.paths[hidden]).toBeUndefined();

    const page = await fetch(`${url}/docs`);
    expect(page.status).toBe(200);
    expect(page.headers.get('content-type')).toContain('text/html');
    const bundle = await fetch(`${url}/docs/static/swagger-ui-bundle.js`);
    expect(bundle.status).toBe(200); // served from the npm package, no CDN
    expect((await bundle.arrayBuffer()).byteLength).toBeGreaterThan(100_000);
  });

  it('serves the demo, the dashboard and the browser SDK, and nothing else from disk', async () => {
    execFileSync(process.execPath, [join(ROOT, 'scripts/build-browser.mjs')], { stdio: 'ignore' });
    const get = (path: string) => fetch(`${url}${path}`);
    for (const [path, type] of [
      ['/demo', 'text/html'],
      ['/demo/demo.js', 'text/javascript'],
      ['/dashboard', 'text/html'],
      ['/dashboard/dashboard.css', 'text/css'],
      ['/sdk/pushwire.js', 'text/javascript'],
      ['/sdk/pushwire.mjs', 'text/javascript'],
    ] as const) {
      const r = await get(path);
      expect(r.status, path).toBe(200);
      expect(r.headers.get('content-type'), path).toContain(type);
    }
    expect(await (await get('/sdk/pushwire.js')).text()).toContain('Pushwire');
    for (const path of [
      '/demo/..%2F..%2Fpackage.json',
      // (`/demo/%2e%2e` alone is `/` once the URL is parsed: the home page.)
      '/demo/%2e%2e%2Fpackage.json',
      '/sdk/..%2Fnode.js',
      '/demo/nope.js',
    ]) {
      expect((await get(path)).status, path).toBe(404);
    }
  });
});
