import { once } from 'node:events';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sleep, until } from '../helpers/server.js';
import { FaultProxy } from './fault-proxy.js';

/** A TCP echo server on loopback that remembers how each of its sockets ended. */
async function echoServer(): Promise<{ server: Server; port: number; endings: string[] }> {
  const endings: string[] = [];
  const server = createServer({ allowHalfOpen: true }, (s) => {
    s.on('data', (d) => s.write(d));
    s.on('end', () => {
      endings.push('end');
      s.end();
    });
    s.on('error', (e: NodeJS.ErrnoException) => endings.push(e.code ?? 'error'));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const port = (server.address() as { port: number }).port;
  return { server, port, endings };
}

/** A client socket that collects what it receives and how it ended. */
async function dial(
  port: number,
): Promise<{ s: Socket; got: () => string; ended: () => string | undefined }> {
  const s = connect({ host: '127.0.0.1', port });
  let data = '';
  let ended: string | undefined;
  s.on('data', (d) => {
    data += d;
  });
  s.on('end', () => {
    ended ??= 'end';
  });
  s.on('error', (e: NodeJS.ErrnoException) => {
    ended ??= e.code ?? 'error';
  });
  await once(s, 'connect');
  return { s, got: () => data, ended: () => ended };
}

describe('fault proxy (TCP, loopback)', () => {
  let echo: Awaited<ReturnType<typeof echoServer>>;
  let proxy: FaultProxy;
  beforeAll(async () => {
    echo = await echoServer();
    proxy = await FaultProxy.start({ target: { port: echo.port } });
  });
  afterAll(async () => {
    await proxy.close();
    echo.server.close();
  });

  it('forwards both ways and counts bytes per connection; FIN passes through', async () => {
    const c = await dial(proxy.port);
    c.s.write('hello');
    await until(() => c.got() === 'hello', 2000, 'echo');
    const conn = proxy.history.at(-1)!;
    expect(conn.forwarded).toEqual({ up: 5, down: 5 });
    c.s.end();
    await until(() => c.ended() === 'end', 2000, 'FIN back');
    await until(() => conn.closed, 2000, 'closed');
  });

  it('black-hole: nothing passes either way, no FIN or RST reaches either side; new connections pass', async () => {
    const c = await dial(proxy.port);
    c.s.write('a');
    await until(() => c.got() === 'a', 2000, 'echo');
    const before = echo.endings.length;
    const [conn] = proxy.blackholeAll();
    c.s.write('bbbb');
    await sleep(200);
    expect(c.got()).toBe('a');
    expect(conn!.dropped.up).toBe(4);
    c.s.end(); // the client gives up: its FIN must not reach the server either
    await sleep(200);
    expect(echo.endings.length).toBe(before);
    expect(c.ended()).toBeUndefined();
    const d = await dial(proxy.port);
    d.s.write('new');
    await until(() => d.got() === 'new', 2000, 'echo on a new connection');
    d.s.destroy();
    conn!.destroy();
  });

  it('reset: both sides get an RST', async () => {
    const c = await dial(proxy.port);
    c.s.write('x');
    await until(() => c.got() === 'x', 2000, 'echo');
    const before = echo.endings.length;
    proxy.history.at(-1)!.reset();
    await until(() => c.ended() === 'ECONNRESET', 2000, 'client RST');
    await until(() => echo.endings.slice(before).includes('ECONNRESET'), 2000, 'server RST');
  });

  it('delay holds each chunk; throttle caps the rate', async () => {
    proxy.defaults = { delayMs: 100 };
    const c = await dial(proxy.port);
    let t = Date.now();
    c.s.write('d');
    await until(() => c.got() === 'd', 2000, 'delayed echo');
    expect(Date.now() - t).toBeGreaterThanOrEqual(190); // 100 ms each way
    proxy.history.at(-1)!.set({ delayMs: 0, bytesPerSecond: 100_000 });
    t = Date.now();
    c.s.write(Buffer.alloc(20_000, 1));
    await until(() => c.got().length === 1 + 20_000, 5000, 'throttled echo');
    const ms = Date.now() - t;
    expect(ms).toBeGreaterThanOrEqual(150); // ≥ 200 ms at 100 kB/s, less a slice of slack
    expect(ms).toBeLessThan(2000);
    proxy.defaults = {};
    c.s.destroy();
  });

  it('NAT idle: a mapping idle past the timeout is dropped silently, a busy one is kept', async () => {
    proxy.natIdleMs = 300;
    try {
      const idle = await dial(proxy.port);
      const busy = await dial(proxy.port);
      const [ci, cb] = proxy.history.slice(-2);
      for (let i = 0; i < 6; i++) {
        busy.s.write('.');
        await sleep(100);
      }
      idle.s.write('late');
      busy.s.write('!');
      await sleep(150);
      expect(ci!.blackholed?.reason).toBe('nat-idle');
      expect(idle.got()).toBe('');
      expect(idle.ended()).toBeUndefined();
      expect(cb!.blackholed).toBeUndefined();
      expect(busy.got()).toBe('......!');
      idle.s.destroy();
      busy.s.destroy();
      ci!.destroy();
    } finally {
      proxy.natIdleMs = undefined;
    }
  });
});
