import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { killSqliteWriter } from './helpers/fault.js';
import { RawClient } from './helpers/raw-client.js';
import { API_KEY, startServer } from './helpers/server.js';

type Started = Awaited<ReturnType<typeof startServer>>;

describe('HTTP API (Fastify inject, no sockets)', () => {
  let s: Started;
  beforeAll(async () => {
    s = await startServer({ maxPayload: 1024, maxTtl: 3600 });
  });
  afterAll(() => s.stop());

  const req = (
    method: 'GET' | 'POST' | 'PUT' | 'DELETE',
    url: string,
    payload?: unknown,
    key: string | null = API_KEY,
  ) =>
    s.server.app.inject({
      method,
      url,
      headers: {
        ...(key !== null && { authorization: `Bearer ${key}` }),
        ...(payload !== undefined && { 'content-type': 'application/json' }),
      },
      ...(payload !== undefined && {
        payload: typeof payload === 'string' ? payload : JSON.stringify(payload),
      }),
    });

  const register = async (user?: string) =>
    (await req('POST', '/v1/devices', user ? { user } : {})).json() as { deviceId: string; token: string };

  it('GET /healthz answers without a key', async () => {
    const r = await s.server.app.inject({ method: 'GET', url: '/healthz' });
    expect(r.statusCode).toBe(200);
    expect(r.json()).toMatchObject({ status: 'ok' });
  });

  it('POST /v1/devices registers a device with a user', async () => {
    const r = await req('POST', '/v1/devices', { user: 'alice' });
    expect(r.statusCode).toBe(201);
    const body = r.json();
    expect(body.deviceId).toMatch(/^[A-Za-z0-9_-]{22}$/);
    expect(body.token.length).toBeGreaterThanOrEqual(43);
    expect(body.user).toBe('alice');
    const info = await req('GET', `/v1/devices/${body.deviceId}`);
    expect(info.json()).toMatchObject({
      deviceId: body.deviceId,
      user: 'alice',
      online: false,
      pending: 0,
      lastSeen: null,
    });
  });

  it('401 with a JSON body for a missing or wrong key', async () => {
    for (const key of [null, 'wrong']) {
      const r = await req('POST', '/v1/messages', { to: { topic: 'x' } }, key);
      expect(r.statusCode).toBe(401);
      expect(r.json()).toMatchObject({ error: 'UNAUTHORIZED' });
      expect(r.headers['www-authenticate']).toBe('Bearer');
    }
  });

  it('400 MALFORMED_JSON for a body that is not JSON', async () => {
    const r = await req('POST', '/v1/messages', '{"to":');
    expect(r.statusCode).toBe(400);
    expect(r.json()).toMatchObject({ error: 'MALFORMED_JSON' });
  });

  it('400 BAD_REQUEST for schema violations, naming the problem', async () => {
    const cases = [
      { to: { device: 'a', topic: 'b' } },
      { to: {} },
      { data: 1 },
      { to: { topic: 'x' }, ttl: -1 },
      { to: { topic: 'x' }, urgency: 'asap' },
      { to: { topic: 'x' }, surprise: true },
      { to: { topic: 'bad topic' } },
    ];
    for (const body of cases) {
      const r = await req('POST', '/v1/messages', body);
      expect(r.statusCode, JSON.stringify(body)).toBe(400);
      expect(r.json().error).toBe('BAD_REQUEST');
      expect(r.json().message.length).toBeGreaterThan(5);
    }
  });

  it('404 for an unknown device and an unknown route', async () => {
    const r = await req('POST', '/v1/messages', { to: { device: 'nope' } });
    expect(r.statusCode).toBe(404);
    expect(r.json()).toMatchObject({ error: 'UNKNOWN_DEVICE' });
    expect((await req('GET', '/v1/devices/nope')).statusCode).toBe(404);
    const nr = await req('GET', '/v2/anything');
    expect(nr.statusCode).toBe(404);
    expect(nr.json().error).toBe('NOT_FOUND');
  });

  it('413 for a payload over the configured limit, 202 at the limit', async () => {
    const dev = await register();
    const over = await req('POST', '/v1/messages', { to: { device: dev.deviceId }, data: 'x'.repeat(1100) });
    expect(over.statusCode).toBe(413);
    expect(over.json()).toMatchObject({ error: 'PAYLOAD_TOO_LARGE' });
    const at = await req('POST', '/v1/messages', { to: { device: dev.deviceId }, data: 'x'.repeat(1022) });
    expect(at.statusCode).toBe(202);
    const huge = await req('POST', '/v1/messages', {
      to: { device: dev.deviceId },
      data: 'x'.repeat(200_000),
    });
    expect(huge.statusCode).toBe(413);
  });

  it('202 with id, seq and a capped TTL; the same id again is idempotent', async () => {
    const dev = await register();
    const first = await req('POST', '/v1/messages', {
      to: { device: dev.deviceId },
      id: 'order-1',
      ttl: 999_999,
    });
    expect(first.statusCode).toBe(202);
    expect(first.json()).toMatchObject({
      id: 'order-1',
      duplicate: false,
      ttl: 3600,
      recipients: 1,
      entries: [{ stream: `d:${dev.deviceId}`, seq: 1 }],
    });
    const again = await req('POST', '/v1/messages', {
      to: { device: dev.deviceId },
      id: 'order-1',
      data: 'changed',
    });
    expect(again.json()).toMatchObject({ id: 'order-1', duplicate: true, entries: [{ seq: 1 }] });
    expect((await req('GET', `/v1/devices/${dev.deviceId}`)).json().pending).toBe(1);
    expect((await req('GET', '/v1/messages/order-1')).json()).toMatchObject({
      id: 'order-1',
      entries: [{ seq: 1 }],
    });
  });

  it("a publish to a user reaches each of the user's devices", async () => {
    const a = await register('bob');
    const b = await register('bob');
    const r = await req('POST', '/v1/messages', { to: { user: 'bob' }, notification: { title: 'hi' } });
    expect(r.json().recipients).toBe(2);
    expect(
      r
        .json()
        .entries.map((e: { stream: string }) => e.stream)
        .sort(),
    ).toEqual([`d:${a.deviceId}`, `d:${b.deviceId}`].sort());
  });

  it('topic subscribe and unsubscribe for a device', async () => {
    const dev = await register();
    await req('POST', '/v1/messages', { to: { topic: 'sport' } });
    const sub = await req('PUT', `/v1/devices/${dev.deviceId}/topics/sport`);
    expect(sub.statusCode).toBe(200);
    expect(sub.json()).toMatchObject({ topic: 'sport', seq: 1 });
    await req('POST', '/v1/messages', { to: { topic: 'sport' } });
    expect((await req('GET', `/v1/devices/${dev.deviceId}`)).json()).toMatchObject({
      pending: 1,
      topics: ['sport'],
    });
    expect((await req('DELETE', `/v1/devices/${dev.deviceId}/topics/sport`)).statusCode).toBe(204);
    expect((await req('GET', `/v1/devices/${dev.deviceId}/topics`)).json().topics).toEqual([]);
    expect((await req('PUT', '/v1/devices/nope/topics/sport')).statusCode).toBe(404);
  });

  it('DELETE /v1/devices/:id removes the device', async () => {
    const dev = await register();
    expect((await req('DELETE', `/v1/devices/${dev.deviceId}`)).statusCode).toBe(204);
    expect((await req('GET', `/v1/devices/${dev.deviceId}`)).statusCode).toBe(404);
  });
});

describe('POST /v1/messages/batch', () => {
  let s: Started;
  beforeAll(async () => {
    s = await startServer({ maxPayload: 1024 });
  });
  afterAll(() => s.stop());

  const post = (url: string, payload: unknown) =>
    s.server.app.inject({
      method: 'POST',
      url,
      headers: { authorization: `Bearer ${API_KEY}`, 'content-type': 'application/json' },
      payload: JSON.stringify(payload),
    });

  it('stores every message in one request, per-message results in order, refusals named', async () => {
    const dev = (await post('/v1/devices', {})).json() as { deviceId: string };
    const messages = [
      ...Array.from({ length: 300 }, (_, i) => ({ to: { device: dev.deviceId }, data: { i } })),
      { to: { device: 'nobody' } },
      { to: { device: dev.deviceId }, data: 'x'.repeat(2000) },
      { to: { device: dev.deviceId }, id: 'dup-1' },
      { to: { device: dev.deviceId }, id: 'dup-1' },
    ];
    const r = await post('/v1/messages/batch', { messages });
    expect(r.statusCode).toBe(202);
    const body = r.json();
    expect(body.accepted).toBe(302);
    expect(body.refused).toBe(2);
    expect(body.results[0]).toMatchObject({ recipients: 1, entries: [{ seq: 1 }] });
    expect(body.results[299].entries[0].seq).toBe(300);
    expect(body.results[300]).toMatchObject({ error: 'UNKNOWN_DEVICE', status: 404 });
    expect(body.results[301]).toMatchObject({ error: 'PAYLOAD_TOO_LARGE', status: 413 });
    expect(body.results[302]).toMatchObject({ id: 'dup-1', duplicate: false });
    expect(body.results[303]).toMatchObject({ id: 'dup-1', duplicate: true });
    const info = await s.server.app.inject({
      method: 'GET',
      url: `/v1/devices/${dev.deviceId}`,
      headers: { authorization: `Bearer ${API_KEY}` },
    });
    expect(info.json().pending).toBe(301);
  });

  it('refuses a malformed batch as a whole with 400', async () => {
    for (const payload of [{ messages: [] }, { messages: [{ to: {} }] }, { msgs: [] }]) {
      const r = await post('/v1/messages/batch', payload);
      expect(r.statusCode).toBe(400);
      expect(r.json().error).toBe('BAD_REQUEST');
    }
  });
});

describe('POST /v1/devices/batch', () => {
  let s: Started;
  beforeAll(async () => {
    s = await startServer();
  });
  afterAll(() => s.stop());

  const post = (payload: unknown) =>
    s.server.app.inject({
      method: 'POST',
      url: '/v1/devices/batch',
      headers: { authorization: `Bearer ${API_KEY}`, 'content-type': 'application/json' },
      payload: JSON.stringify(payload),
    });

  it('registers many devices in one request; each works on its own', async () => {
    const r = await post({ devices: [{}, { user: 'erin' }, ...Array.from({ length: 498 }, () => ({}))] });
    expect(r.statusCode).toBe(201);
    const devices = r.json().devices as { deviceId: string; token: string; user?: string }[];
    expect(devices.length).toBe(500);
    expect(new Set(devices.map((d) => d.deviceId)).size).toBe(500);
    expect(devices[1]!.user).toBe('erin');
    const info = await s.server.app.inject({
      method: 'GET',
      url: `/v1/devices/${devices[1]!.deviceId}`,
      headers: { authorization: `Bearer ${API_KEY}` },
    });
    expect(info.json()).toMatchObject({ user: 'erin', online: false });
    // A registered token opens a session.
    const c = new RawClient(s.url);
    await c.opened();
    c.hello(devices[499]!.deviceId, devices[499]!.token);
    await c.next('welcome');
    c.close();
  });

  it('refuses an empty, oversized or malformed batch with 400', async () => {
    for (const payload of [
      { devices: [] },
      { devices: Array.from({ length: 1001 }, () => ({})) },
      { devices: [{ nick: 'x' }] },
    ]) {
      const r = await post(payload);
      expect(r.statusCode).toBe(400);
    }
  });
});

describe('HTTP API when the SQLite writer thread dies', () => {
  it('refuses publishes with a 5xx error, and fails readiness and liveness so the process is restarted', async () => {
    const s = await startServer();
    try {
      const headers = { authorization: `Bearer ${API_KEY}`, 'content-type': 'application/json' };
      const dev = (
        await s.server.app.inject({ method: 'POST', url: '/v1/devices', headers, payload: '{}' })
      ).json() as { deviceId: string };
      const publish = () =>
        s.server.app.inject({
          method: 'POST',
          url: '/v1/messages',
          headers,
          payload: JSON.stringify({ to: { device: dev.deviceId }, data: { n: 1 } }),
        });
      expect((await publish()).statusCode).toBe(202);
      expect((await s.server.app.inject({ method: 'GET', url: '/healthz' })).statusCode).toBe(200);

      // Fault injection: the writer thread goes away (as on an uncaught error inside it).
      await killSqliteWriter(s.server.options.store);

      const refused = await publish();
      expect(refused.statusCode).toBe(503);
      expect(refused.json()).toMatchObject({ error: 'STORE_IO' });
      const ready = await s.server.app.inject({ method: 'GET', url: '/readyz' });
      expect(ready.statusCode).toBe(503);
      expect(ready.json()).toMatchObject({ error: 'STORE_UNAVAILABLE' });
      const live = await s.server.app.inject({ method: 'GET', url: '/healthz' });
      expect(live.statusCode).toBe(503);
      expect(live.json()).toMatchObject({ error: 'STORE_FAILED' });
      expect(live.json().message).toMatch(/restart/);
    } finally {
      await s.stop();
    }
  });
});
