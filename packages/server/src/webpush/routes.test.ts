import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  base64urlDecode,
  base64urlEncode,
  decryptAes128gcm,
  encryptAes128gcm,
  generateWebPushKeys,
} from '@pushwire/protocol';
import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type PostgresServer, startPostgres } from '../../../../test/helpers/postgres.js';
import { recordPurges } from '../../../../test/helpers/purges.js';
import { startRedis } from '../../../../test/helpers/redis.js';
import { createPushwireServer, type PushwireServer } from '../server.js';
import { PostgresStore } from '../store/postgres.js';
import { RedisStore } from '../store/redis.js';
import { SqliteStore } from '../store/sqlite.js';
import type { Store } from '../store/types.js';
import { PostgresWebPushRegistry } from './postgres-registry.js';
import { MAX_PUSH_BODY } from './routes.js';
import { SqliteWebPushRegistry } from './sqlite-registry.js';

const KEY = 'admin-key';
const PUBLIC = 'https://push.example.com';
const admin = { authorization: `Bearer ${KEY}` };

async function vapidKeys() {
  const { publicKey, privateKey } = await generateKeyPair('ES256', { extractable: true });
  const jwk = await exportJWK(publicKey);
  const k = base64urlEncode(new Uint8Array([4, ...base64urlDecode(jwk.x!), ...base64urlDecode(jwk.y!)]));
  const auth = async (aud = PUBLIC, exp = Math.floor(Date.now() / 1000) + 3600) =>
    `vapid t=${await new SignJWT({ aud, exp, sub: 'mailto:a@example.com' })
      .setProtectedHeader({ typ: 'JWT', alg: 'ES256' })
      .sign(privateKey)}, k=${k}`;
  return { k, auth };
}

/** A private PostgreSQL shared by the PostgreSQL runs of this file, started on first use. */
let pgServer: Promise<PostgresServer> | undefined;
let pgSchemas = 0;
afterAll(async () => {
  await (await pgServer)?.stop();
});
const pgStore = async (schema = `wp${++pgSchemas}`) => {
  pgServer ??= startPostgres();
  return PostgresStore.connect({ url: (await pgServer).url, schema });
};

/** Polls `check` every 10 ms until it holds (10 s at most). */
async function until(check: () => boolean, what: string): Promise<void> {
  const end = Date.now() + 10_000;
  while (!check()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** The engines the routes run on: each gives a fresh store and what removes it afterwards. */
const engines: { name: string; open: () => Promise<{ store: Store; cleanup: () => Promise<void> }> }[] = [
  {
    name: 'SQLite',
    open: async () => {
      const dir = mkdtempSync(join(tmpdir(), 'pushwire-wp-'));
      const store = SqliteStore.open({ path: join(dir, 'pushwire.db') });
      return { store, cleanup: async () => rmSync(dir, { recursive: true, force: true }) };
    },
  },
  ...[false, true].map((cluster) => ({
    name: cluster ? 'Redis Cluster' : 'Redis',
    open: async () => {
      const redis = await startRedis({ cluster });
      const store = await RedisStore.connect({ url: redis.url, cluster });
      return { store, cleanup: () => redis.stop() };
    },
  })),
  { name: 'PostgreSQL', open: async () => ({ store: await pgStore(), cleanup: async () => {} }) },
];

describe.each(engines)('web push routes on $name (inject, no sockets)', (engine) => {
  let cleanup: () => Promise<void>;
  let store: Store;
  let server: PushwireServer;
  let deviceId: string;
  let token: string;
  const receiver = generateWebPushKeys();

  beforeAll(async () => {
    ({ store, cleanup } = await engine.open());
    server = createPushwireServer({
      store,
      apiKeys: [KEY],
      webPush: { publicUrl: PUBLIC, rate: 1, burst: 3 },
    });
    const r = await server.app.inject({ method: 'POST', url: '/v1/devices', headers: admin, payload: {} });
    ({ deviceId, token } = r.json());
  });
  afterAll(async () => {
    await server?.close();
    await cleanup?.();
  }, 60_000);

  async function subscribe(body: Record<string, unknown> = {}, headers: Record<string, string> = admin) {
    const r = await server.app.inject({
      method: 'POST',
      url: `/v1/devices/${deviceId}/webpush`,
      headers,
      payload: body,
    });
    return r;
  }
  async function newEndpoint(body: Record<string, unknown> = {}) {
    const r = await subscribe(body);
    expect(r.statusCode).toBe(201);
    const { endpoint, subscriptionId } = r.json() as { endpoint: string; subscriptionId: string };
    return { path: new URL(endpoint).pathname, endpoint, subscriptionId };
  }
  const push = (path: string, headers: Record<string, string>, payload?: Buffer) =>
    server.app.inject({ method: 'POST', url: path, headers, ...(payload && { payload }) });
  const encrypted = async (text: string) =>
    Buffer.from(await encryptAes128gcm(new TextEncoder().encode(text), await receiver));
  const binary = { 'content-type': 'application/octet-stream', 'content-encoding': 'aes128gcm' };
  const entries = () => store.read(`d:${deviceId}`, 0, 1000, Date.now());

  it('creates a subscription: a capability URL of 192 random bits under the public URL', async () => {
    const a = await newEndpoint();
    const b = await newEndpoint();
    expect(a.endpoint).toMatch(/^https:\/\/push\.example\.com\/wp\/[A-Za-z0-9_-]{32}$/);
    expect(base64urlDecode(a.path.slice(4)).length).toBe(24);
    expect(a.endpoint).not.toBe(b.endpoint);
    const list = await server.app.inject({
      method: 'GET',
      url: `/v1/devices/${deviceId}/webpush`,
      headers: admin,
    });
    expect(list.json().subscriptions.map((s: { subscriptionId: string }) => s.subscriptionId)).toEqual(
      expect.arrayContaining([a.subscriptionId, b.subscriptionId]),
    );
  });

  it("accepts the device's own credential and refuses others", async () => {
    expect((await subscribe({}, { authorization: `Device ${deviceId}:${token}` })).statusCode).toBe(201);
    expect((await subscribe({}, { authorization: `Device ${deviceId}:nope` })).statusCode).toBe(401);
    expect((await subscribe({}, {})).json()).toMatchObject({ error: 'UNAUTHORIZED' });
    const other = (
      await server.app.inject({ method: 'POST', url: '/v1/devices', headers: admin, payload: {} })
    ).json() as { deviceId: string; token: string };
    const r = await subscribe({}, { authorization: `Device ${other.deviceId}:${other.token}` });
    expect([r.statusCode, r.json().error]).toEqual([403, 'FORBIDDEN']);
    const unknown = await server.app.inject({
      method: 'POST',
      url: '/v1/devices/nobody/webpush',
      headers: admin,
      payload: {},
    });
    expect(unknown.statusCode).toBe(404);
  });

  it('refuses an applicationServerKey that is not a P-256 point', async () => {
    for (const key of ['abc', Buffer.alloc(65, 4).toString('base64url')]) {
      const r = await subscribe({ applicationServerKey: key });
      expect(r.statusCode).toBe(400);
    }
    expect((await subscribe({ extra: 1 })).statusCode).toBe(400);
  });

  it('stores the ciphertext for the device and answers 201 with Location and TTL', async () => {
    const { path, subscriptionId } = await newEndpoint();
    const body = await encrypted('hello device');
    const r = await push(path, { ...binary, ttl: '60', urgency: 'high', topic: 'inbox' }, body);
    expect(r.statusCode).toBe(201);
    expect(r.headers.ttl).toBe('60');
    expect(r.headers.location).toMatch(/^https:\/\/push\.example\.com\/wp\/m\/[0-9a-f-]{36}$/);
    const entry = (await entries()).find((e) => e.id === r.json().id)!;
    expect(entry.data).toEqual({ webpush: { sub: subscriptionId, body: body.toString('base64url') } });
    expect(JSON.stringify(entry)).not.toMatch(/inbox|high/);
    const plain = await decryptAes128gcm(
      base64urlDecode((entry.data as { webpush: { body: string } }).webpush.body),
      await receiver,
    );
    expect(new TextDecoder().decode(plain)).toBe('hello device');
  });

  it('caps the TTL and echoes the effective value', async () => {
    const { path } = await newEndpoint();
    const r = await push(path, { ttl: '999999999999' });
    expect([r.statusCode, r.headers.ttl]).toEqual([201, String(30 * 24 * 3600)]);
  });

  it('replaces an undelivered message with a newer one of the same Topic', async () => {
    const { path } = await newEndpoint();
    const first = await push(path, { ...binary, ttl: '600', topic: 'score' }, await encrypted('1:0'));
    const other = await push(path, { ...binary, ttl: '600', topic: 'other' }, await encrypted('x'));
    const second = await push(path, { ...binary, ttl: '600', topic: 'score' }, await encrypted('2:0'));
    const ids = (await entries()).map((e) => e.id);
    expect(ids).not.toContain(first.json().id);
    expect(ids).toContain(other.json().id);
    expect(ids).toContain(second.json().id);
  });

  it('answers each bad request with a status and a JSON reason', async () => {
    const { path } = await newEndpoint();
    const body = await encrypted('x');
    const cases: [Record<string, string>, Buffer | undefined, number, string][] = [
      [{ ...binary }, body, 400, 'TTL_REQUIRED'],
      [{ ...binary, ttl: '-1' }, body, 400, 'BAD_TTL'],
      [{ ...binary, ttl: '1.5' }, body, 400, 'BAD_TTL'],
      [{ ...binary, ttl: '1', urgency: 'urgent' }, body, 400, 'BAD_URGENCY'],
      [{ ...binary, ttl: '1', topic: 'a'.repeat(33) }, body, 400, 'BAD_TOPIC'],
      [{ ...binary, ttl: '1', topic: 'a=b' }, body, 400, 'BAD_TOPIC'],
      [{ ttl: '1', 'content-type': 'application/octet-stream' }, body, 415, 'UNSUPPORTED_ENCODING'],
      [{ ...binary, ttl: '1', 'content-encoding': 'aesgcm' }, body, 415, 'UNSUPPORTED_ENCODING'],
      [{ ...binary, ttl: '1' }, Buffer.alloc(40, 1), 400, 'BAD_ENCRYPTION'],
      [{ ...binary, ttl: '1' }, Buffer.alloc(MAX_PUSH_BODY + 1, 1), 413, 'PAYLOAD_TOO_LARGE'],
      [{ ...binary, ttl: '1' }, Buffer.alloc(64 * 1024, 1), 413, 'PAYLOAD_TOO_LARGE'],
      [{ ...binary, ttl: '1', authorization: 'Bearer x' }, body, 401, 'BAD_VAPID'],
    ];
    for (const [headers, payload, status, error] of cases) {
      const r = await push(path, headers, payload);
      expect([r.statusCode, r.json().error], JSON.stringify(headers)).toEqual([status, error]);
      expect(r.json().message).toEqual(expect.any(String));
    }
    expect((await push('/wp/unknown', { ttl: '1' })).json()).toMatchObject({ error: 'UNKNOWN_SUBSCRIPTION' });
    expect((await push(`/wp/${'A'.repeat(32)}`, { ttl: '1' })).statusCode).toBe(404);
  });

  it('requires VAPID for a subscription made with an applicationServerKey', async () => {
    const app = await vapidKeys();
    const other = await vapidKeys();
    const { path } = await newEndpoint({ applicationServerKey: app.k });
    const r1 = await push(path, { ttl: '1' });
    expect([r1.statusCode, r1.json().error, r1.headers['www-authenticate']]).toEqual([
      401,
      'VAPID_REQUIRED',
      'vapid',
    ]);
    expect((await push(path, { ttl: '1', authorization: await other.auth() })).statusCode).toBe(403);
    const wrongAud = await push(path, {
      ttl: '1',
      authorization: await app.auth('https://elsewhere.example'),
    });
    expect([wrongAud.statusCode, wrongAud.json().error]).toEqual([401, 'BAD_VAPID']);
    const expired = await push(path, { ttl: '1', authorization: await app.auth(PUBLIC, 1000) });
    expect(expired.statusCode).toBe(401);
    expect((await push(path, { ttl: '1', authorization: await app.auth() })).statusCode).toBe(201);
  });

  it('rate-limits each subscription with 429 and Retry-After', async () => {
    const { path } = await newEndpoint();
    const other = await newEndpoint();
    const codes = [];
    for (let i = 0; i < 4; i++) codes.push((await push(path, { ttl: '0' })).statusCode);
    expect(codes).toEqual([201, 201, 201, 429]);
    const r = await push(path, { ttl: '0' });
    expect([r.statusCode, r.json().error, Number(r.headers['retry-after'])]).toEqual([
      429,
      'RATE_LIMITED',
      1,
    ]);
    expect((await push(other.path, { ttl: '0' })).statusCode).toBe(201);
  });

  it('answers 410 once unsubscribed, 404 once the device is deleted (its subscriptions go with it)', async () => {
    const { path, subscriptionId } = await newEndpoint();
    const del = (id: string) =>
      server.app.inject({ method: 'DELETE', url: `/v1/devices/${deviceId}/webpush/${id}`, headers: admin });
    expect((await del(subscriptionId)).statusCode).toBe(204);
    expect((await del(subscriptionId)).statusCode).toBe(204);
    expect((await del('nope')).statusCode).toBe(404);
    const r = await push(path, { ttl: '1' });
    expect([r.statusCode, r.json().error]).toEqual([410, 'UNSUBSCRIBED']);
    const live = await newEndpoint();
    await server.app.inject({ method: 'DELETE', url: `/v1/devices/${deviceId}`, headers: admin });
    const gone = await push(live.path, { ttl: '1' });
    expect([gone.statusCode, gone.json().error]).toEqual([404, 'UNKNOWN_SUBSCRIPTION']);
    expect(await store.webPushRegistry?.byId(live.subscriptionId)).toBeUndefined();
  });
});

describe('web push registry durability', () => {
  it('keeps subscriptions in the store file across a restart', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'pushwire-wp-'));
    try {
      const open = () =>
        createPushwireServer({ store: SqliteStore.open({ path: join(dir, 'p.db') }), apiKeys: [KEY] });
      let server = open();
      const { deviceId } = (
        await server.app.inject({ method: 'POST', url: '/v1/devices', headers: admin, payload: {} })
      ).json() as { deviceId: string };
      const sub = await server.app.inject({
        method: 'POST',
        url: `/v1/devices/${deviceId}/webpush`,
        headers: admin,
        payload: {},
      });
      const path = new URL(sub.json().endpoint).pathname;
      expect(sub.json().endpoint).toMatch(/^http:\/\/localhost:80\/wp\//);
      await server.close();
      server = open();
      const r = await server.app.inject({ method: 'POST', url: path, headers: { ttl: '5' } });
      expect(r.statusCode).toBe(201);
      await server.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('on PostgreSQL, a subscription made through one node is pushed to through another', async () => {
    const schema = `wp${++pgSchemas}`;
    const nodes = [
      createPushwireServer({ store: await pgStore(schema), apiKeys: [KEY] }),
      createPushwireServer({ store: await pgStore(schema), apiKeys: [KEY] }),
    ];
    try {
      const [a, b] = nodes as [PushwireServer, PushwireServer];
      const { deviceId } = (
        await a.app.inject({ method: 'POST', url: '/v1/devices', headers: admin, payload: {} })
      ).json() as { deviceId: string };
      const sub = await a.app.inject({
        method: 'POST',
        url: `/v1/devices/${deviceId}/webpush`,
        headers: admin,
        payload: {},
      });
      expect(sub.statusCode).toBe(201);
      const path = new URL(sub.json().endpoint).pathname;
      expect((await b.app.inject({ method: 'POST', url: path, headers: { ttl: '5' } })).statusCode).toBe(201);
      expect(await b.options.store.read(`d:${deviceId}`, 0, 10, Date.now())).toHaveLength(1);
      // Revoked through B: A's endpoint answers 410 Gone.
      const revoked = await b.app.inject({
        method: 'DELETE',
        url: `/v1/devices/${deviceId}/webpush/${sub.json().subscriptionId}`,
        headers: admin,
      });
      expect(revoked.statusCode).toBeLessThan(300);
      expect((await a.app.inject({ method: 'POST', url: path, headers: { ttl: '5' } })).statusCode).toBe(410);
    } finally {
      await Promise.all(nodes.map((n) => n.close()));
    }
  }, 60_000);
});

describe.each(engines)(
  'web push purge on $name: the sweep drops revoked subscriptions after the retention',
  (engine) => {
    it('410 during the retention, 404 once the sweep purged it; live ones stay', async () => {
      const { store, cleanup } = await engine.open();
      let now = Date.now();
      const registry =
        store.webPushRegistry ??
        (store instanceof SqliteStore
          ? SqliteWebPushRegistry.onStore(store)
          : store instanceof PostgresStore
            ? PostgresWebPushRegistry.onStore(store)
            : undefined);
      if (!registry) throw new Error(`no Web Push registry on ${engine.name}`);
      const purges = recordPurges(registry);
      const server = createPushwireServer({
        store,
        apiKeys: [KEY],
        clock: { now: () => now },
        sweepIntervalMs: 50,
        webPush: { registry, revokedRetention: 60 },
      });
      try {
        const device = (
          await server.app.inject({ method: 'POST', url: '/v1/devices', headers: admin, payload: {} })
        ).json() as { deviceId: string };
        const endpoint = async () => {
          const r = await server.app.inject({
            method: 'POST',
            url: `/v1/devices/${device.deviceId}/webpush`,
            headers: admin,
            payload: {},
          });
          return r.json() as { endpoint: string; subscriptionId: string };
        };
        const [gone, live] = [await endpoint(), await endpoint()];
        const push = (e: { endpoint: string }) =>
          server.app.inject({ method: 'POST', url: new URL(e.endpoint).pathname, headers: { ttl: '5' } });
        await server.app.inject({
          method: 'DELETE',
          url: `/v1/devices/${device.deviceId}/webpush/${gone.subscriptionId}`,
          headers: admin,
        });
        // A sweep runs after the revocation (every 50 ms) but the retention has not passed.
        const ran = purges.cutoffs.length;
        await until(() => purges.cutoffs.length > ran, 'a sweep after the revocation');
        expect((await push(gone)).statusCode).toBe(410);
        now += 61_000;
        await until(() => purges.cutoffs.includes(now - 60_000), 'a sweep past the retention');
        expect((await push(gone)).statusCode).toBe(404);
        expect((await push(live)).statusCode).toBe(201);
        const listed = await server.app.inject({
          method: 'GET',
          url: `/v1/devices/${device.deviceId}/webpush`,
          headers: admin,
        });
        expect(listed.json().subscriptions.map((s: { subscriptionId: string }) => s.subscriptionId)).toEqual([
          live.subscriptionId,
        ]);
      } finally {
        await server.close();
        await cleanup();
      }
    });
  },
);
