import { join } from 'node:path';
import { SqliteStore } from '@pushwire/server';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pendingOf } from './helpers/barrier.js';
import { RawClient } from './helpers/raw-client.js';
import { http, registerDevice, startServer, tempDir, until } from './helpers/server.js';

type Started = Awaited<ReturnType<typeof startServer>>;

describe('gateway: handshake, frames, bad input (real sockets)', () => {
  let s: Started;
  beforeAll(async () => {
    s = await startServer({ handshakeTimeoutMs: 500, idleGrace: 1, minHeartbeat: 1 });
  });
  afterAll(() => s.stop());

  async function openSession(extra: Record<string, unknown> = {}) {
    const dev = await registerDevice(s.url);
    const c = new RawClient(s.url);
    await c.opened();
    c.hello(dev.deviceId, dev.token, extra);
    const welcome = await c.next('welcome');
    return { c, dev, welcome };
  }

  it('refuses an upgrade without the pushwire.v1 subprotocol with 426', async () => {
    const c = new RawClient(s.url, null);
    await expect(c.opened()).rejects.toMatchObject({ status: 426 });
  });

  it('welcomes a valid hello with the accepted heartbeat and idle limit', async () => {
    const { c, welcome } = await openSession({ hb: 30 });
    expect(welcome).toMatchObject({ v: 1, hb: 30, idle: 31, maxPayload: 4096, topics: [] });
    c.close();
  });

  it('closes a socket that sends no hello within the handshake deadline', async () => {
    const c = new RawClient(s.url);
    await c.opened();
    const t0 = Date.now();
    const err = await c.next('error', 3000);
    expect(err).toMatchObject({ code: 'HANDSHAKE_TIMEOUT', fatal: true });
    expect((await c.whenClosed()).code).toBe(4008);
    // 500 ms deadline: well before the client would notice anything itself, with room for a
    // loaded machine's late timers.
    expect(Date.now() - t0).toBeLessThan(3500);
  });

  it('lets go of a handshake deadline at the hello, not when the deadline passes', async () => {
    const idle = new RawClient(s.url);
    await idle.opened();
    await until(() => s.server.gateway.handshaking === 1, 3000, 'the idle socket is pending');
    const { c } = await openSession();
    // The session's handshake is no longer held (only the idle socket's, until its 500 ms deadline).
    expect(s.server.gateway.handshaking).toBe(1);
    expect((await idle.whenClosed()).code).toBe(4008);
    expect(s.server.gateway.handshaking).toBe(0);
    c.close();
  });

  it('refuses a wrong token with UNAUTHORIZED and close code 4001', async () => {
    const dev = await registerDevice(s.url);
    const c = new RawClient(s.url);
    await c.opened();
    c.hello(dev.deviceId, 'not-the-token');
    expect(await c.next('error')).toMatchObject({ code: 'UNAUTHORIZED', fatal: true });
    expect((await c.whenClosed()).code).toBe(4001);
  });

  it('refuses a first frame that is not hello', async () => {
    const c = new RawClient(s.url);
    await c.opened();
    c.send('p');
    expect(await c.next('error')).toMatchObject({ code: 'HELLO_REQUIRED', fatal: true });
    expect((await c.whenClosed()).code).toBe(4000);
  });

  it('answers malformed, unknown and binary frames with non-fatal errors and keeps serving', async () => {
    const { c } = await openSession();
    c.send('{not json');
    expect(await c.next('error')).toMatchObject({ code: 'BAD_FRAME', fatal: false });
    c.send('{"t":"launch"}');
    expect(await c.next('error')).toMatchObject({ code: 'UNKNOWN_FRAME', fatal: false });
    c.send('{"t":"ack","acks":{"d:x":1},"extra":true}');
    expect(await c.next('error')).toMatchObject({ code: 'BAD_FRAME', fatal: false });
    c.send(Buffer.from([1, 2, 3]));
    expect(await c.next('error')).toMatchObject({ code: 'BAD_FRAME', fatal: false });
    c.send('{"t":"sub","topic":"bad topic!"}');
    expect(await c.next('error')).toMatchObject({ code: 'BAD_TOPIC', fatal: false });
    c.send('p');
    expect(await c.next('pong')).toEqual({ t: 'pong' });
    expect(c.closed).toBeUndefined();
    c.close();
  });

  it('replays the device stream after the presented cursor, in order', async () => {
    const dev = await registerDevice(s.url);
    for (let i = 1; i <= 5; i++) {
      const r = await http(s.url, 'POST', '/v1/messages', { to: { device: dev.deviceId }, data: { i } });
      expect(r.status).toBe(202);
    }
    const c = new RawClient(s.url);
    await c.opened();
    c.hello(dev.deviceId, dev.token, { cursors: { [`d:${dev.deviceId}`]: 2 } });
    await c.next('welcome');
    const seqs = [];
    for (let i = 0; i < 3; i++) seqs.push((await c.next('msg')).seq);
    expect(seqs).toEqual([3, 4, 5]);
    c.close();
  });

  it('follows the declared heartbeat: closes a silent session after hb + grace, keeps a pinging one', async () => {
    const silent = await openSession({ hb: 1 });
    const pinging = await openSession({ hb: 1 });
    const timer = setInterval(() => pinging.c.send('p'), 500);
    const t0 = Date.now();
    expect((await silent.c.whenClosed(10_000)).code).toBe(4010);
    const detected = Date.now() - t0;
    // Idle limit hb + grace = 2 s: never before it; after it within the sweep's granularity, with
    // room for a loaded 2-core machine (timers and the sweep run late there, never early).
    expect(detected).toBeGreaterThanOrEqual(1500);
    expect(detected).toBeLessThan(6000);
    // The pinging session outlives the idle limit twice over (its own 2 s from t0, then 2 s more):
    // it is still served, which a pong to a fresh request shows (not just "no close seen yet").
    await until(() => Date.now() - t0 >= 4000, 10_000, 'two idle limits');
    clearInterval(timer);
    pinging.c.send('{"t":"sub","topic":"still-here","ref":7}');
    expect(await pinging.c.next('subbed', 5000, (f) => f.ref === 7)).toMatchObject({ topic: 'still-here' });
    expect(pinging.c.closed).toBeUndefined();
    pinging.c.close();
  });

  it('a ping with hb changes the idle timer at once', async () => {
    const { c } = await openSession({ hb: 60 });
    c.send('{"t":"ping","hb":1}');
    await c.next('pong');
    expect((await c.whenClosed(5000)).code).toBe(4010);
  });

  it('low urgency waits for the device heartbeat; anything else flushes it first, in order', async () => {
    const { c, dev } = await openSession({ hb: 30 });
    const delivered = s.server.hub.counters.delivered;
    const low = await http<{ id: string }>(s.url, 'POST', '/v1/messages', {
      to: { device: dev.deviceId },
      urgency: 'low',
      data: 1,
    });
    // Barrier: the server has handed the entry to the session (its delivered counter moved) and
    // still reports it pending, one HTTP round trip later. A frame written then would be here now.
    await until(() => s.server.hub.counters.delivered >= delivered + 1, 5000, 'the hand-over');
    expect(await pendingOf(s.url, dev.deviceId)).toBe(1);
    expect(c.frames.filter((f) => f.t === 'msg')).toEqual([]);
    c.send('p');
    const first = await c.next('msg');
    expect(first).toMatchObject({ id: low.body.id, urgency: 'low' });
    await c.next('pong');
    // Held again, then a normal message: both arrive, the held one first.
    const low2 = await http<{ id: string }>(s.url, 'POST', '/v1/messages', {
      to: { device: dev.deviceId },
      urgency: 'very-low',
    });
    const normal = await http<{ id: string }>(s.url, 'POST', '/v1/messages', {
      to: { device: dev.deviceId },
    });
    const a = await c.next('msg');
    const b = await c.next('msg');
    expect([a.id, b.id]).toEqual([low2.body.id, normal.body.id]);
    expect(b.seq).toBe(a.seq + 1);
    c.close();
  });

  it('a second session of the same device replaces the first', async () => {
    const { c, dev } = await openSession();
    const c2 = new RawClient(s.url);
    await c2.opened();
    c2.hello(dev.deviceId, dev.token);
    await c2.next('welcome');
    expect(await c.next('error')).toMatchObject({ code: 'REPLACED', fatal: true });
    expect((await c.whenClosed()).code).toBe(4011);
    // The device's own stream now goes to the new session only.
    const r = await http<{ id: string }>(s.url, 'POST', '/v1/messages', { to: { device: dev.deviceId } });
    expect(await c2.next('msg')).toMatchObject({ id: r.body.id, stream: `d:${dev.deviceId}` });
    expect(c.frames.filter((f) => f.t === 'msg')).toEqual([]);
    c2.close();
  });

  it('subscribes over the socket and receives topic messages live', async () => {
    const { c } = await openSession();
    c.send('{"t":"sub","topic":"news","ref":7}');
    const subbed = await c.next('subbed');
    expect(subbed).toMatchObject({ topic: 'news', ref: 7 });
    const r = await http<{ id: string }>(s.url, 'POST', '/v1/messages', {
      to: { topic: 'news' },
      data: 'hi',
    });
    const m = await c.next('msg');
    expect(m).toMatchObject({ id: r.body.id, stream: 't:news', seq: subbed.seq + 1, data: 'hi' });
    c.close();
  });

  it('terminates a client that stops reading instead of buffering without bound', async () => {
    const small = await startServer({
      maxBufferedBytes: 64 * 1024,
      maxPayload: 4096,
      slowConsumerTimeoutMs: 1000,
    });
    try {
      const dev = await registerDevice(small.url);
      const c = new RawClient(small.url);
      await c.opened();
      c.hello(dev.deviceId, dev.token);
      await c.next('welcome');
      // Stop reading: the kernel buffers fill, then the server's user-space queue grows.
      (c.ws as unknown as { _socket: import('node:net').Socket })._socket.pause();
      const payload = 'x'.repeat(4000);
      let sent = 0;
      const session = () => small.server.hub.sessionOf(dev.deviceId);
      let maxBuffered = 0;
      while (session() && sent < 5000) {
        maxBuffered = Math.max(maxBuffered, session()?.buffered ?? 0);
        await Promise.all(
          Array.from({ length: 50 }, () =>
            http(small.url, 'POST', '/v1/messages', { to: { device: dev.deviceId }, data: payload }),
          ),
        );
        sent += 50;
      }
      expect(session()).toBeUndefined();
      expect(small.server.gateway.counters.slowConsumers).toBe(1);
      // Bounded: closed long before every message could have been buffered, and the server never
      // queued more than its high-water mark (half the bound here) and a message.
      expect(sent).toBeLessThan(5000);
      expect(maxBuffered).toBeLessThanOrEqual(32 * 1024 + 4200);
      // The server still serves others.
      const other = await registerDevice(small.url);
      const c2 = new RawClient(small.url);
      await c2.opened();
      c2.hello(other.deviceId, other.token);
      await c2.next('welcome');
      c2.close();
      // And the slow device's messages are all still pending for its next session.
      const info = await http<{ pending: number }>(small.url, 'GET', `/v1/devices/${dev.deviceId}`);
      expect(info.body.pending).toBe(sent);
    } finally {
      await small.stop();
    }
  }, 60_000);

  it('counts connections down when clients leave', async () => {
    const { c } = await openSession();
    const before = s.server.gateway.connections;
    c.close();
    await until(() => s.server.gateway.connections === before - 1, 3000, 'connection count');
  });
});

describe('gateway: a subscribe that races the handshake', () => {
  it('is applied when the session attaches, not lost until the next reconnect', async () => {
    const { dir, cleanup } = tempDir();
    const store = SqliteStore.open({ path: join(dir, 'pushwire.db') });
    // Hold the handshake right after it read the device's topics (a real store, slowed down).
    let release: (() => void) | undefined;
    let readTopics = false;
    const gate = new Promise<void>((r) => {
      release = r;
    });
    const topicsOf = store.topicsOf.bind(store);
    store.topicsOf = async (id: string) => {
      const topics = await topicsOf(id);
      readTopics = true;
      await gate;
      return topics;
    };
    const s = await startServer({ store });
    try {
      const dev = await registerDevice(s.url);
      const c = new RawClient(s.url);
      await c.opened();
      c.hello(dev.deviceId, dev.token);
      await until(() => readTopics, 5000, 'topics read');
      expect((await http(s.url, 'PUT', `/v1/devices/${dev.deviceId}/topics/late`)).status).toBe(200);
      release?.();
      expect((await c.next('welcome')).topics).toEqual([]);
      const r = await http<{ id: string }>(s.url, 'POST', '/v1/messages', { to: { topic: 'late' } });
      expect(await c.next('msg')).toMatchObject({ id: r.body.id, stream: 't:late' });
      c.close();
    } finally {
      await s.stop();
      cleanup();
    }
  });
});

describe('gateway: admission control', () => {
  it('gives each refused client its own slot at the admission rate (retryAfter spread, not bunched)', async () => {
    // 2 sessions/s: slots 500 ms apart, wider than the ≤ 250 ms jitter added to each.
    const s = await startServer({ admissionRate: 2, admissionBurst: 2 });
    try {
      const devs = await Promise.all(Array.from({ length: 6 }, () => registerDevice(s.url)));
      const clients = devs.map(() => new RawClient(s.url));
      await Promise.all(clients.map((c) => c.opened()));
      // Admission is decided after a hello with a valid token: each device gets a welcome or an error.
      for (const [i, c] of clients.entries()) c.hello(devs[i]!.deviceId, devs[i]!.token);
      const answers = await Promise.all(
        clients.map(async (c) => {
          const isAnswer = (f: { t: string }) => f.t === 'welcome' || f.t === 'error';
          await until(() => c.frames.some(isAnswer), 3000, 'welcome or error');
          return c.frames.find(isAnswer);
        }),
      );
      const refused = answers.filter((a) => a?.t === 'error');
      const admitted = answers.filter((a) => a?.t === 'welcome');
      expect(admitted).toHaveLength(2);
      expect(refused).toHaveLength(4);
      for (const e of refused) expect(e).toMatchObject({ code: 'RATE_LIMITED', fatal: true });
      // Each refused client was told a later slot than the one before it (500 ms on, give or take
      // the jitter), so they come back one by one; before, they were told "next token + up to
      // 1 s", all within the same second.
      const waits = refused.map((e) => Number(e.retryAfter)).sort((a, b) => a - b);
      for (let k = 1; k < waits.length; k++) expect(waits[k]! - waits[k - 1]!).toBeGreaterThanOrEqual(200);
      expect(waits.at(-1)!).toBeLessThanOrEqual(4 * 500 + 300);
      for (const c of clients) c.close();
    } finally {
      await s.stop();
    }
  });
});
