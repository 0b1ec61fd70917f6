import { createClient, memoryStorage, type PushwireClient } from '@pushwire/client';
import { afterAll, describe, expect, it } from 'vitest';
import { echo, nothingPending } from './helpers/barrier.js';
import { Collector } from './helpers/collector.js';
import { RawClient } from './helpers/raw-client.js';
import { http, registerDevice, spawnServer, tempDir, until } from './helpers/server.js';

describe('server process: kill -9 and SIGTERM (real `pushwire serve`)', () => {
  const dirs: (() => void)[] = [];
  afterAll(() => {
    for (const d of dirs) d();
  });

  it('kill -9 right after a batch of 202s loses nothing; the device gets every message once', async () => {
    const { dir, cleanup } = tempDir();
    dirs.push(cleanup);
    const first = await spawnServer(dir);
    const port = Number(new URL(first.url).port);
    const dev = await registerDevice(first.url);
    // 300 concurrent publishes; every 202 is a promise of durability.
    const results = await Promise.all(
      Array.from({ length: 300 }, (_, i) =>
        http<{ id: string }>(first.url, 'POST', '/v1/messages', {
          to: { device: dev.deviceId },
          data: { i },
        }),
      ),
    );
    first.proc.kill('SIGKILL');
    await new Promise((r) => first.proc.once('exit', r));
    const accepted = results.filter((r) => r.status === 202).map((r) => r.body.id);
    expect(accepted.length).toBe(300);

    const second = await spawnServer(dir, port);
    const col = new Collector();
    const c: PushwireClient = createClient({ url: second.url, credentials: dev, storage: memoryStorage() });
    c.on('message', col.onMessage);
    try {
      await until(() => col.received >= 300, 15_000, 'all messages after restart');
      // A marker after the 300: a duplicate of any of them would reach the app before it.
      const marker = await echo(second.url, { device: dev.deviceId }, (id) => col.has([id]));
      expect(col.lost(accepted)).toEqual([]);
      expect(col.duplicated).toBe(0);
      expect(col.received).toBe(301);
      expect(col.messages.at(-1)?.id).toBe(marker);
      expect(col.outOfOrder()).toEqual([]);
      await nothingPending(second.url, dev.deviceId);
    } finally {
      await c.close();
      second.proc.kill('SIGKILL');
    }
  }, 60_000);

  it('SIGTERM drains: every client gets a goaway, the process exits 0, clients come back after restart', async () => {
    const { dir, cleanup } = tempDir();
    dirs.push(cleanup);
    const srv = await spawnServer(dir, 0, ['--drain-window', '1000']);
    const port = Number(new URL(srv.url).port);
    const devs = await Promise.all(Array.from({ length: 20 }, () => registerDevice(srv.url)));
    const clients = devs.map((d) => createClient({ url: srv.url, credentials: d, storage: memoryStorage() }));
    const errors: string[] = [];
    for (const c of clients) c.on('error', (e) => errors.push(e.code));
    const rawDevs = await Promise.all(Array.from({ length: 10 }, () => registerDevice(srv.url)));
    const raws = rawDevs.map(() => new RawClient(srv.url));
    await Promise.all(raws.map((r) => r.opened()));
    for (const [i, r] of raws.entries()) r.hello(rawDevs[i]!.deviceId, rawDevs[i]!.token);
    await Promise.all(raws.map((r) => r.next('welcome')));
    try {
      await until(() => clients.every((c) => c.state === 'open'), 10_000, 'all open');
      const goaways = Promise.all(raws.map((r) => r.next('goaway', 5000)));
      const exit = new Promise<number | null>((r) => srv.proc.once('exit', (code) => r(code)));
      srv.proc.kill('SIGTERM');
      const frames = await goaways;
      expect(await exit).toBe(0);
      for (const g of frames) {
        expect(g.reason).toBe('shutdown');
        expect(g.reconnectAfter).toBeGreaterThanOrEqual(0);
        expect(g.reconnectAfter).toBeLessThanOrEqual(1000);
      }
      for (const r of raws) expect((await r.whenClosed()).code).toBe(1001);
      // Every client left 'open' because the server told it to (goaway), not because of a failure.
      await until(() => clients.every((c) => c.state !== 'open'), 5000, 'all closed');
      const again = await spawnServer(dir, port);
      try {
        await until(() => clients.every((c) => c.state === 'open'), 15_000, 'all back');
        const got: string[] = [];
        clients[0]!.on('message', (m) => got.push(m.id));
        const id = (
          await http<{ id: string }>(again.url, 'POST', '/v1/messages', { to: { device: devs[0]!.deviceId } })
        ).body.id;
        await until(() => got.includes(id), 5000, 'message after drain');
        // A drain is not a failure: the only errors are refused connections while the server was down.
        expect(errors.filter((c) => c !== 'ERR_CONNECTION')).toEqual([]);
      } finally {
        again.proc.kill('SIGKILL');
      }
    } finally {
      await Promise.all(clients.map((c) => c.close()));
    }
  }, 60_000);
});
