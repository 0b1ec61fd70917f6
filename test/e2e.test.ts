import { createClient, memoryStorage, type PushwireClient } from '@pushwire/client';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { echo, nothingPending } from './helpers/barrier.js';
import { Collector } from './helpers/collector.js';
import { API_KEY, http, registerDevice, startServer, until } from './helpers/server.js';

type Started = Awaited<ReturnType<typeof startServer>>;

describe('end to end: SDK ↔ real server on loopback', () => {
  let s: Started;
  /** Added to the server's clock: expiry is tested by moving it, not by waiting out a TTL. */
  let skewMs = 0;
  const clients: PushwireClient[] = [];
  beforeAll(async () => {
    s = await startServer({ clock: { now: () => Date.now() + skewMs } });
  });
  afterEach(async () => {
    await Promise.all(clients.splice(0).map((c) => c.close()));
  });
  afterAll(() => s.stop());

  const publish = async (body: Record<string, unknown>) => {
    const r = await http<{ id: string }>(s.url, 'POST', '/v1/messages', body);
    expect(r.status).toBe(202);
    return r.body.id;
  };

  function connect(opts: Parameters<typeof createClient>[0]) {
    const c = createClient(opts);
    clients.push(c);
    const col = new Collector();
    c.on('message', col.onMessage);
    return { c, col };
  }

  it('registers with the API key, then receives a published notification', async () => {
    const storage = memoryStorage();
    const { c, col } = connect({ url: s.url, register: { apiKey: API_KEY, user: 'carol' }, storage });
    const notes: unknown[] = [];
    c.on('notification', (m) => notes.push(m.notification));
    await until(() => c.state === 'open', 5000, 'open');
    const id = await publish({
      to: { user: 'carol' },
      notification: { title: 'Hi', body: 'there' },
      data: { n: 1 },
    });
    await until(() => col.received === 1, 5000, 'message');
    expect(col.messages[0]).toMatchObject({
      id,
      seq: 1,
      data: { n: 1 },
      notification: { title: 'Hi', body: 'there' },
    });
    expect(notes).toEqual([{ title: 'Hi', body: 'there' }]);
    expect((await storage.load())?.credentials?.deviceId).toBeTruthy();
  });

  it('offline device: 200 messages published while away arrive after reconnect, in order, once', async () => {
    const dev = await registerDevice(s.url);
    const storage = memoryStorage();
    const first = connect({ url: s.url, credentials: dev, storage });
    await until(() => first.c.state === 'open', 5000, 'open');
    await first.c.close();
    const sent: string[] = [];
    for (let i = 0; i < 200; i++) sent.push(await publish({ to: { device: dev.deviceId }, data: { i } }));
    const { c, col } = connect({ url: s.url, credentials: dev, storage });
    await until(() => col.received === 200, 15_000, '200 messages');
    // A marker after the 200: a duplicate or a stray replay would arrive before it.
    const marker = await echo(s.url, { device: dev.deviceId }, (id) => col.has([id]));
    expect(col.received).toBe(201);
    expect(col.duplicated).toBe(0);
    expect(col.lost(sent)).toEqual([]);
    expect(col.outOfOrder()).toEqual([]);
    expect(col.messages.map((m) => m.id)).toEqual([...sent, marker]);
    expect(col.messages.slice(0, 200).map((m) => (m.data as { i: number }).i)).toEqual([
      ...Array(200).keys(),
    ]);
    // Acked: the server holds nothing pending for this device any more.
    await nothingPending(s.url, dev.deviceId);
    await c.close();
  });

  it('resumes from stored cursors: a restart of the client repeats nothing', async () => {
    const dev = await registerDevice(s.url);
    const storage = memoryStorage();
    const a = connect({ url: s.url, credentials: dev, storage });
    await until(() => a.c.state === 'open', 5000, 'open');
    const ids = [
      await publish({ to: { device: dev.deviceId } }),
      await publish({ to: { device: dev.deviceId } }),
    ];
    await until(() => a.col.received === 2, 5000, 'first two');
    await a.c.close();
    ids.push(await publish({ to: { device: dev.deviceId } }));
    const b = connect({ url: s.url, credentials: dev, storage });
    await until(() => b.col.received === 1, 5000, 'third');
    const marker = await echo(s.url, { device: dev.deviceId }, (id) => b.col.has([id]));
    expect(b.col.messages.map((m) => m.id)).toEqual([ids[2], marker]);
  });

  it('the SDK drops a message id it has already processed even when the server replays it', async () => {
    const dev = await registerDevice(s.url);
    const storage = memoryStorage();
    const a = connect({ url: s.url, credentials: dev, storage });
    await until(() => a.c.state === 'open', 5000, 'open');
    const id = await publish({ to: { device: dev.deviceId } });
    await until(() => a.col.received === 1, 5000, 'message');
    await a.c.close();
    // Forget the cursor but keep the dedupe window: the server replays, the app must not see it again.
    const state = (await storage.load())!;
    await storage.save({ ...state, cursors: {} });
    const b = connect({ url: s.url, credentials: dev, storage });
    await until(() => b.c.state === 'open', 5000, 'open');
    // The replay of `id` comes before the marker on the device stream: only the marker reaches the app.
    const marker = await echo(s.url, { device: dev.deviceId }, (m) => b.col.has([m]));
    expect(b.col.messages.map((m) => m.id)).toEqual([marker]);
    expect(a.col.messages[0]!.id).toBe(id);
  });

  it('TTL 0 reaches an online device and never an offline one', async () => {
    const online = await registerDevice(s.url);
    const offline = await registerDevice(s.url);
    const { c, col } = connect({ url: s.url, credentials: online, storage: memoryStorage() });
    await until(() => c.state === 'open', 5000, 'open');
    const now = await publish({ to: { device: online.deviceId }, ttl: 0, data: 'now' });
    await publish({ to: { device: offline.deviceId }, ttl: 0, data: 'never' });
    await until(() => col.received === 1, 5000, 'ttl 0 message');
    expect(col.messages[0]!.id).toBe(now);
    const late = connect({ url: s.url, credentials: offline, storage: memoryStorage() });
    await until(() => late.c.state === 'open', 5000, 'open');
    const marker = await echo(s.url, { device: offline.deviceId }, (id) => late.col.has([id]));
    expect(late.col.messages.map((m) => m.id)).toEqual([marker]);
  });

  it('an expired message is never delivered', async () => {
    const dev = await registerDevice(s.url);
    await publish({ to: { device: dev.deviceId }, ttl: 1, data: 'stale' });
    const fresh = await publish({ to: { device: dev.deviceId }, ttl: 60, data: 'fresh' });
    skewMs += 1100; // the server's clock passes the 1 s TTL
    const { c, col } = connect({ url: s.url, credentials: dev, storage: memoryStorage() });
    await until(() => col.received === 1, 5000, 'fresh message');
    const marker = await echo(s.url, { device: dev.deviceId }, (id) => col.has([id]));
    expect(col.messages.map((m) => m.id)).toEqual([fresh, marker]);
    expect(c.state).toBe('open');
  });

  it('a collapse key replaces an undelivered older message', async () => {
    const dev = await registerDevice(s.url);
    await publish({ to: { device: dev.deviceId }, collapseKey: 'score', data: '1-0' });
    await publish({ to: { device: dev.deviceId }, data: 'other' });
    const last = await publish({ to: { device: dev.deviceId }, collapseKey: 'score', data: '2-0' });
    const { col } = connect({ url: s.url, credentials: dev, storage: memoryStorage() });
    await until(() => col.received === 2, 5000, 'two messages');
    await echo(s.url, { device: dev.deviceId }, (id) => col.has([id]));
    expect(col.messages.map((m) => m.data)).toEqual(['other', '2-0', { marker: true }]);
    expect(col.messages[1]!.id).toBe(last);
  });

  it('topics: subscribe from the SDK, broadcast reaches every subscriber once', async () => {
    const devs = await Promise.all([1, 2, 3].map(() => registerDevice(s.url)));
    const conns = devs.map((d) => connect({ url: s.url, credentials: d, storage: memoryStorage() }));
    await Promise.all(conns.map(({ c }) => c.subscribe('weather')));
    const ids = [
      await publish({ to: { topic: 'weather' }, data: 'rain' }),
      await publish({ to: { topic: 'weather' }, data: 'sun' }),
    ];
    for (const { col } of conns) await until(() => col.received === 2, 5000, 'broadcast');
    // A marker on the topic: a second copy of either broadcast would reach each app before it.
    const marker = await echo(s.url, { topic: 'weather' }, (id) => conns.every(({ col }) => col.has([id])));
    for (const { col } of conns) {
      expect(col.messages.map((m) => m.id)).toEqual([...ids, marker]);
      expect(col.duplicated).toBe(0);
    }
  });

  it('publisher-supplied id: publishing twice delivers once', async () => {
    const dev = await registerDevice(s.url);
    const { c, col } = connect({ url: s.url, credentials: dev, storage: memoryStorage() });
    await until(() => c.state === 'open', 5000, 'open');
    await publish({ to: { device: dev.deviceId }, id: 'invoice-42' });
    await publish({ to: { device: dev.deviceId }, id: 'invoice-42' });
    await until(() => col.received === 1, 5000, 'message');
    const marker = await echo(s.url, { device: dev.deviceId }, (id) => col.has([id]));
    expect(col.messages.map((m) => m.id)).toEqual(['invoice-42', marker]);
  });

  it('async iterator yields messages in order', async () => {
    const dev = await registerDevice(s.url);
    const c = createClient({ url: s.url, credentials: dev, storage: memoryStorage() });
    clients.push(c);
    // Iterating from before the publishes: an iterator yields what arrives once it exists, and the
    // session may well be open (and the messages delivered) before both publishes are answered.
    const iterator = c[Symbol.asyncIterator]();
    const ids = [
      await publish({ to: { device: dev.deviceId } }),
      await publish({ to: { device: dev.deviceId } }),
    ];
    const got: string[] = [];
    for await (const m of { [Symbol.asyncIterator]: () => iterator }) {
      got.push(m.id);
      if (got.length === 2) break;
    }
    expect(got).toEqual(ids);
  });
});
