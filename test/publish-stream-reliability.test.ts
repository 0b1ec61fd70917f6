import { createClient, memoryStorage, type PushwireClient } from '@pushwire/client';
import { afterAll, describe, expect, it } from 'vitest';
import { echo } from './helpers/barrier.js';
import { Collector } from './helpers/collector.js';
import { StreamClient } from './helpers/publish-stream-client.js';
import { API_KEY, registerDevice, spawnServer, startServer, tempDir, until } from './helpers/server.js';

/** Sends `bodies` over the stream keeping at most `window` unacknowledged; resolves when all are acked or the stream closed. */
async function publishWindowed(c: StreamClient, bodies: unknown[], window: number): Promise<number> {
  let sent = 0;
  const start = c.acks.length;
  while (sent < bodies.length && !c.closed) {
    while (sent < bodies.length && sent - (c.acks.length - start) < window) c.send(bodies[sent++]);
    await c.until(() => !!c.closed || sent - (c.acks.length - start) < window, 20_000, 'window');
  }
  await c.until(() => !!c.closed || c.acks.length - start === sent, 20_000, 'last acks');
  return sent;
}

describe('publisher stream: reliability with SDK clients on real sockets and a SQLite file', () => {
  const cleanups: (() => void | Promise<void>)[] = [];
  afterAll(async () => {
    for (const f of cleanups.reverse()) await f();
  });

  it('N messages to several devices: every ack is delivered once, in order; retried ids are not delivered twice', async () => {
    const s = await startServer();
    cleanups.push(() => s.stop());
    const devs = await Promise.all(Array.from({ length: 5 }, () => registerDevice(s.url)));
    const cols = devs.map(() => new Collector());
    const clients: PushwireClient[] = devs.map((d, i) => {
      const c = createClient({ url: s.url, credentials: d, storage: memoryStorage() });
      c.on('message', cols[i]!.onMessage);
      return c;
    });
    cleanups.push(() => Promise.all(clients.map((c) => c.close())).then(() => {}));
    await until(() => clients.every((c) => c.state === 'open'), 10_000, 'clients open');

    const N = 3000;
    const bodies = Array.from({ length: N }, (_, i) => ({
      to: { device: devs[i % devs.length]!.deviceId },
      id: `rel-${i}`,
      data: { i },
    }));
    // 200 retries of ids already sent (a publisher that lost its acks): acked as duplicates.
    const retries = bodies.slice(0, 200);
    const pub = new StreamClient(s.url, API_KEY);
    cleanups.push(() => pub.close());
    await pub.opened();
    const sent = await publishWindowed(pub, [...bodies, ...retries], 128);
    const ok = pub.acks.filter((a) => a.error === undefined);
    const dupAcks = ok.filter((a) => a.duplicate === true);
    expect(sent).toBe(N + 200);
    expect(pub.acks.map((a) => a.n)).toEqual(Array.from({ length: N + 200 }, (_, i) => i + 1));
    expect(ok.length).toBe(N + 200);
    expect(dupAcks.length).toBe(200);
    expect(pub.ackFrames).toBeLessThan(N + 200); // coalesced

    await until(() => cols.reduce((n, c) => n + c.received, 0) >= N, 20_000, 'all delivered');
    // A marker per device after everything: a late duplicate would reach the app before it.
    for (const [i, d] of devs.entries())
      await echo(s.url, { device: d.deviceId }, (id) => cols[i]!.has([id]));
    const ids = bodies.map((b) => b.id);
    const received = cols.reduce((n, c) => n + c.received, 0) - devs.length;
    const duplicated = cols.reduce((n, c) => n + c.duplicated, 0);
    const lost = ids.filter((id) => !cols.some((c) => c.has([id])));
    expect({ sent, acked: ok.length, received, duplicated, lost: lost.length }).toEqual({
      sent: N + 200,
      acked: N + 200,
      received: N,
      duplicated: 0,
      lost: 0,
    });
    for (const c of cols) expect(c.outOfOrder()).toEqual([]);
  }, 60_000);

  it('kill -9 mid-stream: every message acked before the kill is delivered after the restart, once', async () => {
    const { dir, cleanup } = tempDir();
    cleanups.push(cleanup);
    const first = await spawnServer(dir);
    const port = Number(new URL(first.url).port);
    const devs = await Promise.all(Array.from({ length: 4 }, () => registerDevice(first.url)));
    const cols = devs.map(() => new Collector());
    const clients = devs.map((d, i) => {
      const c = createClient({
        url: first.url,
        credentials: d,
        storage: memoryStorage(),
        backoff: { initial: 50, max: 500 },
      });
      c.on('message', cols[i]!.onMessage);
      return c;
    });
    cleanups.push(() => Promise.all(clients.map((c) => c.close())).then(() => {}));
    await until(() => clients.every((c) => c.state === 'open'), 10_000, 'clients open');

    const pub = new StreamClient(first.url, API_KEY);
    await pub.opened();
    // Publish without end until the kill; the kill comes once 800 acks are in.
    let sent = 0;
    const pump = (async () => {
      while (!pub.closed) {
        while (sent - pub.acks.length < 64) {
          pub.send({
            to: { device: devs[sent % devs.length]!.deviceId },
            id: `k-${sent}`,
            data: { i: sent },
          });
          sent++;
        }
        await pub.until(() => !!pub.closed || sent - pub.acks.length < 64, 20_000, 'window');
      }
    })();
    await pub.until(() => pub.acks.length >= 800, 20_000, '800 acks');
    first.proc.kill('SIGKILL');
    await new Promise((r) => first.proc.once('exit', r));
    await pump;
    const acked = pub.acks.filter((a) => a.error === undefined).map((a) => a.id as string);
    expect(acked.length).toBe(pub.acks.length);
    expect(acked.length).toBeGreaterThanOrEqual(800);

    const second = await spawnServer(dir, port);
    cleanups.push(() => void second.proc.kill('SIGKILL'));
    const lost = () => acked.filter((id) => !cols.some((c) => c.has([id])));
    await until(() => lost().length === 0, 30_000, 'acked messages after restart');
    for (const [i, d] of devs.entries())
      await echo(second.url, { device: d.deviceId }, (id) => cols[i]!.has([id]));
    const duplicated = cols.reduce((n, c) => n + c.duplicated, 0);
    // Messages sent but not acked may or may not have been stored: they are neither lost nor counted.
    expect({ acked: acked.length >= 800, lost: lost().length, duplicated }).toEqual({
      acked: true,
      lost: 0,
      duplicated: 0,
    });
    expect(sent).toBeGreaterThanOrEqual(acked.length);
    for (const c of cols) expect(c.outOfOrder()).toEqual([]);
  }, 90_000);
});
