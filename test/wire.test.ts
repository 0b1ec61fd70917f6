import { connect, type Socket } from 'node:net';
import { SUBPROTOCOL } from '@pushwire/protocol';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RawClient } from './helpers/raw-client.js';
import { registerDevice, startServer } from './helpers/server.js';

type Started = Awaited<ReturnType<typeof startServer>>;

/**
 * The server's own WebSocket layer (packages/server/src/gateway/wire) against a real peer: the
 * `ws` client library, and raw bytes on a socket for what no library would send.
 */
describe('WebSocket layer: RFC 6455 with real peers', () => {
  let s: Started;
  let port: number;
  beforeAll(async () => {
    s = await startServer();
    port = Number(new URL(s.url).port);
  });
  afterAll(() => s.stop());

  async function session() {
    const dev = await registerDevice(s.url);
    const c = new RawClient(s.url);
    await c.opened();
    return { c, dev };
  }

  /** Raw HTTP upgrade; resolves with the socket and the response head. */
  function rawUpgrade(
    headers: Record<string, string>,
    method = 'GET',
  ): Promise<{ sock: Socket; head: string }> {
    return new Promise((resolve, reject) => {
      const sock = connect(port, '127.0.0.1');
      let buf = Buffer.alloc(0);
      sock.on('error', reject);
      sock.on('data', function onData(d) {
        buf = Buffer.concat([buf, d]);
        const end = buf.indexOf('\r\n\r\n');
        if (end < 0) return;
        sock.off('data', onData);
        const rest = buf.subarray(end + 4);
        if (rest.length > 0) sock.unshift(rest);
        resolve({ sock, head: buf.subarray(0, end).toString() });
      });
      const lines = Object.entries({
        Host: `127.0.0.1:${port}`,
        Upgrade: 'websocket',
        Connection: 'Upgrade',
        'Sec-WebSocket-Version': '13',
        'Sec-WebSocket-Key': 'dGhlIHNhbXBsZSBub25jZQ==',
        'Sec-WebSocket-Protocol': SUBPROTOCOL,
        ...headers,
      })
        .filter(([, v]) => v !== '')
        .map(([k, v]) => `${k}: ${v}`);
      sock.write(`${method} /v1/connect HTTP/1.1\r\n${lines.join('\r\n')}\r\n\r\n`);
    });
  }

  /** Reads frames from a raw socket until a close frame; returns its code. */
  function closeCodeOf(sock: Socket): Promise<number> {
    return new Promise((resolve) => {
      let buf = Buffer.alloc(0);
      sock.on('data', (d) => {
        buf = Buffer.concat([buf, d]);
        for (let off = 0; off + 2 <= buf.length; ) {
          const len = (buf[off + 1] as number) & 0x7f; // server frames here are short
          if (((buf[off] as number) & 0x0f) === 0x8) return resolve(buf.readUInt16BE(off + 2));
          off += 2 + len;
        }
      });
      sock.on('close', () => resolve(1006));
    });
  }

  it('answers the opening handshake with the RFC 6455 accept key and the subprotocol', async () => {
    const { sock, head } = await rawUpgrade({});
    expect(head).toMatch(/^HTTP\/1\.1 101 /);
    // The worked example of RFC 6455 §1.3.
    expect(head).toContain('Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=');
    expect(head).toContain(`Sec-WebSocket-Protocol: ${SUBPROTOCOL}`);
    sock.destroy();
  });

  it.each([
    ['a wrong version', { 'Sec-WebSocket-Version': '8' }, 'GET', 426],
    ['a missing key', { 'Sec-WebSocket-Key': '' }, 'GET', 400],
    ['a malformed key', { 'Sec-WebSocket-Key': 'short' }, 'GET', 400],
    ['a POST', {}, 'POST', 405],
  ])('refuses an upgrade with %s with a JSON body', async (_name, headers, method, status) => {
    const { sock, head } = await rawUpgrade(headers, method);
    expect(head.split('\r\n')[0]).toContain(` ${status} `);
    expect(head).toContain('Content-Type: application/json');
    if (status === 426) expect(head).toContain('Sec-WebSocket-Version: 13');
    sock.destroy();
  });

  it('answers a ping with a pong carrying the same payload', async () => {
    const { c } = await session();
    const pong = new Promise<string>((r) => c.ws.once('pong', (d) => r(d.toString())));
    c.ws.ping('are you there');
    expect(await pong).toBe('are you there');
    c.close();
  });

  it('takes a hello sent in fragments', async () => {
    const { c, dev } = await session();
    const hello = JSON.stringify({ t: 'hello', v: 1, device: dev.deviceId, token: dev.token });
    c.ws.send(hello.slice(0, 10), { fin: false });
    c.ws.send(hello.slice(10, 30), { fin: false });
    c.ws.send(hello.slice(30), { fin: true });
    expect(await c.next('welcome')).toMatchObject({ v: 1 });
    c.close();
  });

  it('echoes a client close code and closes the socket', async () => {
    const { c, dev } = await session();
    c.hello(dev.deviceId, dev.token);
    await c.next('welcome');
    c.ws.close(4321, 'bye');
    expect((await c.whenClosed()).code).toBe(4321);
  });

  it('closes with 1007 on text that is not UTF-8, and 1009 on a message past the limit', async () => {
    const a = await session();
    a.c.ws.send(Buffer.from([0x7b, 0xc3, 0x28, 0x7d]), { binary: false });
    expect((await a.c.whenClosed()).code).toBe(1007);
    const b = await session();
    b.c.ws.send('x'.repeat(600 * 1024));
    expect((await b.c.whenClosed()).code).toBe(1009);
  });

  it('a shutdown does not wait on a client that never answers the close: it is cut after ~1 s', async () => {
    const other = await startServer();
    const otherPort = Number(new URL(other.url).port);
    const sock = connect(otherPort, '127.0.0.1');
    sock.on('error', () => {});
    sock.write(
      `GET /v1/connect HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
        `Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n` +
        `Sec-WebSocket-Protocol: ${SUBPROTOCOL}\r\n\r\n`,
    );
    await new Promise((r) => sock.once('data', r)); // the 101; then this client stays silent
    const closed = new Promise<void>((r) => sock.once('close', () => r()));
    const t0 = Date.now();
    await other.stop();
    const took = Date.now() - t0;
    await closed;
    expect(took).toBeGreaterThanOrEqual(900); // it was given the grace period…
    expect(took).toBeLessThan(4000); // …and not the 10 s close timeout
  });

  it('closes with 1002 on an unmasked client frame, and keeps serving everyone else', async () => {
    const { sock, head } = await rawUpgrade({});
    expect(head).toMatch(/ 101 /);
    const code = closeCodeOf(sock);
    sock.write(Buffer.from([0x81, 0x02, 0x7b, 0x7d])); // FIN text "{}" without a mask
    expect(await code).toBe(1002);
    sock.destroy();
    const { c, dev } = await session();
    c.hello(dev.deviceId, dev.token);
    expect(await c.next('welcome')).toMatchObject({ v: 1 });
    c.close();
  });
});
