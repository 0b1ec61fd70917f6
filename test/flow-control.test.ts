import type { Socket } from 'node:net';
import { SUBPROTOCOL } from '@pushwire/protocol';
import { afterEach, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { http, registerDevice, startServer, until } from './helpers/server.js';

/**
 * Flow-controlled delivery (issue 12): a backlog far past the send-buffer bound goes out at the
 * reader's pace, all of it, in order, once, on one connection; only a client that stops reading
 * is dropped. Real server, real sockets, real SQLite file.
 */

type Started = Awaited<ReturnType<typeof startServer>>;

/** ~4,000 B per message (the payload limit is 4,096). */
const PAD = 'x'.repeat(3950);

/** Publishes `n` messages numbered from `from` to `to`, through the batch API (1,000 per request). */
async function publishMany(url: string, to: Record<string, string>, from: number, n: number): Promise<void> {
  for (let i = 0; i < n; i += 1000) {
    const messages = Array.from({ length: Math.min(1000, n - i) }, (_, k) => ({
      to,
      data: { n: from + i + k, pad: PAD },
    }));
    const r = await http<{ accepted: number }>(url, 'POST', '/v1/messages/batch', { messages });
    if (r.status !== 202 || r.body.accepted !== messages.length) throw new Error(`batch: ${r.status}`);
  }
}

/** A bare WebSocket client that counts what it receives instead of keeping it (80 MB would). */
class Counter {
  readonly ws: WebSocket;
  welcome = false;
  received = 0;
  duplicated = 0;
  /** Arrivals whose seq was not the one after the previous on its stream. */
  gaps = 0;
  readonly lastSeq = new Map<string, number>();
  readonly seen: Uint8Array;
  closed: number | undefined;
  errors: unknown[] = [];

  constructor(url: string, expected: number, first: Map<string, number> = new Map()) {
    this.seen = new Uint8Array(expected);
    for (const [s, seq] of first) this.lastSeq.set(s, seq);
    this.ws = new WebSocket(`${url.replace(/^http/, 'ws')}/v1/connect`, [SUBPROTOCOL]);
    this.ws.on('message', (d) => {
      const f = JSON.parse(d.toString()) as { t: string; stream: string; seq: number; data: { n: number } };
      if (f.t === 'welcome') this.welcome = true;
      else if (f.t === 'error') this.errors.push(f);
      if (f.t !== 'msg') return;
      const last = this.lastSeq.get(f.stream) ?? 0;
      if (f.seq <= last || this.seen[f.data.n]) {
        this.duplicated++;
        return;
      }
      if (f.seq !== last + 1) this.gaps++;
      this.lastSeq.set(f.stream, f.seq);
      this.seen[f.data.n] = 1;
      this.received++;
    });
    this.ws.on('close', (code) => {
      this.closed = code;
    });
    this.ws.on('error', () => {});
  }

  async hello(dev: { deviceId: string; token: string }): Promise<void> {
    if (this.ws.readyState !== WebSocket.OPEN) await new Promise((r) => this.ws.once('open', r));
    this.ws.send(JSON.stringify({ t: 'hello', v: 1, device: dev.deviceId, token: dev.token, hb: 1800 }));
    await until(() => this.welcome || this.closed !== undefined, 5000, 'welcome');
  }

  get lost(): number {
    return this.seen.length - this.seen.reduce((a, b) => a + b, 0);
  }
}

describe('flow-controlled delivery (real sockets, SQLite)', () => {
  let s: Started | undefined;
  afterEach(async () => {
    await s?.stop();
    s = undefined;
  });

  it('a device with 20,000 pending messages of ~4,000 B receives all, in order, once, on one connection', async () => {
    s = await startServer({ maxPendingPerDevice: 25_000, maxPendingBytesPerDevice: 128 * 1024 * 1024 });
    const dev = await registerDevice(s.url);
    const N = 20_000;
    await publishMany(s.url, { device: dev.deviceId }, 0, N);
    const c = new Counter(s.url, N);
    await c.hello(dev);
    // Sample the send buffer while the replay runs: it must stay near the high-water mark.
    let maxBuffered = 0;
    await until(
      () => {
        maxBuffered = Math.max(maxBuffered, s?.server.hub.sessionOf(dev.deviceId)?.buffered ?? 0);
        return c.received === N || c.closed !== undefined;
      },
      120_000,
      'the whole backlog',
    );
    expect(c.closed).toBeUndefined();
    expect({ received: c.received, duplicated: c.duplicated, lost: c.lost, gaps: c.gaps }).toEqual({
      received: N,
      duplicated: 0,
      lost: 0,
      gaps: 0,
    });
    expect(s.server.gateway.counters.slowConsumers).toBe(0);
    expect(maxBuffered).toBeLessThan(1024 * 1024);
    c.ws.close();
  }, 180_000);

  it('a topic subscriber with a 20,000-message backlog receives all, with live messages during the replay', async () => {
    s = await startServer({ maxPendingPerDevice: 25_000, maxPendingBytesPerDevice: 128 * 1024 * 1024 });
    const dev = await registerDevice(s.url);
    const sub = await http<{ seq: number }>(s.url, 'PUT', `/v1/devices/${dev.deviceId}/topics/big`);
    expect(sub.status).toBe(200);
    const N = 20_000;
    const LIVE = 1000;
    await publishMany(s.url, { topic: 'big' }, 0, N);
    const c = new Counter(s.url, N + 2 * LIVE, new Map([['t:big', sub.body.seq ?? 0]]));
    await c.hello(dev);
    // Publish while the replay is running: to the topic and to the device stream, 100 at a time.
    await until(() => c.received > 0, 10_000, 'replay started');
    for (let i = 0; i < LIVE; i += 100) {
      await Promise.all(
        Array.from({ length: 100 }, (_, k) =>
          Promise.all([
            http(s!.url, 'POST', '/v1/messages', { to: { topic: 'big' }, data: { n: N + i + k, pad: PAD } }),
            http(s!.url, 'POST', '/v1/messages', {
              to: { device: dev.deviceId },
              data: { n: N + LIVE + i + k, pad: PAD },
            }),
          ]),
        ),
      );
    }
    await until(() => c.received === N + 2 * LIVE || c.closed !== undefined, 120_000, 'backlog and live');
    expect(c.closed).toBeUndefined();
    expect({ received: c.received, duplicated: c.duplicated, lost: c.lost, gaps: c.gaps }).toEqual({
      received: N + 2 * LIVE,
      duplicated: 0,
      lost: 0,
      gaps: 0,
    });
    expect(s.server.gateway.counters.slowConsumers).toBe(0);
    c.ws.close();
  }, 180_000);

  it('drops a client that stops reading, never queueing past the mark; it resumes from its cursor', async () => {
    s = await startServer({ slowConsumerTimeoutMs: 1000, maxPendingBytesPerDevice: 64 * 1024 * 1024 });
    const dev = await registerDevice(s.url);
    const N = 5000; // 20 MB: more than the kernel's socket buffers on loopback hold
    await publishMany(s.url, { device: dev.deviceId }, 0, N);
    const stalled = new Counter(s.url, N);
    await stalled.hello(dev);
    (stalled.ws as unknown as { _socket: Socket })._socket.pause();
    let maxBuffered = 0;
    await until(
      () => {
        maxBuffered = Math.max(maxBuffered, s?.server.hub.sessionOf(dev.deviceId)?.buffered ?? 0);
        return s?.server.hub.sessionOf(dev.deviceId) === undefined;
      },
      30_000,
      'slow consumer dropped',
    );
    expect(s.server.gateway.counters.slowConsumers).toBe(1);
    expect(stalled.received).toBeLessThan(N);
    // Never more than the 256 KiB mark plus one message.
    expect(maxBuffered).toBeLessThanOrEqual(256 * 1024 + 4200);
    stalled.ws.terminate();

    // Nothing was acknowledged: a reading client gets all of it.
    const c = new Counter(s.url, N);
    await c.hello(dev);
    await until(() => c.received === N || c.closed !== undefined, 60_000, 'backlog after reconnect');
    expect({ received: c.received, duplicated: c.duplicated, lost: c.lost, gaps: c.gaps }).toEqual({
      received: N,
      duplicated: 0,
      lost: 0,
      gaps: 0,
    });
    c.ws.close();
  }, 120_000);
});
