import { connect, type Socket } from 'node:net';
import { SUBPROTOCOL } from '@pushwire/protocol';

/** WebSocket opcodes (RFC 6455 §5.2). */
export const Op = { Cont: 0x0, Text: 0x1, Binary: 0x2, Close: 0x8, Ping: 0x9, Pong: 0xa } as const;

/**
 * A client frame as browsers and `ws` send them (masked), or broken on purpose: `mask: false`,
 * RSV bits, any opcode, and a declared length that differs from the payload (`len`).
 */
export function clientFrame(
  opcode: number,
  payload: Buffer | string,
  opts: { fin?: boolean; mask?: boolean; rsv?: number; key?: Buffer; len?: number } = {},
): Buffer {
  const body = typeof payload === 'string' ? Buffer.from(payload) : payload;
  const { fin = true, mask = true, rsv = 0, key = Buffer.from([0x37, 0xfa, 0x21, 0x3d]) } = opts;
  const len = opts.len ?? body.length;
  const ext = len < 126 ? 0 : len < 65536 ? 2 : 8;
  const head = Buffer.alloc(2 + ext + (mask ? 4 : 0));
  head[0] = (fin ? 0x80 : 0) | rsv | opcode;
  head[1] = (mask ? 0x80 : 0) | (ext === 0 ? len : ext === 2 ? 126 : 127);
  if (ext === 2) head.writeUInt16BE(len, 2);
  if (ext === 8) head.writeBigUInt64BE(BigInt(len), 2);
  if (!mask) return Buffer.concat([head, body]);
  key.copy(head, 2 + ext);
  const masked = Buffer.allocUnsafe(body.length);
  for (let i = 0; i < body.length; i++) masked[i] = (body[i] as number) ^ (key[i % 4] as number);
  return Buffer.concat([head, masked]);
}

/** A close frame's payload: the code and a UTF-8 reason. */
export function closePayload(code: number, reason: string | Buffer = ''): Buffer {
  const r = typeof reason === 'string' ? Buffer.from(reason) : reason;
  const p = Buffer.alloc(2 + r.length);
  p.writeUInt16BE(code, 0);
  r.copy(p, 2);
  return p;
}

/** One frame from the server, parsed. */
export interface ServerWireFrame {
  fin: boolean;
  rsv: number;
  opcode: number;
  masked: boolean;
  payload: Buffer;
}

/**
 * A raw WebSocket client on a TCP socket: records every server frame, whether the socket closed,
 * and lets a test write any bytes.
 */
export class RawWs {
  readonly frames: ServerWireFrame[] = [];
  closed = false;
  private buf: Buffer = Buffer.alloc(0);
  private waiters: (() => void)[] = [];

  constructor(readonly sock: Socket) {
    sock.on('data', (d: Buffer) => {
      this.buf = this.buf.length ? Buffer.concat([this.buf, d]) : d;
      this.parse();
      this.wake();
    });
    sock.on('close', () => {
      this.closed = true;
      this.wake();
    });
    sock.on('error', () => {});
    sock.resume();
  }

  write(bytes: Buffer | Buffer[]): void {
    if (!this.sock.writable) return;
    this.sock.write(Array.isArray(bytes) ? Buffer.concat(bytes) : bytes);
  }

  /** Text messages received (whole frames only; the server does not fragment). */
  texts(): string[] {
    return this.frames.filter((f) => f.opcode === Op.Text).map((f) => f.payload.toString());
  }

  /** Waits for a frame matching `pred` (frames already received count). */
  async frame(pred: (f: ServerWireFrame) => boolean, timeoutMs = 5000): Promise<ServerWireFrame> {
    const end = Date.now() + timeoutMs;
    for (;;) {
      const f = this.frames.find(pred);
      if (f) return f;
      if (this.closed) throw new Error('socket closed before the frame');
      if (Date.now() > end) throw new Error(`no such frame within ${timeoutMs} ms`);
      await this.wait(end - Date.now());
    }
  }

  /** The code of the server's close frame (1006 when the socket closed without one). */
  async closeCode(timeoutMs = 5000): Promise<number> {
    const end = Date.now() + timeoutMs;
    for (;;) {
      const f = this.frames.find((x) => x.opcode === Op.Close);
      if (f) return f.payload.length >= 2 ? f.payload.readUInt16BE(0) : 1005;
      if (this.closed) return 1006;
      if (Date.now() > end) throw new Error(`no close within ${timeoutMs} ms`);
      await this.wait(end - Date.now());
    }
  }

  /** Resolves when the TCP connection is gone. */
  async whenClosed(timeoutMs = 5000): Promise<void> {
    const end = Date.now() + timeoutMs;
    while (!this.closed) {
      if (Date.now() > end) throw new Error(`socket still open after ${timeoutMs} ms`);
      await this.wait(end - Date.now());
    }
  }

  destroy(): void {
    this.sock.destroy();
  }

  private wait(ms: number): Promise<void> {
    return new Promise((r) => {
      const t = setTimeout(r, Math.max(ms, 1));
      this.waiters.push(() => {
        clearTimeout(t);
        r();
      });
    });
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  private parse(): void {
    let off = 0;
    const b = this.buf;
    while (b.length - off >= 2) {
      const b0 = b[off] as number;
      const b1 = b[off + 1] as number;
      let len = b1 & 0x7f;
      let at = off + 2;
      if (len === 126) {
        if (b.length - off < 4) break;
        len = b.readUInt16BE(off + 2);
        at = off + 4;
      } else if (len === 127) {
        if (b.length - off < 10) break;
        len = Number(b.readBigUInt64BE(off + 2));
        at = off + 10;
      }
      const masked = (b1 & 0x80) !== 0;
      if (masked) at += 4;
      if (b.length < at + len) break;
      this.frames.push({
        fin: (b0 & 0x80) !== 0,
        rsv: b0 & 0x70,
        opcode: b0 & 0x0f,
        masked,
        payload: Buffer.from(b.subarray(at, at + len)),
      });
      off = at + len;
    }
    this.buf = off === b.length ? Buffer.alloc(0) : b.subarray(off);
  }
}

/** Raw HTTP upgrade to `/v1/connect`; resolves with the socket and the response head. */
export function rawUpgrade(
  port: number,
  headers: Record<string, string> = {},
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
      sock.pause(); // the caller's reader resumes it: nothing read past the head is lost
      sock.off('data', onData);
      sock.off('error', reject);
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

/** An upgraded raw WebSocket client to a server on `port`. */
export async function rawWs(port: number): Promise<RawWs> {
  const { sock, head } = await rawUpgrade(port);
  if (!/^HTTP\/1\.1 101 /.test(head)) throw new Error(`upgrade refused: ${head.split('\r\n')[0]}`);
  return new RawWs(sock);
}
