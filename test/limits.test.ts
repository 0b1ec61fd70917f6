import { join } from 'node:path';
import { Writable } from 'node:stream';
import { SqliteStore, SqliteWebPushRegistry } from '@pushwire/server';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { recordPurges } from './helpers/purges.js';
import { RawClient } from './helpers/raw-client.js';
import { API_KEY, http, registerDevice, startServer, tempDir, until } from './helpers/server.js';

type Started = Awaited<ReturnType<typeof startServer>>;

/** A pino logger whose lines are kept, to assert that nothing was logged at error level. */
function capturedLogger() {
  const lines: { level: number; msg?: string }[] = [];
  const sink = new Writable({
    write(chunk, _enc, cb) {
      for (const line of String(chunk).split('\n')) if (line) lines.push(JSON.parse(line));
      cb();
    },
  });
  return { logger: pino({ level: 'info' }, sink), errors: () => lines.filter((l) => l.level >= 50) };
}

const LONG = 'x'.repeat(128);

describe('HTTP input limits', () => {
  let s: Started;
  const log = capturedLogger();
  beforeAll(async () => {
    s = await startServer({ logger: log.logger });
  });
  afterAll(() => s.stop());

  const inject = (method: 'GET' | 'POST' | 'PUT' | 'DELETE', url: string, payload?: string) =>
    s.server.app.inject({
      method,
      url,
      headers: {
        authorization: `Bearer ${API_KEY}`,
        ...(payload !== undefined && { 'content-type': 'application/json' }),
      },
      ...(payload !== undefined && { payload }),
    });

  it('answers JSON nested 5,000 levels deep with 400 JSON_TOO_DEEP, logging no error', async () => {
    const deep = `${'['.repeat(5000)}${']'.repeat(5000)}`;
    const bodies: [string, string][] = [
      ['/v1/messages', `{"to":{"topic":"a"},"data":${deep}}`],
      ['/v1/messages/batch', `{"messages":[{"to":{"topic":"a"},"data":${deep}}]}`],
      ['/v1/devices', deep],
    ];
    for (const [url, body] of bodies) {
      const r = await inject('POST', url, body);
      expect(r.statusCode, url).toBe(400);
      expect(r.json()).toMatchObject({ error: 'JSON_TOO_DEEP' });
    }
    // Brackets inside strings are not nesting; 64 levels are accepted.
    const fine = await inject(
      'POST',
      '/v1/messages',
      `{"to":{"topic":"a"},"data":{"s":"${'['.repeat(500)}","n":${'['.repeat(62)}${']'.repeat(62)}}}`,
    );
    expect(fine.statusCode).toBe(202);
    expect(log.errors()).toEqual([]);
  });

  it('serves topic names and message ids of 128 characters in every route', async () => {
    const dev = await registerDevice(s.url);
    const d = dev.deviceId;
    const slashes = encodeURIComponent('a/'.repeat(64)); // 128 characters, 320 once encoded
    for (const topic of [LONG, slashes]) {
      expect((await inject('PUT', `/v1/devices/${d}/topics/${topic}`)).statusCode).toBe(200);
      expect((await inject('GET', `/v1/devices/${d}/topics`)).json().topics).toContain(
        decodeURIComponent(topic),
      );
      expect((await inject('DELETE', `/v1/devices/${d}/topics/${topic}`)).statusCode).toBe(204);
    }
    const id = `m${'1'.repeat(127)}`;
    const sent = await inject('POST', '/v1/messages', JSON.stringify({ to: { device: d }, id }));
    expect(sent.statusCode).toBe(202);
    expect((await inject('GET', `/v1/messages/${id}`)).json()).toMatchObject({ id });
    // Device ids are the server's (22 characters), but a 128-character one is looked up, not refused.
    for (const [method, url] of [
      ['GET', `/v1/devices/${LONG}`],
      ['DELETE', `/v1/devices/${LONG}`],
      ['GET', `/v1/devices/${LONG}/topics`],
      ['PUT', `/v1/devices/${LONG}/topics/${LONG}`],
      ['DELETE', `/v1/devices/${LONG}/topics/${LONG}`],
      ['GET', `/v1/devices/${LONG}/messages`],
      ['GET', `/v1/devices/${LONG}/webpush`],
      ['POST', `/v1/devices/${LONG}/webpush`],
      ['DELETE', `/v1/devices/${LONG}/webpush/sub`],
    ] as const) {
      const r = await inject(method, url);
      expect(r.statusCode, `${method} ${url}`).toBe(404);
      expect(r.json().error, `${method} ${url}`).toBe('UNKNOWN_DEVICE');
    }
    expect((await inject('GET', `/v1/messages/${LONG}`)).json().error).toBe('UNKNOWN_MESSAGE');
    expect((await inject('GET', `/v1/devices/${d}/messages`)).statusCode).toBe(200);
    expect(log.errors()).toEqual([]);
  });
});

describe('quotas (small bounds)', () => {
  let s: Started;
  beforeAll(async () => {
    s = await startServer({
      maxTopicsPerDevice: 3,
      maxDevicesPerUser: 2,
      maxPendingPerDevice: 5,
      maxEntriesPerRequest: 7,
      webPush: { maxSubscriptionsPerDevice: 2, revokedRetention: 60 },
    });
  });
  afterAll(() => s.stop());

  it('refuses a topic beyond maxTopicsPerDevice: HTTP 429, and a non-fatal error frame on sub', async () => {
    const dev = await registerDevice(s.url);
    for (const t of ['a', 'b', 'c']) {
      expect((await http(s.url, 'PUT', `/v1/devices/${dev.deviceId}/topics/${t}`)).status).toBe(200);
    }
    const refused = await http(s.url, 'PUT', `/v1/devices/${dev.deviceId}/topics/d`);
    expect(refused.status).toBe(429);
    expect(refused.body).toMatchObject({ error: 'TOO_MANY_TOPICS', message: expect.stringContaining('3') });

    const c = new RawClient(s.url);
    await c.opened();
    c.hello(dev.deviceId, dev.token);
    expect((await c.next('welcome')).topics).toEqual(['a', 'b', 'c']);
    c.send(JSON.stringify({ t: 'sub', topic: 'e', ref: 7 }));
    expect(await c.next('error')).toMatchObject({ code: 'TOO_MANY_TOPICS', fatal: false, ref: 7 });
    // The session goes on: a topic already followed is fine, and so is one after an unsub.
    c.send(JSON.stringify({ t: 'sub', topic: 'a', ref: 8 }));
    expect(await c.next('subbed')).toMatchObject({ topic: 'a', ref: 8 });
    c.send(JSON.stringify({ t: 'unsub', topic: 'b', ref: 9 }));
    await c.next('unsubbed');
    c.send(JSON.stringify({ t: 'sub', topic: 'e', ref: 10 }));
    expect(await c.next('subbed')).toMatchObject({ topic: 'e', ref: 10 });
    c.close();
  });

  it('refuses a device beyond maxDevicesPerUser with 429 TOO_MANY_DEVICES, single or batch', async () => {
    await registerDevice(s.url, 'carol');
    const batch = await http(s.url, 'POST', '/v1/devices/batch', {
      devices: [{ user: 'carol' }, { user: 'carol' }],
    });
    expect(batch.status).toBe(429);
    expect(batch.body).toMatchObject({ error: 'TOO_MANY_DEVICES' });
    await registerDevice(s.url, 'carol');
    const third = await http(s.url, 'POST', '/v1/devices', { user: 'carol' });
    expect(third.status).toBe(429);
    expect(third.body).toMatchObject({ error: 'TOO_MANY_DEVICES' });
    expect((await http(s.url, 'POST', '/v1/devices', { user: 'dave' })).status).toBe(201);
  });

  it('refuses a publish to a full device backlog with 507 DEVICE_BACKLOG_FULL, and accepts again once acked', async () => {
    const dev = await registerDevice(s.url);
    const to = { device: dev.deviceId };
    for (let i = 0; i < 5; i++) expect((await http(s.url, 'POST', '/v1/messages', { to })).status).toBe(202);
    const full = await http(s.url, 'POST', '/v1/messages', { to, data: { n: 6 } });
    expect(full.status).toBe(507);
    expect(full.body).toMatchObject({ error: 'DEVICE_BACKLOG_FULL' });
    const batch = await http<{ refused: number; results: { status?: number; error?: string }[] }>(
      s.url,
      'POST',
      '/v1/messages/batch',
      { messages: [{ to }, { to: { topic: 'other' } }] },
    );
    expect(batch.status).toBe(202);
    expect(batch.body.refused).toBe(1);
    expect(batch.body.results[0]).toMatchObject({ status: 507, error: 'DEVICE_BACKLOG_FULL' });

    // The device connects, receives the five and acks them: room again.
    const c = new RawClient(s.url);
    await c.opened();
    c.hello(dev.deviceId, dev.token);
    await c.next('welcome');
    let last = 0;
    for (let i = 0; i < 5; i++) last = (await c.next('msg')).seq;
    expect(last).toBe(5);
    c.send(JSON.stringify({ t: 'ack', acks: { [`d:${dev.deviceId}`]: last } }));
    await until(async () => (await http(s.url, 'POST', '/v1/messages', { to })).status === 202, 5000);
    c.close();
  });

  it('bounds the stream entries one request creates with 413 TOO_MANY_ENTRIES', async () => {
    for (let i = 0; i < 2; i++) await registerDevice(s.url, 'erin');
    const toUser = { to: { user: 'erin' } };
    // 7 entries per request: three messages of 2 entries fit, a fourth does not.
    const batch = await http<{ accepted: number; results: { status?: number; error?: string }[] }>(
      s.url,
      'POST',
      '/v1/messages/batch',
      { messages: [toUser, toUser, toUser, toUser] },
    );
    expect(batch.status).toBe(202);
    expect(batch.body.accepted).toBe(3);
    expect(batch.body.results.filter((r) => r.error === 'TOO_MANY_ENTRIES')).toEqual([
      expect.objectContaining({ status: 413 }),
    ]);
    expect((await http(s.url, 'POST', '/v1/messages', toUser)).status).toBe(202);
  });

  it('keeps a message to a topic nobody follows for one hour by default', async () => {
    const r = await http<{ ts: number; expiresAt: number; ttl: number }>(s.url, 'POST', '/v1/messages', {
      to: { topic: 'nobody-here' },
    });
    expect(r.status).toBe(202);
    expect(r.body.ttl).toBe(3600);
    const dev = await registerDevice(s.url);
    await http(s.url, 'PUT', `/v1/devices/${dev.deviceId}/topics/somebody-here`);
    const followed = await http<{ ttl: number }>(s.url, 'POST', '/v1/messages', {
      to: { topic: 'somebody-here' },
    });
    expect(followed.body.ttl).toBe(30 * 24 * 3600);
  });
});

describe('Web Push subscriptions per device', () => {
  it('counts revoked subscriptions toward the bound until the sweep purges them', async () => {
    let now = Date.now();
    const { dir, cleanup } = tempDir();
    const store = SqliteStore.open({ path: join(dir, 'pushwire.db') });
    const registry = SqliteWebPushRegistry.onStore(store);
    const purges = recordPurges(registry);
    const s = await startServer({
      store,
      clock: { now: () => now },
      sweepIntervalMs: 50,
      webPush: { registry, maxSubscriptionsPerDevice: 2, revokedRetention: 60 },
    });
    try {
      const dev = await registerDevice(s.url);
      const path = `/v1/devices/${dev.deviceId}/webpush`;
      const a = await http<{ subscriptionId: string }>(s.url, 'POST', path, {});
      expect((await http(s.url, 'POST', path, {})).status).toBe(201);
      expect((await http(s.url, 'DELETE', `${path}/${a.body.subscriptionId}`)).status).toBe(204);
      const refused = await http(s.url, 'POST', path, {});
      expect(refused.status).toBe(409);
      expect(refused.body).toMatchObject({ error: 'TOO_MANY_SUBSCRIPTIONS' });
      now += 59_000; // within the retention: still counted
      // A sweep has run on the moved clock (cutoff 59 s - 60 s after the revocation) and kept it.
      await until(() => purges.cutoffs.includes(now - 60_000), 10_000, 'a sweep at +59 s');
      expect((await http(s.url, 'POST', path, {})).status).toBe(409);
      now += 2_000;
      await until(() => purges.cutoffs.includes(now - 60_000), 10_000, 'a sweep at +61 s');
      const list = async () =>
        (await http<{ subscriptions: unknown[] }>(s.url, 'GET', path)).body.subscriptions.length;
      expect(await list()).toBe(1);
      expect((await http(s.url, 'POST', path, {})).status).toBe(201);
    } finally {
      await s.stop();
      cleanup();
    }
  });
});

describe('topics per device with the default bound', () => {
  it('keeps the welcome of a device at the bound (200 topics of 128 characters) under 64 KiB', async () => {
    const s = await startServer();
    try {
      const dev = await registerDevice(s.url);
      const topic = (i: number) => `${String(i).padStart(4, '0')}${'t'.repeat(124)}`;
      for (let i = 0; i < 200; i += 20) {
        const puts = Array.from({ length: 20 }, (_, k) =>
          http(s.url, 'PUT', `/v1/devices/${dev.deviceId}/topics/${topic(i + k)}`),
        );
        for (const r of await Promise.all(puts)) expect(r.status).toBe(200);
      }
      const refused = await http(s.url, 'PUT', `/v1/devices/${dev.deviceId}/topics/${topic(200)}`);
      expect(refused.status).toBe(429);
      expect(refused.body).toMatchObject({ error: 'TOO_MANY_TOPICS' });

      const c = new RawClient(s.url);
      await c.opened();
      const sizes: number[] = [];
      c.ws.on('message', (d: Buffer) => sizes.push(d.length));
      c.hello(dev.deviceId, dev.token);
      const welcome = await c.next('welcome');
      expect(welcome.topics.length).toBe(200);
      expect(sizes[0]).toBeGreaterThan(200 * 128);
      expect(sizes[0]).toBeLessThan(64 * 1024);
      c.close();
    } finally {
      await s.stop();
    }
  });
});
