/**
 * Minimal WebSocket client framing (RFC 6455) for the load generator: the upgrade request,
 * masked frames out, unmasked frames in. No extensions, no UTF-8 validation: just enough to hold
 * tens of thousands of connections per process cheaply.
 */
import { randomBytes } from 'node:crypto';

export const OP_CONT = 0x0;
export const OP_TEXT = 0x1;
export const OP_BINARY = 0x2;
export const OP_CLOSE = 0x8;
export const OP_PING = 0x9;
export const OP_PONG = 0xa;

/** The HTTP/1.1 upgrade request. */
export function upgradeRequest(host: string, path: string, protocol?: string): string {
  const key = randomBytes(16).toString('base64');
  return (
    `GET ${path} HTTP/1.1\r\nHost: ${host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
    `Sec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n` +
    (protocol ? `Sec-WebSocket-Protocol: ${protocol}\r\n` : '') +
    '\r\n'
  );
}

const maskPool = randomBytes(4096);
let maskAt = 0;

/** A masked client frame (clients must mask, RFC 6455 §5.3). */
export function clientFrame(payload: Buffer | string, opcode = OP_TEXT): Buffer {
  const data = typeof payload === 'string' ? Buffer.from(payload) : payload;
  const len = data.length;
  const head = len < 126 ? 2 : len < 65536 ? 4 : 10;
  const out = Buffer.allocUnsafe(head + 4 + len);
  out[0] = 0x80 | opcode;
  if (len < 126) out[1] = 0x80 | len;
  else if (len < 65536) {
    out[1] = 0x80 | 126;
    out.writeUInt16BE(len, 2);
  } else {
    out[1] = 0x80 | 127;
    out.writeBigUInt64BE(BigInt(len), 2);
  }
  if (maskAt + 4 > maskPool.length) {
    randomBytes(maskPool.length).copy(maskPool);
    maskAt = 0;
  }
  maskPool.copy(out, head, maskAt, maskAt + 4);
  maskAt += 4;
  for (let i = 0; i < len; i++) out[head + 4 + i] = data[i]! ^ out[head + (i & 3)]!;
  return out;
}

/** Parser state kept on each connection. */
export interface FrameState {
  /** Bytes of an incomplete frame. */
  rest: Buffer | undefined;
  /** Fragments of an incomplete message. */
  frags: Buffer[] | undefined;
  fragOp: number;
}

export const newFrameState = (): FrameState => ({ rest: undefined, frags: undefined, fragOp: 0 });

/**
 * Feeds bytes from the server; calls `onMessage(opcode, payload)` for each complete message
 * (fragments joined) and control frame. Returns false on a protocol violation.
 */
export function feedFrames(
  st: FrameState,
  chunk: Buffer,
  onMessage: (opcode: number, payload: Buffer) => void,
): boolean {
  let buf = st.rest ? Buffer.concat([st.rest, chunk]) : chunk;
  let at = 0;
  for (let guard = 0; guard < 1_000_000; guard++) {
    if (buf.length - at < 2) break;
    const b0 = buf[at]!;
    const b1 = buf[at + 1]!;
    if (b1 & 0x80) return false; // servers never mask
    let len = b1 & 0x7f;
    let head = 2;
    if (len === 126) {
      if (buf.length - at < 4) break;
      len = buf.readUInt16BE(at + 2);
      head = 4;
    } else if (len === 127) {
      if (buf.length - at < 10) break;
      len = Number(buf.readBigUInt64BE(at + 2));
      head = 10;
    }
    if (buf.length - at < head + len) break;
    const payload = buf.subarray(at + head, at + head + len);
    at += head + len;
    const fin = (b0 & 0x80) !== 0;
    const op = b0 & 0x0f;
    if (op >= 0x8) onMessage(op, payload);
    else if (op === OP_CONT) {
      if (!st.frags) return false;
      st.frags.push(Buffer.from(payload));
      if (fin) {
        const whole = Buffer.concat(st.frags);
        st.frags = undefined;
        onMessage(st.fragOp, whole);
      }
    } else if (!fin) {
      st.frags = [Buffer.from(payload)];
      st.fragOp = op;
    } else onMessage(op, payload);
  }
  st.rest = at < buf.length ? Buffer.from(buf.subarray(at)) : undefined;
  buf = Buffer.alloc(0);
  return true;
}
