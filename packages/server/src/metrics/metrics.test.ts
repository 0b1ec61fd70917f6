import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { RawClient } from '../../../../test/helpers/raw-client.js';
import type { ServerOptions } from '../config.js';
import { createPushwireServer, type PushwireServer } from '../server.js';
import { SqliteStore } from '../store/sqlite.js';

const KEY = 'metrics-key';

/** Parses Prometheus text into `name{labels}` → value. */
function parse(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const i = line.lastIndexOf(' ');
    out.set(line.slice(0, i), Number(line.slice(i + 1)));
  }
  return out;
}

describe('GET /metrics (real server, real sockets)', () => {
  const cleanups: (() => Promise<void> | void)[] = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  async function start(opts: Partial<ServerOptions> = {}) {
    const dir = mkdtempSync(join(tmpdir(), 'pushwire-metrics-'));
    const store = SqliteStore.open({ path: join(dir, 'pushwire.db') });
    const server = createPushwireServer({ store, apiKeys: [KEY], ...opts });
    const url = await server.listen({ port: 0 });
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    cleanups.push(() => server.close());
    return { server, url, store };
  }

  const api = async (server: PushwireServer, method: 'GET' | 'POST', url: string, body?: unknown) => {
    const r = await server.app.inject({
      method,
      url,
      headers: {
        authorization: `Bearer ${KEY}`,
        ...(body !== undefined && { 'content-type': 'application/json' }),
      },
      ...(body !== undefined && { payload: JSON.stringify(body) }),
    });
    const json = String(r.headers['content-type']).startsWith('application/json');
    return { status: r.statusCode, body: json ? r.json() : undefined, text: r.body, headers: r.headers };
  };

  const connect = async (url: string, device: { deviceId: string; token: string }, hb: number) => {
    const c = new RawClient(url);
    cleanups.push(() => c.close());
    await c.opened();
    c.hello(device.deviceId, device.token, { hb });
    return c;
  };

  it('needs the API key, and exposes every server metric with values that follow the traffic', async () => {
    const { server, url, store } = await start({ admissionRate: 0.001, admissionBurst: 1 });
    expect((await server.app.inject({ method: 'GET', url: '/metrics' })).statusCode).toBe(401);

    const device = (await api(server, 'POST', '/v1/devices', {})).body as { deviceId: string; token: string };
    const live = await connect(url, device, 20);
    await live.next('welcome');
    // Admission control: the bucket held one token, so a second session is refused at its hello.
    const refused = await connect(url, device, 20);
    expect(await refused.next('error')).toMatchObject({ code: 'RATE_LIMITED' });
    await refused.whenClosed();

    for (let i = 0; i < 5; i++) {
      const r = await api(server, 'POST', '/v1/messages', { to: { device: device.deviceId }, data: { i } });
      expect(r.status).toBe(202);
      const msg = await live.next('msg');
      live.send(JSON.stringify({ t: 'ack', acks: { [msg.stream]: msg.seq } }));
    }
    live.send(JSON.stringify({ t: 'ping', hb: 300 }));
    await live.next('pong');
    // Collapse and expiry: an unsubscribed topic, so nothing is delivered.
    for (const id of ['c1', 'c2']) {
      await api(server, 'POST', '/v1/messages', { to: { topic: 'scores' }, id, collapseKey: 'k', data: id });
    }
    await api(server, 'POST', '/v1/messages', { to: { topic: 'scores' }, ttl: 0, data: 'now or never' });
    await store.sweep(Date.now() + 1);

    const r = await api(server, 'GET', '/metrics');
    expect(r.status).toBe(200);
    expect(r.headers['content-type']).toContain('text/plain');
    const m = parse(r.text);
    expect(m.get('pushwire_connections')).toBe(1);
    expect(m.get('pushwire_sessions')).toBe(1);
    expect(m.get('pushwire_handshakes_total')).toBe(1);
    expect(m.get('pushwire_handshakes_refused_total')).toBe(1);
    expect(m.get('pushwire_messages_published_total')).toBe(8);
    expect(m.get('pushwire_messages_delivered_total')).toBe(5);
    expect(m.get('pushwire_acks_total')).toBe(5);
    expect(m.get('pushwire_messages_collapsed_total')).toBe(1);
    expect(m.get('pushwire_messages_expired_total')).toBe(1); // the ttl-0 entry, at the sweep
    expect(m.get('pushwire_publish_to_deliver_seconds_count')).toBe(5);
    expect(m.get('pushwire_publish_to_deliver_seconds_bucket{le="+Inf"}')).toBe(5);
    expect(m.get('pushwire_publish_to_deliver_seconds_sum')).toBeLessThan(5);
    // Declared heartbeats: 20 s at hello, 300 s by ping.
    expect(m.get('pushwire_heartbeat_seconds_count')).toBe(2);
    expect(m.get('pushwire_heartbeat_seconds_bucket{le="30"}')).toBe(1);
    expect(m.get('pushwire_heartbeat_seconds_bucket{le="300"}')).toBe(2);
    // Group commit: every publish went through a batch; sizes sum to the publishes.
    const batches = m.get('pushwire_store_batch_size_count')!;
    expect(batches).toBeGreaterThanOrEqual(1);
    expect(m.get('pushwire_store_batches_total')).toBe(batches);
    expect(m.get('pushwire_store_batch_size_sum')).toBe(8);
    expect(m.get('pushwire_store_batch_seconds_count')).toBe(batches);
    // Process metrics, event-loop lag among them.
    expect(m.has('nodejs_eventloop_lag_seconds')).toBe(true);
    expect(m.has('nodejs_eventloop_lag_p99_seconds')).toBe(true);
    expect(m.has('process_resident_memory_bytes')).toBe(true);
  });

  it('serves /metrics without a key when metricsPublic is set', async () => {
    const { server } = await start({ metricsPublic: true });
    const r = await server.app.inject({ method: 'GET', url: '/metrics' });
    expect(r.statusCode).toBe(200);
    expect(r.body).toContain('# TYPE pushwire_sessions gauge');
  });

  it('keeps per-server counts apart when one process runs two servers', async () => {
    const a = await start();
    const b = await start();
    await api(a.server, 'POST', '/v1/messages', { to: { topic: 't' }, data: 1 });
    const pa = parse((await api(a.server, 'GET', '/metrics')).text);
    const pb = parse((await api(b.server, 'GET', '/metrics')).text);
    expect(pa.get('pushwire_messages_published_total')).toBe(1);
    expect(pb.get('pushwire_messages_published_total')).toBe(0);
  });
});
