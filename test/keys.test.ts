import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { API_KEY, startServer } from './helpers/server.js';

type Started = Awaited<ReturnType<typeof startServer>>;

describe('scoped API keys (HTTP, SQLite)', () => {
  let s: Started;
  beforeAll(async () => {
    s = await startServer({ registerRate: 1, registerBurst: 3 });
  });

  it("a token that is not of a key's shape is refused without a store read", async () => {
    const keys = s.server.options.store.apiKeys!;
    const byHash = keys.byHash.bind(keys);
    let reads = 0;
    keys.byHash = (h) => {
      reads++;
      return byHash(h);
    };
    try {
      for (const bad of ['x', 'pw_nope', `pwk_${'a'.repeat(42)}`, 'a'.repeat(5000)]) {
        const r = await fetch(`${s.url}/v1/devices`, {
          method: 'POST',
          headers: { authorization: `Bearer ${bad}`, 'content-type': 'application/json' },
          body: '{}',
        });
        expect(r.status, bad.slice(0, 20)).toBe(401);
      }
      expect(reads).toBe(0);
      const shaped = await fetch(`${s.url}/v1/devices`, {
        method: 'POST',
        headers: { authorization: `Bearer pwk_${'a'.repeat(43)}`, 'content-type': 'application/json' },
        body: '{}',
      });
      expect(shaped.status).toBe(401); // unknown, after one lookup
      expect(reads).toBe(1);
    } finally {
      keys.byHash = byHash;
    }
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
      ...(payload !== undefined && { payload: JSON.stringify(payload) }),
    });

  const createKey = async (body: Record<string, unknown>) => {
    const r = await req('POST', '/v1/keys', body);
    expect(r.statusCode).toBe(201);
    return r.json() as { id: string; key: string; scopes: string[] };
  };

  it('creates a key shown once, lists it without the key or its hash, and never stores the key', async () => {
    const k = await createKey({
      scopes: ['publish', 'status'],
      label: 'backend',
      topics: ['news/*'],
      rate: 50,
    });
    expect(k.key).toMatch(/^pwk_[A-Za-z0-9_-]{43}$/);
    expect(k.id).toMatch(/^key_/);
    const list = (await req('GET', '/v1/keys')).json() as { keys: Record<string, unknown>[] };
    const listed = list.keys.find((x) => x.id === k.id)!;
    expect(listed).toMatchObject({
      label: 'backend',
      scopes: ['publish', 'status'],
      topics: ['news/*'],
      rate: 50,
    });
    expect(listed.key).toBeUndefined();
    expect(listed.hash).toBeUndefined();
    expect(JSON.stringify(list)).not.toContain(k.key);
    // The database holds the SHA-256, not the key.
    const row =
      s.server.options.store.apiKeys &&
      (await s.server.options.store.apiKeys.list()).find((x) => x.id === k.id);
    expect(row?.hash).toMatch(/^[0-9a-f]{64}$/);
    expect(JSON.stringify(row)).not.toContain(k.key);
  });

  it('a register key registers devices but cannot publish, read status, delete, or manage keys (403 naming the scope)', async () => {
    const reg = await createKey({ scopes: ['register'], subscribe: ['demo/*'] });
    const dev = await req('POST', '/v1/devices', {}, reg.key);
    expect(dev.statusCode).toBe(201);
    const { deviceId } = dev.json() as { deviceId: string };
    const cases: [string, string, unknown, string][] = [
      ['POST', '/v1/messages', { to: { device: deviceId }, data: 1 }, 'publish'],
      ['POST', '/v1/messages/batch', { messages: [{ to: { device: deviceId } }] }, 'publish'],
      ['GET', `/v1/devices/${deviceId}`, undefined, 'status'],
      ['GET', `/v1/devices/${deviceId}/messages`, undefined, 'status'],
      ['GET', '/v1/messages/nope', undefined, 'status'],
      ['GET', '/v1/admin/stats', undefined, 'status'],
      ['GET', '/metrics', undefined, 'status'],
      ['DELETE', `/v1/devices/${deviceId}`, undefined, 'admin'],
      ['PUT', `/v1/devices/${deviceId}/topics/news`, undefined, 'admin'],
      ['POST', '/v1/devices/batch', { devices: [{}] }, 'admin'],
      ['GET', '/v1/keys', undefined, 'admin'],
      ['POST', '/v1/keys', { scopes: ['admin'] }, 'admin'],
      ['DELETE', `/v1/keys/${reg.id}`, undefined, 'admin'],
      ['PUT', `/v1/devices/${deviceId}/wake`, { provider: 'fcm', token: 'x'.repeat(20) }, 'admin'],
    ];
    for (const [method, url, body, scope] of cases) {
      const r = await req(method as 'GET', url, body, reg.key);
      expect([url, r.statusCode]).toEqual([url, 403]);
      expect(r.json()).toMatchObject({ error: 'FORBIDDEN', scope });
    }
    // The device still exists: nothing was deleted.
    expect((await req('GET', `/v1/devices/${deviceId}`)).statusCode).toBe(200);
  });

  it('a register key cannot claim a user nor choose patterns', async () => {
    const reg = await createKey({ scopes: ['register'] });
    const r = await req('POST', '/v1/devices', { user: 'alice' }, reg.key);
    expect(r.statusCode).toBe(403);
    expect(r.json()).toMatchObject({ error: 'FORBIDDEN', scope: 'admin' });
    const r2 = await req('POST', '/v1/devices', { subscribe: ['**'] }, reg.key);
    expect(r2.statusCode).toBe(403);
  });

  it('a publish key restricted to news/* cannot publish to alerts nor to devices; a status key only reads', async () => {
    const pub = await createKey({ scopes: ['publish'], topics: ['news/*'] });
    const ok = await req('POST', '/v1/messages', { to: { topic: 'news/sport' }, data: 1 }, pub.key);
    expect(ok.statusCode).toBe(202);
    const alerts = await req('POST', '/v1/messages', { to: { topic: 'alerts' }, data: 1 }, pub.key);
    expect(alerts.statusCode).toBe(403);
    expect(alerts.json()).toMatchObject({ error: 'FORBIDDEN' });
    expect(alerts.json().message).toContain('alerts');
    const { deviceId } = (await req('POST', '/v1/devices', {})).json() as { deviceId: string };
    expect((await req('POST', '/v1/messages', { to: { device: deviceId } }, pub.key)).statusCode).toBe(403);
    const batch = await req(
      'POST',
      '/v1/messages/batch',
      { messages: [{ to: { topic: 'news/a' } }, { to: { topic: 'alerts' } }] },
      pub.key,
    );
    expect(batch.statusCode).toBe(202);
    expect(batch.json()).toMatchObject({
      accepted: 1,
      refused: 1,
      results: [{}, { error: 'FORBIDDEN', status: 403 }],
    });
    // Reading needs status.
    const id = (ok.json() as { id: string }).id;
    expect((await req('GET', `/v1/messages/${id}`, undefined, pub.key)).json()).toMatchObject({
      scope: 'status',
    });
    const st = await createKey({ scopes: ['status'] });
    expect((await req('GET', `/v1/messages/${id}`, undefined, st.key)).statusCode).toBe(200);
    expect((await req('GET', '/metrics', undefined, st.key)).statusCode).toBe(200);
    expect((await req('POST', '/v1/messages', { to: { topic: 'news/x' } }, st.key)).json()).toMatchObject({
      scope: 'publish',
    });
    const targeted = await createKey({ scopes: ['publish'], devices: [deviceId] });
    expect((await req('POST', '/v1/messages', { to: { device: deviceId } }, targeted.key)).statusCode).toBe(
      202,
    );
    expect((await req('POST', '/v1/messages', { to: { topic: 'news/x' } }, targeted.key)).statusCode).toBe(
      403,
    );
  });

  it('an unknown, malformed or revoked key gets 401; revocation holds at once', async () => {
    const k = await createKey({ scopes: ['status'] });
    expect((await req('GET', '/metrics', undefined, k.key)).statusCode).toBe(200);
    expect((await req('DELETE', `/v1/keys/${k.id}`)).statusCode).toBe(204);
    const r = await req('GET', '/metrics', undefined, k.key);
    expect(r.statusCode).toBe(401);
    expect(r.json()).toMatchObject({ error: 'UNAUTHORIZED' });
    expect((await req('GET', '/metrics', undefined, 'pwk_unknown')).statusCode).toBe(401);
    expect((await req('GET', '/metrics', undefined, 'x'.repeat(10_000))).statusCode).toBe(401);
    expect((await req('GET', '/metrics', undefined, null)).statusCode).toBe(401);
    const listed = ((await req('GET', '/v1/keys')).json() as { keys: { id: string; revokedAt: number }[] })
      .keys;
    expect(listed.find((x) => x.id === k.id)?.revokedAt).toBeGreaterThan(0);
    expect((await req('DELETE', '/v1/keys/key_nope')).statusCode).toBe(404);
  });

  it('refuses bad key requests with 400 and a JSON error', async () => {
    for (const body of [
      {},
      { scopes: [] },
      { scopes: ['root'] },
      { scopes: ['publish'], topics: ['news/{other}'] },
      { scopes: ['publish'], topics: ['a/**/b'] },
      { scopes: ['publish'], rate: -1 },
      { scopes: ['publish'], extra: 1 },
      { scopes: ['register'], subscribe: Array(33).fill('a') },
    ]) {
      const r = await req('POST', '/v1/keys', body);
      expect([JSON.stringify(body), r.statusCode]).toEqual([JSON.stringify(body), 400]);
      expect(r.json().error).toBeTruthy();
    }
  });

  it('rate-limits a key (429, Retry-After, JSON) and registrations per address', async () => {
    const k = await createKey({ scopes: ['status'], rate: 2 });
    const codes: number[] = [];
    let last: Awaited<ReturnType<typeof req>> | undefined;
    for (let i = 0; i < 4; i++) {
      last = await req('GET', '/metrics', undefined, k.key);
      codes.push(last.statusCode);
    }
    expect(codes.slice(0, 2)).toEqual([200, 200]);
    expect(codes).toContain(429);
    const limited = last!;
    expect(limited.statusCode).toBe(429);
    expect(Number(limited.headers['retry-after'])).toBeGreaterThanOrEqual(1);
    expect(limited.json()).toMatchObject({ error: 'RATE_LIMITED' });

    const reg = await createKey({ scopes: ['register'] });
    const regCodes: number[] = [];
    for (let i = 0; i < 6; i++) regCodes.push((await req('POST', '/v1/devices', {}, reg.key)).statusCode);
    expect(regCodes.filter((c) => c === 201).length).toBeLessThanOrEqual(4); // burst 3, +1/s
    expect(regCodes).toContain(429);
    // The admin key is not limited per address.
    for (let i = 0; i < 5; i++) expect((await req('POST', '/v1/devices', {})).statusCode).toBe(201);
  });

  it('GET /v1/keys/me says what a key may do; 401 without a valid key', async () => {
    const k = await createKey({ scopes: ['status', 'publish'], topics: ['news/*'], label: 'dash' });
    const me = await req('GET', '/v1/keys/me', undefined, k.key);
    expect(me.statusCode).toBe(200);
    expect(me.json()).toMatchObject({
      id: k.id,
      label: 'dash',
      scopes: ['status', 'publish'],
      topics: ['news/*'],
    });
    expect(me.json().hash).toBeUndefined();
    expect((await req('GET', '/v1/keys/me')).json()).toMatchObject({ id: 'config' });
    expect((await req('GET', '/v1/keys/me', undefined, 'nope')).statusCode).toBe(401);
    expect((await req('GET', '/v1/keys/me', undefined, null)).statusCode).toBe(401);
  });

  it('HTML pages cannot be framed and send no Referer; the demo config holds no admin key', async () => {
    for (const url of ['/demo', '/dashboard', '/docs/static/index.html']) {
      const r = await s.server.app.inject({ method: 'GET', url });
      if (r.statusCode !== 200) continue; // /docs may redirect
      expect(String(r.headers['content-type'])).toMatch(/^text\/html/);
      expect(r.headers['content-security-policy']).toContain("frame-ancestors 'none'");
      expect(r.headers['referrer-policy']).toBe('no-referrer');
    }
    const cfg = await s.server.app.inject({ method: 'GET', url: '/demo/config.json' });
    expect(cfg.json()).toEqual({ registerKey: null, subscribe: [] }); // this server has no demo key
    expect(cfg.body).not.toContain(API_KEY);
  });
});
