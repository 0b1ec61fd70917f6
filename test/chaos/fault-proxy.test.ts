import { once } from 'node:events';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { until } from '../helpers/server.js';
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
    // Barrier: the proxy has read the four bytes and dropped them (not merely "not yet forwarded").
    await until(() => conn!.dropped.up === 4, 5000, 'the bytes dropped');
    expect(c.got()).toBe('a');
    c.s.end(); // the client gives up: its FIN must not reach the server either
    // Barrier: the proxy has read the FIN (its client-side socket ended) ...
    await until(() => conn!.client.readableEnded, 5000, 'the FIN at the proxy');
    // ... and the echo server has served a newer connection since: a FIN passed on would be there.
    const d = await dial(proxy.port);
    d.s.write('new');
    await until(() => d.got() === 'new', 2000, 'echo on a new connection');
    expect(echo.endings.length).toBe(before);
    expect(c.ended()).toBeUndefined();
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
    // 1 s NAT, a byte every 100 ms on the busy mapping: ten times inside the timeout, so a loaded
    // machine's late timers cannot make the busy one look idle.
    proxy.natIdleMs = 1000;
    let keep: ReturnType<typeof setInterval> | undefined;
    try {
      const idle = await dial(proxy.port);
      const busy = await dial(proxy.port);
      const [ci, cb] = proxy.history.slice(-2);
      let dots = 0;
      keep = setInterval(() => {
        busy.s.write('.');
        dots++;
      }, 100);
      await until(() => ci!.blackholed !== undefined, 10_000, 'the idle mapping dropped');
      clearInterval(keep);
      expect(dots).toBeGreaterThanOrEqual(5); // the busy one was in use all along
      idle.s.write('late');
      busy.s.write('!');
      // Barriers: the proxy dropped 'late' (counted) and the busy one's '!' came back.
      await until(() => ci!.dropped.up === 4, 5000, "'late' dropped");
      await until(() => busy.got().endsWith('!'), 5000, "the busy one's echo");
      expect(ci!.blackholed?.reason).toBe('nat-idle');
      expect(idle.got()).toBe('');
      expect(idle.ended()).toBeUndefined();
      expect(cb!.blackholed).toBeUndefined();
      expect(busy.got()).toBe(`${'.'.repeat(dots)}!`);
      idle.s.destroy();
      busy.s.destroy();
      ci!.destroy();
    } finally {
      clearInterval(keep);
      proxy.natIdleMs = undefined;
    }
  });
});
