import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { registerDevice, startServer, until } from './helpers/server.js';
import { clientFrame, closePayload, Op, type RawWs, rawWs } from './helpers/ws-frames.js';

type Started = Awaited<ReturnType<typeof startServer>>;

/**
 * RFC 6455 conformance of the server's own WebSocket layer, through real sockets: a real server on
 * port 0 and raw TCP clients that send exactly the bytes each case needs. The cases follow the
 * sections the Autobahn test suite covers for a server — framing, pings and pongs, reserved bits,
 * opcodes, fragmentation, UTF-8, close handling, limits — and each is named by the section it
 * checks. The opening handshake (§4) is covered in wire.test.ts.
 */
describe('RFC 6455 conformance through real sockets', () => {
  let s: Started;
  let port: number;
  beforeAll(async () => {
    s = await startServer();
    port = Number(new URL(s.url).port);
  });
  afterAll(() => s.stop());

  const text = (t: string, opts: { fin?: boolean } = {}) => clientFrame(Op.Text, t, opts);
  const hasText = (c: RawWs, pred: (t: string) => boolean) =>
    c.frame((f) => f.opcode === Op.Text && pred(f.payload.toString()));

  /** A raw client with an open session (hello answered by welcome). */
  async function session(): Promise<RawWs> {
    const dev = await registerDevice(s.url);
    const c = await rawWs(port);
    c.write(text(JSON.stringify({ t: 'hello', v: 1, device: dev.deviceId, token: dev.token })));
    await hasText(c, (t) => t.includes('"welcome"'));
    return c;
  }

  /** The session still answers: a bare `p` gets a bare `P`. */
  async function stillServes(c: RawWs) {
    const before = c.texts().filter((t) => t === 'P').length;
    c.write(text('p'));
    await until(() => c.texts().filter((t) => t === 'P').length > before, 5000, 'pong');
  }

  async function closesWith(frames: Buffer[], code: number, opened = true) {
    const c = opened ? await session() : await rawWs(port);
    c.write(frames);
    expect(await c.closeCode()).toBe(code);
    await c.whenClosed();
    return c;
  }

  describe('§5.2 framing', () => {
    it.each([
      ['a 7-bit', 10],
      ['a 16-bit', 300],
      ['a 64-bit', 70_000],
    ])('§5.2 a text message with %s payload length is read', async (_n, size) => {
      const c = await session();
      const body = `{"t":"ping"}${' '.repeat(size)}`; // JSON allows trailing whitespace
      c.write(text(body));
      await hasText(c, (t) => t === 'P' || t.includes('"pong"'));
      c.destroy();
    });

    it('§5.2 frames split into 1-byte TCP writes, and several frames in one write, are read', async () => {
      const c = await session();
      const bytes = text('p');
      for (const b of bytes) {
        c.write(Buffer.from([b]));
        await new Promise((r) => setTimeout(r, 2));
      }
      await until(() => c.texts().includes('P'), 5000, 'pong');
      c.write([text('p'), text('p'), text('p')]);
      await until(() => c.texts().filter((t) => t === 'P').length === 4, 5000, 'three pongs');
      c.destroy();
    });

    it('§5.2 server frames are FIN, unmasked, without RSV bits', async () => {
      const c = await session();
      await stillServes(c);
      expect(c.frames.length).toBeGreaterThan(0);
      for (const f of c.frames) expect([f.fin, f.masked, f.rsv]).toEqual([true, false, 0]);
      c.destroy();
    });

    it('§5.1 an unmasked client frame closes with 1002', async () => {
      await closesWith([clientFrame(Op.Text, 'p', { mask: false })], 1002);
    });

    it('§5.2 a 64-bit length with the most significant bit set closes with 1009 (or 1002)', async () => {
      const frame = clientFrame(Op.Binary, Buffer.alloc(0), { len: 70_000 });
      frame[2] = 0x80; // length ≥ 2^63: not a valid length
      const c = await closesWith([frame], 1009);
      expect(c.closed).toBe(true);
    });
  });

  describe('§5.2 reserved bits', () => {
    it.each([
      ['RSV1', 0x40],
      ['RSV2', 0x20],
      ['RSV3', 0x10],
    ])('§5.2 %s set without a negotiated extension closes with 1002', async (_n, rsv) => {
      await closesWith([clientFrame(Op.Text, 'p', { rsv })], 1002);
    });

    it('§5.2 RSV set on a ping closes with 1002 and the ping gets no pong', async () => {
      const c = await closesWith([clientFrame(Op.Ping, 'x', { rsv: 0x40 })], 1002);
      expect(c.frames.some((f) => f.opcode === Op.Pong)).toBe(false);
    });
  });

  describe('§5.2 opcodes', () => {
    it.each([3, 4, 5, 6, 7])('§5.2 reserved data opcode %i closes with 1002', async (op) => {
      await closesWith([clientFrame(op, 'x')], 1002, false);
    });
    it.each([0xb, 0xc, 0xd, 0xe, 0xf])('§5.2 reserved control opcode %i closes with 1002', async (op) => {
      await closesWith([clientFrame(op, '')], 1002, false);
    });
  });

  describe('§5.4 fragmentation', () => {
    it('§5.4 a hello in fragments (with an empty one) is read whole', async () => {
      const dev = await registerDevice(s.url);
      const c = await rawWs(port);
      const hello = JSON.stringify({ t: 'hello', v: 1, device: dev.deviceId, token: dev.token });
      c.write([
        text(hello.slice(0, 5), { fin: false }),
        clientFrame(Op.Cont, '', { fin: false }),
        clientFrame(Op.Cont, hello.slice(5, 40), { fin: false }),
        clientFrame(Op.Cont, hello.slice(40)),
      ]);
      await hasText(c, (t) => t.includes('"welcome"'));
      c.destroy();
    });

    it('§5.4 control frames between fragments are answered, and the message is read after them', async () => {
      const c = await session();
      c.write([
        text('{"t":', { fin: false }),
        clientFrame(Op.Ping, 'between'),
        clientFrame(Op.Pong, 'unsolicited'),
        clientFrame(Op.Cont, '"ping"}'),
      ]);
      const pong = await c.frame((f) => f.opcode === Op.Pong);
      expect(pong.payload.toString()).toBe('between');
      await hasText(c, (t) => t === 'P' || t.includes('"pong"'));
      // The pong came before the answer to the message, as the frames were sent.
      const iPong = c.frames.indexOf(pong);
      const iAnswer = c.frames.findIndex(
        (f) => f.opcode === Op.Text && /^P$|"pong"/.test(f.payload.toString()),
      );
      expect(iPong).toBeLessThan(iAnswer);
      c.destroy();
    });

    it('§5.4 a continuation frame without a message closes with 1002', async () => {
      await closesWith([clientFrame(Op.Cont, 'p')], 1002);
    });

    it('§5.4 a new data message inside a fragmented one closes with 1002', async () => {
      await closesWith([text('{"t"', { fin: false }), text('p')], 1002);
    });

    it('§5.5 a fragmented control frame closes with 1002', async () => {
      await closesWith([clientFrame(Op.Ping, 'a', { fin: false }), clientFrame(Op.Cont, 'b')], 1002);
    });
  });

  describe('§5.5.2/§5.5.3 pings and pongs', () => {
    it('§5.5.2 ping before hello gets a pong with the same payload', async () => {
      const c = await rawWs(port);
      c.write(clientFrame(Op.Ping, 'before hello'));
      expect((await c.frame((f) => f.opcode === Op.Pong)).payload.toString()).toBe('before hello');
      c.destroy();
    });

    it.each([
      ['empty', Buffer.alloc(0)],
      ['125-byte binary', Buffer.from(Array.from({ length: 125 }, (_, i) => (i * 37) & 0xff))],
    ])('§5.5.2 a ping with an %s payload gets a pong with the same payload', async (_n, payload) => {
      const c = await session();
      c.write(clientFrame(Op.Ping, payload));
      expect((await c.frame((f) => f.opcode === Op.Pong)).payload.equals(payload)).toBe(true);
      c.destroy();
    });

    it('§5.5 a ping with 126 bytes of payload closes with 1002', async () => {
      await closesWith([clientFrame(Op.Ping, Buffer.alloc(126))], 1002);
    });

    it('§5.5.3 an unsolicited pong is ignored', async () => {
      const c = await session();
      c.write(clientFrame(Op.Pong, 'nobody asked'));
      await stillServes(c);
      expect(c.closed).toBe(false);
      c.destroy();
    });

    it('§5.5.3 ten pings in one write get ten pongs, in order', async () => {
      const c = await session();
      c.write(Array.from({ length: 10 }, (_, i) => clientFrame(Op.Ping, `n${i}`)));
      await until(() => c.frames.filter((f) => f.opcode === Op.Pong).length === 10, 5000, 'ten pongs');
      const got = c.frames.filter((f) => f.opcode === Op.Pong).map((f) => f.payload.toString());
      expect(got).toEqual(Array.from({ length: 10 }, (_, i) => `n${i}`));
      c.destroy();
    });
  });

  describe('§8.1 UTF-8 handling', () => {
    it('§8.1 a multi-byte character split across fragments is valid text (read, not closed)', async () => {
      const c = await session();
      const body = Buffer.from('{"t":"ping","x":"é€😀"}'); // an unknown field: BAD_FRAME, after decoding
      const cut = body.indexOf(0xe2) + 1; // inside "€"
      c.write([
        clientFrame(Op.Text, body.subarray(0, cut), { fin: false }),
        clientFrame(Op.Cont, body.subarray(cut)),
      ]);
      await hasText(c, (t) => t.includes('"BAD_FRAME"'));
      expect(c.closed).toBe(false);
      c.destroy();
    });

    it.each([
      ['an invalid byte', [0x7b, 0xff, 0x7d]],
      ['a truncated sequence', [0x7b, 0xc3]],
      ['an overlong encoding', [0xc0, 0xaf]],
      ['a UTF-16 surrogate', [0xed, 0xa0, 0x80]],
      ['a code point past U+10FFFF', [0xf4, 0x90, 0x80, 0x80]],
    ])('§8.1 text with %s closes with 1007', async (_n, bytes) => {
      await closesWith([clientFrame(Op.Text, Buffer.from(bytes))], 1007);
    });

    it('§8.1 invalid UTF-8 split across fragments closes with 1007', async () => {
      await closesWith(
        [
          clientFrame(Op.Text, Buffer.from([0x7b, 0xe2, 0x82]), { fin: false }),
          clientFrame(Op.Cont, Buffer.from([0x28, 0x7d])),
        ],
        1007,
      );
    });

    it('§8.1 a binary message is not checked as UTF-8: refused by the protocol (BAD_FRAME), not 1007', async () => {
      const c = await session();
      c.write(clientFrame(Op.Binary, Buffer.from([0xff, 0xfe])));
      await hasText(c, (t) => t.includes('"BAD_FRAME"'));
      await stillServes(c);
      c.destroy();
    });
  });

  describe('§5.5.1/§7.4 close handling', () => {
    it.each([1000, 1001, 1003, 1008, 1011, 3000, 4999])(
      '§5.5.1 a close with code %i is echoed with it',
      async (code) => {
        const c = await closesWith([clientFrame(Op.Close, closePayload(code, 'bye'))], code);
        expect(c.frames.filter((f) => f.opcode === Op.Close)).toHaveLength(1);
      },
    );

    it('§5.5.1 a close without a payload is answered with 1000', async () => {
      await closesWith([clientFrame(Op.Close, Buffer.alloc(0))], 1000);
    });

    it('§5.5.1 a close reason of 123 bytes is accepted', async () => {
      await closesWith([clientFrame(Op.Close, closePayload(1000, 'r'.repeat(123)))], 1000);
    });

    it.each([0, 999, 1004, 1005, 1006, 1015, 2999, 5000, 65535])(
      '§7.4.1 an invalid close code %i closes with 1002',
      async (code) => {
        await closesWith([clientFrame(Op.Close, closePayload(code))], 1002);
      },
    );

    it('§5.5.1 a close payload of one byte closes with 1002', async () => {
      await closesWith([clientFrame(Op.Close, Buffer.from([0x03]))], 1002);
    });

    it('§7.4 a close reason that is not UTF-8 closes with 1007', async () => {
      await closesWith([clientFrame(Op.Close, closePayload(1000, Buffer.from([0xc3, 0x28])))], 1007);
    });

    it('§5.5.1 nothing after a close frame is processed: a ping sent after it gets no pong', async () => {
      const c = await session();
      c.write([clientFrame(Op.Close, closePayload(1000)), clientFrame(Op.Ping, 'late'), text('p')]);
      expect(await c.closeCode()).toBe(1000);
      await c.whenClosed();
      expect(c.frames.some((f) => f.opcode === Op.Pong)).toBe(false);
      expect(c.texts()).not.toContain('P');
    });
  });

  describe('§10.4 limits', () => {
    it('§10.4 after the welcome, a message past 512 KiB closes with 1009 from its header', async () => {
      const c = await session();
      c.write(clientFrame(Op.Text, Buffer.alloc(0), { len: 512 * 1024 + 1 }));
      expect(await c.closeCode()).toBe(1009);
    });

    it('§10.4 after the welcome, a 200 KiB message is read (the protocol answers it)', async () => {
      const c = await session();
      c.write(text(`{"t":"ping"}${' '.repeat(200 * 1024)}`));
      await hasText(c, (t) => t === 'P' || t.includes('"pong"'));
      c.destroy();
    });

    it('§10.4 before hello, a message past 48 KiB closes with 1009 from its header alone', async () => {
      const c = await rawWs(port);
      c.write(clientFrame(Op.Text, Buffer.alloc(0), { len: 48 * 1024 + 1 })); // the payload never comes
      expect(await c.closeCode()).toBe(1009);
      const close = c.frames.find((f) => f.opcode === Op.Close);
      expect(close?.payload.subarray(2).toString()).toMatch(/too big/);
    });

    it('§10.4 before hello, a socket holds at most 48 KiB of a partial frame', async () => {
      const before = new Set(s.server.gateway.sockets.open);
      const c = await rawWs(port);
      const frame = clientFrame(Op.Text, Buffer.alloc(48 * 1024, 0x20));
      c.write(frame.subarray(0, frame.length - 1)); // all but the last byte: held
      await until(
        () =>
          [...s.server.gateway.sockets.open].some((w) => !before.has(w) && w.heldInput === frame.length - 1),
        5000,
        'partial frame held',
      );
      c.destroy();
    });
  });
});

describe('bounded sockets (Pushwire limits on top of RFC 6455)', () => {
  it('§5.5.3 a ping flood from a client that never reads: pongs are coalesced, the queue stays small', async () => {
    const s = await startServer();
    const port = Number(new URL(s.url).port);
    try {
      const c = await rawWs(port);
      c.sock.pause(); // never reads from now on
      const [ws] = s.server.gateway.sockets.open;
      let max = 0;
      const sampler = setInterval(() => {
        max = Math.max(max, ws?.queuedBytes ?? 0);
      }, 1);
      const batch = Buffer.concat(
        Array.from({ length: 512 }, () => clientFrame(Op.Ping, Buffer.alloc(125, 0x70))),
      );
      let sent = 0;
      for (let i = 0; i < 400 && !c.closed; i++) {
        sent += batch.length;
        if (!c.sock.write(batch)) await new Promise((r) => c.sock.once('drain', r));
      }
      // Barrier: the server has read every byte the client wrote (not "100 ms have passed").
      const server = (ws as unknown as { socket: { bytesRead: number } } | undefined)?.socket;
      await until(() => c.closed || server?.bytesRead === c.sock.bytesWritten, 20_000, 'the flood read');
      clearInterval(sampler);
      expect(c.closed).toBe(false);
      expect(sent).toBeGreaterThan(25 * 1024 * 1024); // 26 MiB of pings: past every kernel buffer
      expect(ws?.queuedBytes).toBeLessThanOrEqual(16 * 1024 + 2 * 127);
      expect(max).toBeLessThanOrEqual(16 * 1024 + 2 * 127);
      c.destroy();
    } finally {
      await s.stop();
    }
  }, 60_000);

  it('a `p` flood from a session that never reads is dropped while its queue still holds far less than 1 MiB of bytes', async () => {
    const s = await startServer();
    const port = Number(new URL(s.url).port);
    try {
      const dev = await registerDevice(s.url);
      const c = await rawWs(port);
      c.write(
        clientFrame(Op.Text, JSON.stringify({ t: 'hello', v: 1, device: dev.deviceId, token: dev.token })),
      );
      await c.frame((f) => f.payload.toString().includes('"welcome"'));
      c.sock.pause();
      const [ws] = s.server.gateway.sockets.open;
      let max = 0;
      const sampler = setInterval(() => {
        max = Math.max(max, ws?.queuedBytes ?? 0);
      }, 1);
      const batch = Buffer.concat(Array.from({ length: 4096 }, () => clientFrame(Op.Text, 'p')));
      for (let i = 0; i < 2000 && s.server.gateway.counters.slowConsumers === 0; i++) {
        if (!c.sock.write(batch))
          await Promise.race([
            new Promise((r) => c.sock.once('drain', r)),
            new Promise((r) => setTimeout(r, 50)),
          ]);
      }
      await until(() => s.server.gateway.counters.slowConsumers === 1, 20_000, 'slow consumer dropped');
      clearInterval(sampler);
      // Each 3-byte `P` costs a queue entry: dropped after about 1 MiB / 163 B ≈ 6,400 queued
      // writes (about 20 KB of bytes), not after 1 MiB of bytes (350,000 writes, ~60 MB of heap).
      expect(max).toBeLessThan(256 * 1024);
      c.destroy();
    } finally {
      await s.stop();
    }
  }, 90_000);

  it('§7.1.1 a socket closed by the server is destroyed within the close timeout while the peer keeps sending, and counted until then', async () => {
    const s = await startServer({ handshakeTimeoutMs: 200, closeTimeoutMs: 500 });
    const port = Number(new URL(s.url).port);
    try {
      const c = await rawWs(port);
      expect(await c.closeCode(5000)).toBe(4008); // no hello in time
      const closedAt = Date.now();
      // Counted while it lingers: /healthz and metrics read this.
      expect(s.server.gateway.connections).toBe(1);
      const health = (await (await fetch(`${s.url}/healthz`)).json()) as { connections: number };
      expect(health.connections).toBe(1);
      let pings = 0;
      const pinger = setInterval(() => {
        pings++;
        c.write(clientFrame(Op.Ping, 'still here'));
      }, 20);
      try {
        await c.whenClosed(5000);
      } finally {
        clearInterval(pinger);
      }
      expect(pings).toBeGreaterThan(5);
      expect(Date.now() - closedAt).toBeLessThan(3000);
      await until(() => s.server.gateway.connections === 0, 3000, 'socket uncounted');
    } finally {
      await s.stop();
    }
  });
});
