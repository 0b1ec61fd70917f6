import { base64urlDecode, base64urlEncode, decryptAes128gcm, generateWebPushKeys } from '@pushwire/protocol';
import { deviceIdOfUaid, PostgresStore, RedisStore, type Store } from '@pushwire/server';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import webpush from 'web-push';
import { AutopushClient } from './helpers/autopush-client.js';
import { startPostgres } from './helpers/postgres.js';
import { startRedis } from './helpers/redis.js';
import { API_KEY, startServer, until } from './helpers/server.js';
import { type BrowserSubscription, sendWebPush } from './helpers/webpush-http.js';

const vapid = webpush.generateVAPIDKeys();
const channel = () => crypto.randomUUID();

/** A channel registered by `c`, with receiver keys to decrypt its notifications. */
async function subscribe(c: AutopushClient, key: string | null = vapid.publicKey) {
  const channelID = channel();
  c.send({ messageType: 'register', channelID, ...(key && { key: `${key}=` }) });
  const reply = await c.next((m) => m.messageType === 'register' && m.channelID === channelID);
  expect(reply.status).toBe(200);
  const keys = await generateWebPushKeys();
  const sub: BrowserSubscription = {
    endpoint: reply.pushEndpoint as string,
    keys: { p256dh: base64urlEncode(keys.publicKeyRaw), auth: base64urlEncode(keys.authSecret) },
  };
  const open = async (m: Record<string, unknown>) =>
    new TextDecoder().decode(await decryptAes128gcm(base64urlDecode(m.data as string), keys));
  return { channelID, sub, open };
}

describe('autopush endpoint (GET /v1/autopush)', () => {
  let s: Awaited<ReturnType<typeof startServer>>;
  beforeAll(async () => {
    s = await startServer({
      autopush: { anonymousHelloRate: 0.001, anonymousHelloBurst: 40 },
      webPush: { rate: 1000, burst: 1000 },
    });
  });
  afterAll(() => s.stop());

  it('is off by default: 404 without the option', async () => {
    const off = await startServer();
    try {
      await expect(AutopushClient.open(off.url)).rejects.toThrow(/404/);
    } finally {
      await off.stop();
    }
  });

  it('hello → uaid; register → a /wp/ endpoint; three VAPID pushes arrive in order, decrypted exactly, once', async () => {
    const c = await AutopushClient.open(s.url);
    const uaid = await c.hello();
    expect(uaid).toMatch(/^[0-9a-f]{32}$/);
    const { channelID, sub, open } = await subscribe(c);
    expect(sub.endpoint).toMatch(new RegExp(`^${s.url}/wp/[A-Za-z0-9_-]{32}$`));
    const sent = ['one', 'two', 'three'];
    for (const p of sent) expect((await sendWebPush(sub, p, vapid)).status).toBe(201);
    const got: string[] = [];
    const versions = new Set<string>();
    for (let i = 0; i < 3; i++) {
      const n = await c.next((m) => m.messageType === 'notification');
      expect(n.channelID).toBe(channelID);
      expect(n.headers).toEqual({ encoding: 'aes128gcm' });
      expect(n.ttl).toBe(600);
      got.push(await open(n));
      versions.add(n.version as string);
      c.send({ messageType: 'ack', updates: [{ channelID, version: n.version, code: 100 }] });
    }
    expect(got).toEqual(sent);
    expect(versions.size).toBe(3);
    // Ping: the empty object both ways.
    c.send({});
    expect(await c.next()).toEqual({});
    c.close();
    await c.whenClosed();

    // Reconnect with the uaid: everything was acked, nothing comes again; a new push does.
    const c2 = await AutopushClient.open(s.url);
    expect(await c2.hello(uaid)).toBe(uaid);
    expect((await sendWebPush(sub, 'four', vapid)).status).toBe(201);
    const n4 = await c2.next((m) => m.messageType === 'notification');
    expect(await open(n4)).toBe('four');
    // Not acked: resent on the next hello with the same version, then acked.
    c2.close();
    await c2.whenClosed();
    const c3 = await AutopushClient.open(s.url);
    await c3.hello(uaid);
    const again = await c3.next((m) => m.messageType === 'notification');
    expect(again.version).toBe(n4.version);
    expect(await open(again)).toBe('four');
    c3.send({ messageType: 'ack', updates: [{ channelID, version: again.version, code: 100 }] });
    expect(c3.messages.filter((m) => m.messageType === 'notification')).toEqual([]);

    // Unregister: the endpoint answers 410 from then on.
    c3.send({ messageType: 'unregister', channelID, code: 200 });
    expect((await c3.next((m) => m.messageType === 'unregister')).status).toBe(200);
    expect((await sendWebPush(sub, 'gone', vapid)).status).toBe(410);
    c3.close();
  });

  it('a push sent while the client is away is delivered at its next hello; TTL 0 is not', async () => {
    const c = await AutopushClient.open(s.url);
    const uaid = await c.hello();
    const { sub, open } = await subscribe(c);
    c.close();
    await c.whenClosed();
    expect((await sendWebPush(sub, 'now or never', vapid, { TTL: 0 })).status).toBe(201);
    expect((await sendWebPush(sub, 'kept', vapid, { TTL: 60 })).status).toBe(201);
    const c2 = await AutopushClient.open(s.url);
    await c2.hello(uaid);
    const n = await c2.next((m) => m.messageType === 'notification');
    expect(await open(n)).toBe('kept');
    expect(n.ttl).toBe(60);
    c2.close();
  });

  it('a backlog of 300 pushes made while away arrives in order, once; acked ones never come again', async () => {
    const c = await AutopushClient.open(s.url);
    const uaid = await c.hello();
    const { channelID, sub } = await subscribe(c, null);
    c.close();
    await c.whenClosed();
    const N = 300;
    for (let i = 0; i < N; i += 50) {
      const batch = Array.from({ length: Math.min(50, N - i) }, () =>
        fetch(sub.endpoint, { method: 'POST', headers: { ttl: '600' } }).then((r) => r.status),
      );
      expect(new Set(await Promise.all(batch))).toEqual(new Set([201]));
    }
    const c2 = await AutopushClient.open(s.url);
    await c2.hello(uaid);
    const versions: string[] = [];
    while (versions.length < N) {
      const n = await c2.next((m) => m.messageType === 'notification');
      expect(n.channelID).toBe(channelID);
      versions.push(n.version as string);
      // Acks come in batches, as a client that is busy would send them.
      if (versions.length % 25 === 0) {
        c2.send({
          messageType: 'ack',
          updates: versions.slice(-25).map((version) => ({ channelID, version, code: 100 })),
        });
      }
    }
    const pub = await Promise.all(
      versions.map((v) => s.server.options.store.getPublish(v).then((r) => r?.entries[0]?.seq ?? -1)),
    );
    const inOrder = pub.every((seq, i) => i === 0 || seq > pub[i - 1]!);
    const counts = {
      sent: N,
      received: versions.length,
      duplicated: versions.length - new Set(versions).size,
    };
    expect({ ...counts, inOrder }).toEqual({ sent: N, received: N, duplicated: 0, inOrder: true });
    const device = deviceIdOfUaid(uaid);
    const last = pub.at(-1)!;
    await until(
      async () => (await s.server.options.store.cursorsOf(device))[`d:${device}`] === last,
      5000,
      'the ack',
    );
    c2.close();
    await c2.whenClosed();
    const c3 = await AutopushClient.open(s.url);
    await c3.hello(uaid);
    // A marker push: an acked one replayed would reach the client before it.
    expect((await fetch(sub.endpoint, { method: 'POST', headers: { ttl: '600' } })).status).toBe(201);
    const marker = await c3.next((m) => m.messageType === 'notification');
    expect(versions).not.toContain(marker.version);
    expect(c3.messages.filter((m) => m.messageType === 'notification')).toEqual([]);
    c3.close();
  });

  it('a newer socket with the same uaid replaces the older one, which gets only a close (4011)', async () => {
    const a = await AutopushClient.open(s.url);
    const uaid = await a.hello();
    await subscribe(a);
    const b = await AutopushClient.open(s.url);
    expect(await b.hello(uaid)).toBe(uaid);
    expect((await a.whenClosed()).code).toBe(4011);
    expect(a.messages).toEqual([]); // nothing that is not autopush
    b.send({});
    expect(await b.next()).toEqual({});
    b.close();
  });

  it('Topic collapses an undelivered older push', async () => {
    const c = await AutopushClient.open(s.url);
    const uaid = await c.hello();
    const { sub, open } = await subscribe(c);
    c.close();
    await c.whenClosed();
    await sendWebPush(sub, 'old score', vapid, { topic: 'score' });
    await sendWebPush(sub, 'new score', vapid, { topic: 'score' });
    const c2 = await AutopushClient.open(s.url);
    await c2.hello(uaid);
    expect(await open(await c2.next((m) => m.messageType === 'notification'))).toBe('new score');
    // A marker push: the collapsed one, had it survived, would come before it.
    await sendWebPush(sub, 'marker', vapid);
    expect(await open(await c2.next((m) => m.messageType === 'notification'))).toBe('marker');
    c2.close();
  });

  it('without a key the channel takes pushes without VAPID; with one, VAPID is required', async () => {
    const c = await AutopushClient.open(s.url);
    await c.hello();
    const open = await subscribe(c, null);
    expect((await sendWebPush(open.sub, 'no vapid', undefined)).status).toBe(201);
    expect(await open.open(await c.next((m) => m.messageType === 'notification'))).toBe('no vapid');
    const keyed = await subscribe(c);
    const r = await sendWebPush(keyed.sub, 'no vapid', undefined);
    expect(r.status).toBe(401);
    expect(JSON.parse(r.body).error).toBe('VAPID_REQUIRED');
    c.close();
  });

  it('hostile: bad JSON, binary, requests before hello, bad channel ids and keys, duplicates', async () => {
    const cases: [unknown, string][] = [
      ['not json', 'BAD_JSON'],
      [{ messageType: 'register', channelID: channel() }, 'HELLO_REQUIRED'],
      [{ messageType: 'teleport' }, 'UNKNOWN_MESSAGE_TYPE'],
      [[1, 2], 'BAD_MESSAGE'],
    ];
    for (const [msg, reason] of cases) {
      const c = await AutopushClient.open(s.url);
      c.send(msg);
      expect(await c.whenClosed()).toEqual({ code: 1002, reason });
    }
    const bin = await AutopushClient.open(s.url);
    bin.ws.send(Buffer.from('{"messageType":"hello"}'), { binary: true });
    expect(await bin.whenClosed()).toEqual({ code: 1002, reason: 'BAD_MESSAGE' });
    const c = await AutopushClient.open(s.url);
    await c.hello();
    c.send({ messageType: 'register', channelID: 'not-a-uuid' });
    expect(await c.whenClosed()).toEqual({ code: 1002, reason: 'BAD_MESSAGE' });

    const d = await AutopushClient.open(s.url);
    await d.hello();
    const bad = channel();
    d.send({ messageType: 'register', channelID: bad, key: 'AAAA' });
    expect(await d.next((m) => m.channelID === bad)).toMatchObject({ status: 400 });
    const { channelID } = await subscribe(d);
    d.send({ messageType: 'register', channelID });
    expect(await d.next((m) => m.channelID === channelID)).toMatchObject({
      messageType: 'register',
      status: 409,
    });
    d.send({ messageType: 'hello', use_webpush: true });
    expect(await d.whenClosed()).toEqual({ code: 1002, reason: 'BAD_MESSAGE' });

    // A uaid this server never issued is answered with a new one.
    const e = await AutopushClient.open(s.url);
    const given = 'f'.repeat(32);
    expect(await e.hello(given)).not.toBe(given);
    e.close();

    await expect(AutopushClient.open(s.url, 'something-else')).rejects.toThrow(/426/);
    // A huge message is refused at the frame level, never buffered.
    const f = await AutopushClient.open(s.url);
    f.send({ messageType: 'hello', broadcasts: { x: 'y'.repeat(100_000) } });
    expect((await f.whenClosed()).code).toBe(1009);

    const m = await fetch(`${s.url}/metrics`, { headers: { authorization: `Bearer ${API_KEY}` } });
    const text = await m.text();
    expect(text).toMatch(/pushwire_autopush_protocol_errors_total [1-9]/);
    expect(text).toMatch(/pushwire_autopush_anonymous_hellos_total [1-9]/);
  });

  it('anonymous hellos are limited per address; a known uaid is not', async () => {
    const t = await startServer({ autopush: { anonymousHelloRate: 0.001, anonymousHelloBurst: 2 } });
    try {
      const a = await AutopushClient.open(t.url);
      const uaid = await a.hello();
      await subscribe(a);
      a.close();
      const b = await AutopushClient.open(t.url);
      await b.hello();
      b.close();
      const c = await AutopushClient.open(t.url);
      c.send({ messageType: 'hello', use_webpush: true });
      expect(await c.whenClosed()).toEqual({ code: 1013, reason: 'RATE_LIMITED' });
      const d = await AutopushClient.open(t.url);
      expect(await d.hello(uaid)).toBe(uaid);
      d.close();
      expect(t.server.autopush?.counters).toMatchObject({
        anonymousHellos: 2,
        refusedHellos: 1,
        devicesCreated: 1,
      });
    } finally {
      await t.stop();
    }
  });

  it('a device holds at most maxSubscriptionsPerDevice channels (429)', async () => {
    const t = await startServer({ autopush: true, webPush: { maxSubscriptionsPerDevice: 2 } });
    try {
      const c = await AutopushClient.open(t.url);
      await c.hello();
      await subscribe(c);
      await subscribe(c);
      const third = channel();
      c.send({ messageType: 'register', channelID: third });
      expect(await c.next((m) => m.channelID === third)).toMatchObject({ status: 429 });
      c.close();
    } finally {
      await t.stop();
    }
  });
});

/** The cluster engines keep Web Push subscriptions too, so autopush serves on them as on SQLite. */
const engines: { name: string; open: () => Promise<{ store: Store; stop: () => Promise<void> }> }[] = [
  {
    name: 'Redis',
    open: async () => {
      const redis = await startRedis();
      return { store: await RedisStore.connect({ url: redis.url }), stop: () => redis.stop() };
    },
  },
  {
    name: 'PostgreSQL',
    open: async () => {
      const pg = await startPostgres();
      return { store: await PostgresStore.connect({ url: pg.url }), stop: () => pg.stop() };
    },
  },
];

describe.each(engines)('autopush on the $name store', (engine) => {
  it('register, three pushes in order once, an unacked one resent at the next hello, unregister → 410', async () => {
    const { store, stop } = await engine.open();
    const s = await startServer({ store, autopush: true, webPush: { rate: 1000, burst: 1000 } });
    try {
      const c = await AutopushClient.open(s.url);
      const uaid = await c.hello();
      const { channelID, sub, open } = await subscribe(c);
      const sent = ['one', 'two', 'three'];
      for (const p of sent) expect((await sendWebPush(sub, p, vapid)).status).toBe(201);
      const got: string[] = [];
      for (let i = 0; i < sent.length; i++) {
        const n = await c.next((m) => m.messageType === 'notification');
        got.push(await open(n));
        if (i < sent.length - 1)
          c.send({ messageType: 'ack', updates: [{ channelID, version: n.version, code: 100 }] });
      }
      expect(got).toEqual(sent);
      c.close();
      await c.whenClosed();
      // 'three' was never acknowledged: it comes again, and only it.
      const c2 = await AutopushClient.open(s.url);
      expect(await c2.hello(uaid)).toBe(uaid);
      const again = await c2.next((m) => m.messageType === 'notification');
      expect(await open(again)).toBe('three');
      c2.send({ messageType: 'ack', updates: [{ channelID, version: again.version, code: 100 }] });
      c2.send({ messageType: 'unregister', channelID, code: 200 });
      expect((await c2.next((m) => m.messageType === 'unregister')).status).toBe(200);
      expect(c2.messages.filter((m) => m.messageType === 'notification')).toEqual([]); // nothing after it
      expect((await sendWebPush(sub, 'gone', vapid)).status).toBe(410);
      c2.close();
    } finally {
      await s.stop();
      await stop();
    }
  }, 60_000);
});
