import type { Socket } from 'node:net';
import { join } from 'node:path';
import { SqliteStore } from '@pushwire/server';
import { afterEach, describe, expect, it } from 'vitest';
import { RawClient } from './helpers/raw-client.js';
import { http, registerDevice, startServer, tempDir, until } from './helpers/server.js';

/** Issue 12: what one client can take from the others (admission, early frames, request rate, cursors). */

type Started = Awaited<ReturnType<typeof startServer>>;

const socketOf = (c: RawClient) => (c.ws as unknown as { _socket: Socket })._socket;

describe('gateway limits (real sockets)', () => {
  let s: Started | undefined;
  const clients: RawClient[] = [];
  afterEach(async () => {
    for (const c of clients.splice(0)) c.ws.terminate();
    await s?.stop();
    s = undefined;
  });
  const open = async (url: string, options = {}) => {
    const c = new RawClient(url, undefined, options);
    clients.push(c);
    await c.opened();
    return c;
  };

  it('anonymous sockets that never say hello spend no admission tokens: a registered device still connects', async () => {
    // A burst of 20 and a slow refill: before, the first 20 anonymous upgrades took every token.
    s = await startServer({ admissionBurst: 20, admissionRate: 0.5 });
    const dev = await registerDevice(s.url);
    const anonymous = await Promise.all(Array.from({ length: 200 }, () => open(s!.url)));
    await until(() => s!.server.gateway.connections >= 200, 5000, 'anonymous sockets pending');
    const c = await open(s.url);
    c.hello(dev.deviceId, dev.token);
    expect((await c.next('welcome')).t).toBe('welcome');
    expect(anonymous.filter((a) => a.closed)).toHaveLength(0);
    expect(s.server.gateway.counters.refused).toBe(0);
  });

  it('bounds pending handshakes per address (RATE_LIMITED with retryAfter); other addresses connect', async () => {
    s = await startServer({ maxPendingPerAddress: 10 });
    const dev = await registerDevice(s.url);
    const flood = await Promise.all(Array.from({ length: 30 }, () => open(s!.url)));
    await until(() => flood.filter((a) => a.closed).length === 20, 5000, '20 refused');
    for (const a of flood.filter((x) => x.closed)) {
      expect(a.closed?.code).toBe(4029);
      expect(await a.next('error', 100)).toMatchObject({ code: 'RATE_LIMITED', fatal: true });
      expect(a.frames).toHaveLength(0);
    }
    const refusedError = flood.find((a) => a.closed);
    expect(refusedError).toBeDefined();
    // A device on another address is not affected.
    const c = await open(s.url, { localAddress: '127.0.0.2' });
    c.hello(dev.deviceId, dev.token);
    await c.next('welcome');
    c.close();
    // Once the flood's handshakes end, the flooded address connects again.
    for (const a of flood) a.ws.terminate();
    await until(() => s!.server.gateway.connections <= 1, 5000, 'flood gone');
    const d = await open(s.url);
    d.hello(dev.deviceId, dev.token);
    await d.next('welcome');
  });

  it('refused anonymous sockets carry a retryAfter', async () => {
    s = await startServer({ maxPendingPerAddress: 1 });
    await open(s.url);
    const second = await open(s.url);
    const e = await second.next('error');
    expect(e).toMatchObject({ code: 'RATE_LIMITED', fatal: true });
    expect(e.retryAfter).toBeGreaterThanOrEqual(1000);
  });

  describe('frames pipelined after hello', () => {
    /** A server whose handshake waits at the topics read until released. */
    async function gated() {
      const { dir, cleanup } = tempDir();
      const store = SqliteStore.open({ path: join(dir, 'pushwire.db') });
      let release: () => void = () => {};
      const gate = new Promise<void>((r) => {
        release = r;
      });
      const topicsOf = store.topicsOf.bind(store);
      const held = { entered: false };
      store.topicsOf = async (id: string) => {
        const topics = await topicsOf(id);
        held.entered = true;
        await gate;
        return topics;
      };
      const started = await startServer({ store });
      return { started, release, cleanup, held };
    }

    it('are all handled, in order, after welcome (not just the first 16)', async () => {
      const g = await gated();
      s = g.started;
      try {
        const dev = await registerDevice(s.url);
        const c = await open(s.url);
        socketOf(c).cork();
        c.hello(dev.deviceId, dev.token);
        for (let ref = 1; ref <= 100; ref++) c.send(JSON.stringify({ t: 'sub', topic: `early${ref}`, ref }));
        socketOf(c).uncork();
        // Barriers instead of a sleep: the handshake is held at the gate, and the server has read
        // every byte the client wrote (the 100 frames arrived while it is held).
        await until(() => g.held.entered, 5000, 'the handshake at the gate');
        const [server] = s.server.gateway.sockets.open;
        const read = () => (server as unknown as { socket: { bytesRead: number } }).socket.bytesRead;
        await until(() => read() === socketOf(c).bytesWritten, 5000, 'the frames read');
        g.release();
        await c.next('welcome');
        const refs: number[] = [];
        for (let k = 0; k < 100; k++) refs.push(Number((await c.next('subbed')).ref));
        expect(refs).toEqual(Array.from({ length: 100 }, (_, k) => k + 1));
        const info = await http<{ topics: string[] }>(s.url, 'GET', `/v1/devices/${dev.deviceId}`);
        expect(info.body.topics).toHaveLength(100);
      } finally {
        g.cleanup();
      }
    });

    it('past 64 KiB before welcome are refused with a fatal RATE_LIMITED, not dropped silently', async () => {
      const g = await gated();
      s = g.started;
      try {
        const dev = await registerDevice(s.url);
        const c = await open(s.url);
        c.hello(dev.deviceId, dev.token);
        const big = JSON.stringify({ t: 'ping', pad: 'x'.repeat(4000) });
        for (let k = 0; k < 20; k++) c.send(big);
        const e = await c.next('error');
        expect(e).toMatchObject({ code: 'RATE_LIMITED', fatal: true });
        expect((await c.whenClosed()).code).toBe(4029);
        g.release();
      } finally {
        g.cleanup();
      }
    });
  });

  it('a sub/unsub flood is rate-limited per session and does not delay an unrelated publish', async () => {
    s = await startServer();
    const [flooder, other] = await Promise.all([registerDevice(s.url), registerDevice(s.url)]);
    const f = await open(s.url);
    f.hello(flooder.deviceId, flooder.token);
    await f.next('welcome');
    const o = await open(s.url);
    o.hello(other.deviceId, other.token);
    await o.next('welcome');

    const N = 100_000;
    for (let i = 0; i < N; i++) {
      f.send(
        JSON.stringify(
          i % 2
            ? { t: 'unsub', topic: `churn${i % 500}`, ref: i }
            : { t: 'sub', topic: `churn${i % 500}`, ref: i },
        ),
      );
    }
    // The server is working through the flood: its first refusal came back.
    const limited = await f.next('error', 10_000, (e) => e.code === 'RATE_LIMITED');
    expect(limited).toMatchObject({ fatal: false });
    expect(limited.retryAfter).toBeGreaterThan(0);
    const t0 = performance.now();
    const r = await http<{ id: string }>(s.url, 'POST', '/v1/messages', {
      to: { device: other.deviceId },
      data: 1,
    });
    expect(r.status).toBe(202);
    const m = await o.next('msg', 10_000);
    const latency = performance.now() - t0;
    expect(m.id).toBe(r.body.id);
    expect(latency).toBeLessThan(500);
    // Persistent abuse closes the session (4029); either way the flooder was told, never ignored.
    await f.whenClosed(30_000);
    expect(f.closed?.code).toBe(4029);
    console.log(`publish latency during a ${N}-frame sub/unsub flood: ${latency.toFixed(0)} ms`);
  }, 60_000);

  describe('cursors beyond the head', () => {
    it('a hello cursor of 2^53-1 is taken as the head: the next message arrives', async () => {
      s = await startServer();
      const dev = await registerDevice(s.url);
      const stream = `d:${dev.deviceId}`;
      await http(s.url, 'POST', '/v1/messages', { to: { device: dev.deviceId }, data: 'before' });
      const c = await open(s.url);
      c.hello(dev.deviceId, dev.token, { cursors: { [stream]: Number.MAX_SAFE_INTEGER } });
      await c.next('welcome');
      const r = await http<{ id: string }>(s.url, 'POST', '/v1/messages', {
        to: { device: dev.deviceId },
        data: 'after',
      });
      expect(await c.next('msg')).toMatchObject({ id: r.body.id, stream, seq: 2, data: 'after' });
      // The clamped cursor is what the session may acknowledge: an ack of 2^53-1 records 2.
      c.send(JSON.stringify({ t: 'ack', acks: { [stream]: Number.MAX_SAFE_INTEGER } }));
      await until(async () => (await s!.server.hub.isOnline(dev.deviceId)) && true, 1000);
      c.close();
      await c.whenClosed();
      const d = await open(s.url);
      d.hello(dev.deviceId, dev.token);
      await d.next('welcome');
      const r2 = await http<{ id: string }>(s.url, 'POST', '/v1/messages', {
        to: { device: dev.deviceId },
        data: 3,
      });
      expect(await d.next('msg')).toMatchObject({ id: r2.body.id, seq: 3 });
    });

    it('the same for a topic cursor', async () => {
      s = await startServer();
      const dev = await registerDevice(s.url);
      await http(s.url, 'PUT', `/v1/devices/${dev.deviceId}/topics/news`);
      const c = await open(s.url);
      c.hello(dev.deviceId, dev.token, { cursors: { 't:news': 2 ** 53 - 1 } });
      await c.next('welcome');
      const r = await http<{ id: string }>(s.url, 'POST', '/v1/messages', { to: { topic: 'news' }, data: 1 });
      expect(await c.next('msg')).toMatchObject({ id: r.body.id, stream: 't:news' });
    });
  });
});
