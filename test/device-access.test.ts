import { request } from 'node:http';
import { createClient, ForbiddenError, memoryStorage, type PushMessage } from '@pushwire/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import webpush from 'web-push';
import { RawClient } from './helpers/raw-client.js';
import { API_KEY, http, registerDevice, startServer, until } from './helpers/server.js';

type Started = Awaited<ReturnType<typeof startServer>>;

describe('devices and topics: subscribe patterns, subscription point, token rotation', () => {
  let s: Started;
  let registerKey: string;
  beforeAll(async () => {
    s = await startServer();
    const k = await http<{ key: string }>(s.url, 'POST', '/v1/keys', {
      scopes: ['register'],
      subscribe: ['demo/*', 'inbox-{user}'],
    });
    registerKey = k.body.key;
  });
  afterAll(() => s.stop());

  const registerWithKey = async () => {
    const r = await http<{ deviceId: string; token: string }>(s.url, 'POST', '/v1/devices', {}, registerKey);
    expect(r.status).toBe(201);
    return r.body;
  };
  const open = async (d: { deviceId: string; token: string }, extra: Record<string, unknown> = {}) => {
    const c = new RawClient(s.url);
    await c.opened();
    c.hello(d.deviceId, d.token, extra);
    await c.next('welcome');
    return c;
  };
  const publishTopic = async (topic: string, data: unknown) => {
    const r = await http<{ id: string }>(s.url, 'POST', '/v1/messages', { to: { topic }, data });
    expect(r.status).toBe(202);
    return r.body.id;
  };

  it('a register-key device follows only its patterns; a refused sub is a non-fatal FORBIDDEN with its ref', async () => {
    const d = await registerWithKey();
    const c = await open(d);
    c.send(JSON.stringify({ t: 'sub', topic: 'alerts', ref: 7 }));
    const err = await c.next('error');
    expect(err).toMatchObject({ code: 'FORBIDDEN', fatal: false, ref: 7 });
    c.send(JSON.stringify({ t: 'sub', topic: 'demo/chat', ref: 8 }));
    expect(await c.next('subbed')).toMatchObject({ topic: 'demo/chat', ref: 8 });
    // Nested topics and {user} without a user: refused too; the session is still open.
    c.send(JSON.stringify({ t: 'sub', topic: 'demo/a/b', ref: 9 }));
    expect(await c.next('error')).toMatchObject({ code: 'FORBIDDEN', ref: 9 });
    c.send(JSON.stringify({ t: 'sub', topic: 'inbox-', ref: 10 }));
    expect(await c.next('error')).toMatchObject({ code: 'FORBIDDEN', ref: 10 });
    c.send(JSON.stringify({ t: 'ping' }));
    await c.next('pong');
    expect(c.closed).toBeUndefined();
    // Nothing of the refused topic reaches it.
    await publishTopic('alerts', 'secret');
    const id = await publishTopic('demo/chat', 'hello');
    const m = await c.next('msg');
    expect(m).toMatchObject({ id, data: 'hello' });
    expect(c.frames.filter((f) => f.t === 'msg')).toEqual([]);
    expect((await http<{ topics: string[] }>(s.url, 'GET', `/v1/devices/${d.deviceId}`)).body.topics).toEqual(
      ['demo/chat'],
    );
    c.close();
  });

  it('{user} is the device user; an admin-registered device follows any topic; admin PUT overrides', async () => {
    const admin = await http<{ deviceId: string; token: string }>(s.url, 'POST', '/v1/devices', {
      user: 'zoe',
      subscribe: ['inbox-{user}'],
    });
    const c = await open(admin.body);
    c.send(JSON.stringify({ t: 'sub', topic: 'inbox-zoe', ref: 1 }));
    expect(await c.next('subbed')).toMatchObject({ topic: 'inbox-zoe' });
    c.send(JSON.stringify({ t: 'sub', topic: 'inbox-bob', ref: 2 }));
    expect(await c.next('error')).toMatchObject({ code: 'FORBIDDEN', ref: 2 });
    const put = await http(s.url, 'PUT', `/v1/devices/${admin.body.deviceId}/topics/inbox-bob`);
    expect(put.status).toBe(200);
    const id = await publishTopic('inbox-bob', 'via override');
    expect(await c.next('msg')).toMatchObject({ id });
    c.close();

    const free = await registerDevice(s.url);
    const f = await open(free);
    f.send(JSON.stringify({ t: 'sub', topic: 'anything/at/all', ref: 1 }));
    expect(await f.next('subbed')).toMatchObject({ topic: 'anything/at/all' });
    f.close();
    // Bad patterns from an admin: 400.
    const bad = await http(s.url, 'POST', '/v1/devices', { subscribe: ['a/**/b'] });
    expect(bad.status).toBe(400);
  });

  it('SDK: subscribe() outside the patterns rejects with a ForbiddenError; the client stays open', async () => {
    const c = createClient({ url: s.url, register: { apiKey: registerKey }, storage: memoryStorage() });
    c.on('error', () => {});
    try {
      const err = await c.subscribe('alerts').then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(ForbiddenError);
      expect(err).toMatchObject({ code: 'ERR_REQUEST', serverCode: 'FORBIDDEN' });
      await c.subscribe('demo/sdk');
      expect(c.state).toBe('open');
      expect(c.topics).toEqual(['demo/sdk']);
    } finally {
      await c.close();
    }
  });

  it('a device never reads topic history from before it subscribed, whatever cursor it presents', async () => {
    const old = [await publishTopic('demo/history', 'old-1'), await publishTopic('demo/history', 'old-2')];
    const d = await registerWithKey();
    const c = await open(d);
    c.send(JSON.stringify({ t: 'sub', topic: 'demo/history', ref: 1 }));
    const subbed = await c.next('subbed');
    expect(subbed.seq).toBe(2);
    c.close();
    await c.whenClosed();
    const fresh = await publishTopic('demo/history', 'new');
    // Cursor 0 (and a negative-looking one) in hello: only the message published after subscribing.
    const again = await open(d, { cursors: { 't:demo/history': 0 } });
    const m = await again.next('msg');
    expect(m).toMatchObject({ id: fresh, seq: 3 });
    // A marker on the topic: an old entry replayed from the presented cursor would come before it.
    const marker = await publishTopic('demo/history', 'marker');
    expect(await again.next('msg', 5000, (f) => f.id === marker)).toMatchObject({ seq: 4 });
    expect(again.frames.filter((f) => f.t === 'msg').map((f) => (f as { id: string }).id)).toEqual([]);
    expect(old).not.toContain(m.id);
    again.close();
  });

  it('token rotation by the device: new token answered, old session closed at once (TOKEN_ROTATED, 4012), old token refused', async () => {
    const d = await registerDevice(s.url);
    const c = await open(d);
    const r = await fetch(`${s.url}/v1/devices/${d.deviceId}/token`, {
      method: 'POST',
      headers: { authorization: `Device ${d.deviceId}:${d.token}` },
    });
    expect(r.status).toBe(200);
    const { token } = (await r.json()) as { token: string };
    expect(token).not.toBe(d.token);
    expect(await c.next('error')).toMatchObject({ code: 'TOKEN_ROTATED', fatal: true });
    expect((await c.whenClosed()).code).toBe(4012);
    const stale = new RawClient(s.url);
    await stale.opened();
    stale.hello(d.deviceId, d.token);
    expect(await stale.next('error')).toMatchObject({ code: 'UNAUTHORIZED' });
    const fresh = await open({ deviceId: d.deviceId, token });
    fresh.close();
    // The old token no longer rotates anything; another device's token cannot rotate this one.
    const other = await registerDevice(s.url);
    for (const auth of [
      `Device ${d.deviceId}:${d.token}`,
      `Device ${other.deviceId}:${other.token}`,
      'Bearer nope',
    ]) {
      const x = await fetch(`${s.url}/v1/devices/${d.deviceId}/token`, {
        method: 'POST',
        headers: { authorization: auth },
      });
      expect([401, 403]).toContain(x.status);
      expect(((await x.json()) as { error: string }).error).toMatch(/UNAUTHORIZED|FORBIDDEN/);
    }
    // The admin may rotate it; a register key may not.
    expect((await http(s.url, 'POST', `/v1/devices/${d.deviceId}/token`)).status).toBe(200);
    expect(
      (await http(s.url, 'POST', `/v1/devices/${d.deviceId}/token`, undefined, registerKey)).status,
    ).toBe(403);
    expect((await http(s.url, 'POST', '/v1/devices/ghost/token')).status).toBe(404);
  });

  it('SDK: rotateToken() keeps the client working: it reconnects with the new token and saves it', async () => {
    const d = await registerDevice(s.url);
    const storage = memoryStorage();
    const c = createClient({ url: s.url, credentials: d, storage, backoff: { initial: 50, max: 500 } });
    const seen: PushMessage[] = [];
    c.on('message', (m) => seen.push(m));
    c.on('error', () => {});
    try {
      await until(() => c.state === 'open', 10_000, 'open');
      await c.rotateToken();
      const saved = await storage.load();
      expect(saved?.credentials?.token).toBeDefined();
      expect(saved?.credentials?.token).not.toBe(d.token);
      await until(() => c.state === 'open', 10_000, 'open again');
      const r = await http<{ id: string }>(s.url, 'POST', '/v1/messages', {
        to: { device: d.deviceId },
        data: 'after',
      });
      await until(() => seen.some((m) => m.id === r.body.id), 10_000, 'message after rotation');
      expect(c.state).toBe('open');
    } finally {
      await c.close();
    }
  });

  it('echo: a device sends only to itself (demo send), bounded per device', async () => {
    const d = await registerWithKey();
    const c = await open(d);
    const send = (id: string, auth: string, body: unknown = { notification: { title: 'hi' } }) =>
      fetch(`${s.url}/v1/devices/${id}/echo`, {
        method: 'POST',
        headers: { authorization: auth, 'content-type': 'application/json' },
        body: JSON.stringify(body),
      });
    const ok = await send(d.deviceId, `Device ${d.deviceId}:${d.token}`);
    expect(ok.status).toBe(202);
    expect(await c.next('msg')).toMatchObject({ notification: { title: 'hi' } });
    const other = await registerWithKey();
    expect((await send(other.deviceId, `Device ${d.deviceId}:${d.token}`)).status).toBe(403);
    expect((await send(d.deviceId, `Bearer ${registerKey}`)).status).toBe(403);
    expect((await send(d.deviceId, `Device ${d.deviceId}:${d.token}`, { to: { topic: 'x' } })).status).toBe(
      400,
    );
    expect(
      (
        await send(d.deviceId, `Device ${d.deviceId}:${d.token}`, {
          notification: { url: 'javascript:alert(1)' },
        })
      ).status,
    ).toBe(400);
    const codes: number[] = [];
    for (let i = 0; i < 8; i++)
      codes.push((await send(d.deviceId, `Device ${d.deviceId}:${d.token}`)).status);
    expect(codes).toContain(429);
    c.close();
  });

  it('a notification url that is not http(s) is refused at publish', async () => {
    const d = await registerDevice(s.url);
    for (const url of ['javascript:alert(1)', 'data:text/html,x', 'file:///etc/passwd', '//evil.example']) {
      const r = await http(s.url, 'POST', '/v1/messages', {
        to: { device: d.deviceId },
        notification: { url },
      });
      expect([url, r.status]).toEqual([url, 400]);
    }
    const ok = await http(s.url, 'POST', '/v1/messages', {
      to: { device: d.deviceId },
      notification: { url: 'https://example.com/x' },
    });
    expect(ok.status).toBe(202);
    expect(API_KEY).toBeTruthy();
  });

  it('without a public URL, a forged Host header moves neither Web Push endpoints nor the VAPID audience', async () => {
    /** A request with a Host header of our choosing (fetch does not allow one). */
    const raw = (path: string, headers: Record<string, string>, body = '') =>
      new Promise<{ status: number; body: Record<string, string> }>((resolve, reject) => {
        const req = request(`${s.url}${path}`, { method: 'POST', headers }, (res) => {
          let text = '';
          res.on('data', (c) => {
            text += c;
          });
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text ? JSON.parse(text) : {} }));
        });
        req.on('error', reject);
        req.end(body);
      });
    const vapid = webpush.generateVAPIDKeys();
    const d = await registerDevice(s.url);
    const created = await raw(
      `/v1/devices/${d.deviceId}/webpush`,
      {
        host: 'evil.example',
        authorization: `Device ${d.deviceId}:${d.token}`,
        'content-type': 'application/json',
      },
      JSON.stringify({ applicationServerKey: vapid.publicKey }),
    );
    expect(created.status).toBe(201);
    expect(new URL(created.body.endpoint!).origin).toBe(new URL(s.url).origin);
    const path = new URL(created.body.endpoint!).pathname;
    // A token made for the forged host is refused, even on a request carrying that Host.
    const forged = webpush.getVapidHeaders(
      'http://evil.example',
      'mailto:a@example.com',
      vapid.publicKey,
      vapid.privateKey,
      'aes128gcm',
    );
    const r = await raw(path, { host: 'evil.example', ttl: '60', authorization: forged.Authorization });
    expect([r.status, r.body.error]).toEqual([401, 'BAD_VAPID']);
    const right = webpush.getVapidHeaders(
      new URL(s.url).origin,
      'mailto:a@example.com',
      vapid.publicKey,
      vapid.privateKey,
      'aes128gcm',
    );
    const ok = await raw(path, { host: 'evil.example', ttl: '60', authorization: right.Authorization });
    expect(ok.status).toBe(201);
  });
});
