import { once } from 'node:events';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { clientFrame, Op, RawWs } from '../../../../../test/helpers/ws-frames.js';
import { textFrame } from './frames.js';
import { WireSockets } from './registry.js';
import { WireSocket, WRITE_OVERHEAD_BYTES } from './socket.js';

/**
 * WireSocket on real TCP sockets (no HTTP upgrade: the class starts after it). The client side is
 * a plain socket that reads or not, as a test needs.
 */
describe('WireSocket on a real TCP connection', () => {
  const servers: Server[] = [];
  const clients: Socket[] = [];
  afterEach(() => {
    for (const c of clients.splice(0)) c.destroy();
    for (const s of servers.splice(0)) s.close();
  });

  async function pair(registry = new WireSockets(), maxMessage = 512 * 1024) {
    const server = createServer();
    servers.push(server);
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const port = (server.address() as { port: number }).port;
    const accepted = once(server, 'connection') as Promise<[Socket]>;
    const client = connect(port, '127.0.0.1');
    clients.push(client);
    client.on('error', () => {});
    const [raw] = await accepted;
    const ws = new WireSocket(raw, Buffer.alloc(0), maxMessage, registry);
    return { ws, raw, client, registry };
  }

  async function until(cond: () => boolean, ms = 3000) {
    const end = Date.now() + ms;
    while (!cond()) {
      if (Date.now() > end) throw new Error('condition not met in time');
      await new Promise((r) => setTimeout(r, 5));
    }
  }

  /** Writes on `sock`, waiting for drain whenever the kernel pushes back. */
  async function writeAll(sock: Socket, chunks: Iterable<Buffer>) {
    for (const c of chunks) if (!sock.write(c)) await once(sock, 'drain');
  }

  it('a ping flood from a client that never reads queues at most one pong past the high-water mark', async () => {
    const { raw, client } = await pair();
    client.pause(); // never reads while flooding
    let maxQueued = 0;
    let pings = 0;
    raw.on('data', () => {
      // Runs after the WireSocket's own listener: what its answers left queued.
      maxQueued = Math.max(maxQueued, raw.writableLength);
    });
    // 32 MiB of pings with 125-byte payloads: far more than the kernel buffers hold in pongs.
    const payload = Buffer.alloc(125, 0x61);
    const batch = Buffer.concat(Array.from({ length: 512 }, () => clientFrame(Op.Ping, payload)));
    const batches = Math.ceil((32 * 1024 * 1024) / batch.length);
    await writeAll(
      client,
      (function* () {
        for (let i = 0; i < batches; i++) {
          pings += 512;
          yield batch;
        }
      })(),
    );
    const last = Buffer.from('the latest ping');
    client.write(clientFrame(Op.Ping, last));
    pings++;
    // Barrier: the server has read every byte the client wrote (not "200 ms have passed").
    await until(() => raw.bytesRead === client.bytesWritten, 20_000);
    // Bounded: the socket's high-water mark (16 KiB) plus one pong, not the flood's 32 MiB.
    expect(maxQueued).toBeLessThanOrEqual(raw.writableHighWaterMark + 2 * 127);

    // Now read: the pongs arrive, the latest ping answered last, and fewer pongs than pings.
    const reader = new RawWs(client);
    const f = await reader.frame((x) => x.opcode === Op.Pong && x.payload.equals(last), 20_000);
    expect(f.payload.toString()).toBe('the latest ping');
    const pongs = reader.frames.filter((x) => x.opcode === Op.Pong).length;
    expect(pongs).toBeLessThan(pings);
  }, 60_000);

  it('bufferedAmount counts a per-write overhead, so a flood of tiny frames passes a 1 MiB bound', async () => {
    const { ws, client } = await pair();
    client.pause();
    // Fill the kernel's buffers until writes queue in user space.
    const big = textFrame(Buffer.alloc(64 * 1024, 0x62));
    for (let i = 0; i < 1024 && ws.queuedBytes === 0; i++) ws.sendFrame(big);
    expect(ws.queuedBytes).toBeGreaterThan(0);
    const tiny = textFrame('{"t":"pong"}'); // 14 bytes, what a `p` is answered with
    const n = 20_000;
    for (let i = 0; i < n; i++) ws.sendFrame(tiny);
    // The bytes alone stay under 1 MiB…
    expect(ws.queuedBytes).toBeLessThan(1024 * 1024);
    // …but what they cost is counted: at least the overhead of the tiny writes.
    expect(ws.bufferedAmount).toBeGreaterThanOrEqual(ws.queuedBytes + 0.95 * n * WRITE_OVERHEAD_BYTES);
    expect(ws.bufferedAmount).toBeGreaterThan(1024 * 1024);
    expect(ws.bufferedAmount).toBeLessThanOrEqual(ws.queuedBytes + (n + 2) * WRITE_OVERHEAD_BYTES);
    // A client that reads drains it all: nothing is counted once the queue is empty.
    client.resume();
    for (let i = 0; i < 500 && ws.queuedBytes > 0; i++) await new Promise((r) => setTimeout(r, 10));
    expect(ws.queuedBytes).toBe(0);
    expect(ws.bufferedAmount).toBe(0);
  }, 30_000);

  it('a socket closed by the server is destroyed at the close timeout even while the peer keeps sending', async () => {
    const registry = new WireSockets(300);
    const { ws, client } = await pair(registry);
    const reader = new RawWs(client);
    ws.close(4008, 'no hello in time');
    expect(await reader.closeCode()).toBe(4008);
    expect(registry.closing).toBe(1);
    // The peer never answers the close, and sends a ping every 20 ms (each used to restart a timer).
    let sent = 0;
    const pinger = setInterval(() => {
      sent++;
      reader.write(clientFrame(Op.Ping, 'still here'));
    }, 20);
    const t0 = Date.now();
    try {
      await reader.whenClosed(5000);
    } finally {
      clearInterval(pinger);
    }
    const took = Date.now() - t0;
    expect(sent).toBeGreaterThan(5); // it was sending all along
    expect(took).toBeLessThan(2500); // 300 ms deadline, generous on a loaded machine
    await until(() => registry.open.size === 0);
    expect(ws.readyState).toBe(WireSocket.CLOSED);
    // No pong answered a ping after the close frame.
    expect(reader.frames.filter((f) => f.opcode === Op.Pong)).toHaveLength(0);
  });

  it('a peer that half-closes and never reads is destroyed at the close timeout (our end waits behind unsent bytes)', async () => {
    const registry = new WireSockets(300);
    const { ws, client } = await pair(registry);
    client.pause();
    const big = textFrame(Buffer.alloc(64 * 1024, 0x62));
    for (let i = 0; i < 1024 && ws.queuedBytes === 0; i++) ws.sendFrame(big);
    expect(ws.queuedBytes).toBeGreaterThan(0);
    client.end(); // FIN from the peer; it still reads nothing
    await until(() => ws.readyState !== WireSocket.OPEN);
    const t0 = Date.now();
    await until(() => registry.open.size === 0, 5000);
    expect(Date.now() - t0).toBeLessThan(2500);
    expect(ws.readyState).toBe(WireSocket.CLOSED);
  });

  it('one timer serves every closing socket: each is destroyed at its own deadline, in order', async () => {
    // The registry's clock is injected: deadlines are decided on it, not on how late timers run.
    let now = 0;
    const registry = new WireSockets(200, () => now);
    const a = await pair(registry);
    const b = await pair(registry);
    const ra = new RawWs(a.client);
    const rb = new RawWs(b.client);
    a.ws.close(1000); // deadline 200
    now = 100;
    b.ws.close(1000); // deadline 300
    expect(registry.closing).toBe(2);
    now = 250; // past a's deadline only (its real timer may sweep too: same clock, same answer)
    registry.sweep();
    expect(registry.closing).toBe(1);
    await ra.whenClosed(3000);
    expect(rb.closed).toBe(false);
    now = 300;
    registry.sweep();
    await rb.whenClosed(3000);
    expect(registry.closing).toBe(0);
    await until(() => registry.open.size === 0);
  });

  it('raises the message limit when told: small before, full size after', async () => {
    const { ws, client } = await pair(new WireSockets(), 1024);
    const reader = new RawWs(client);
    const got: number[] = [];
    ws.listener = { onMessage: (d) => got.push(d.length), onClose: () => {} };
    reader.write(clientFrame(Op.Text, 'a'.repeat(1000)));
    ws.setMaxMessage(64 * 1024);
    reader.write(clientFrame(Op.Text, 'b'.repeat(50_000)));
    for (let i = 0; i < 200 && got.length < 2; i++) await new Promise((r) => setTimeout(r, 10));
    expect(got).toEqual([1000, 50_000]);
    ws.setMaxMessage(1024);
    reader.write(clientFrame(Op.Text, 'c'.repeat(2000)));
    expect(await reader.closeCode()).toBe(1009);
  });
  it('holds a reader only while a frame or message is incomplete, and keeps reading across reads', async () => {
    const { ws, raw, client } = await pair();
    const got: string[] = [];
    ws.listener = { onMessage: (d) => got.push(d.toString()), onClose: () => {} };
    const read = async () => until(() => raw.bytesRead === client.bytesWritten);
    const whole = clientFrame(Op.Text, 'split across reads');
    client.write(whole.subarray(0, 9));
    await read();
    expect(ws.heldInput).toBe(9);
    client.write(whole.subarray(9));
    await until(() => got.length === 1);
    expect(ws.heldInput).toBe(0);
    // A fragmented message: the fragments are held between reads, then delivered joined.
    client.write(clientFrame(Op.Text, 'frag-', { fin: false }));
    await read();
    expect(ws.heldInput).toBe(5);
    client.write(clientFrame(Op.Cont, 'mented'));
    await until(() => got.length === 2);
    expect(ws.heldInput).toBe(0);
    expect(got).toEqual(['split across reads', 'frag-mented']);
    // After a protocol error nothing more is read, though the reader held nothing.
    const reader = new RawWs(client);
    client.write(Buffer.concat([clientFrame(Op.Cont, 'orphan'), clientFrame(Op.Text, 'after')]));
    expect(await reader.closeCode()).toBe(1002);
    expect(got).toHaveLength(2);
  });
});
