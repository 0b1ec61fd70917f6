/**
 * RFC 6455 framing for the server side, without I/O: a reader for client frames (masked, no
 * extensions) and writers for server frames (unmasked). A server frame carries no mask, so the
 * same bytes can be written to every socket: a broadcast builds its frame once.
 */
import { isUtf8 } from 'node:buffer';
import { GrowBuffer } from './grow-buffer.js';

export const Opcode = {
  Continuation: 0x0,
  Text: 0x1,
  Binary: 0x2,
  Close: 0x8,
  Ping: 0x9,
  Pong: 0xa,
} as const;

/** Close codes this layer sends on its own (RFC 6455 §7.4.1). */
export const WireClose = {
  Normal: 1000,
  ProtocolError: 1002,
  NoStatus: 1005,
  Abnormal: 1006,
  InvalidPayload: 1007,
  TooBig: 1009,
} as const;

/** Where the reader delivers what it parsed. */
export interface FrameSink {
  /** A whole data message (fragments joined); text is checked to be UTF-8. */
  onWireMessage(payload: Buffer, binary: boolean): void;
  onWirePing(payload: Buffer): void;
  /** The peer's close frame; `code` is 1005 when it carried none. */
  onWireClose(code: number, reason: string): void;
  /** The peer broke the protocol: close with `code` and stop reading. */
  onWireError(code: number, reason: string): void;
}

/** Longest frame header a client sends: 2 bytes, 8 of extended length, 4 of mask. */
export const MAX_CLIENT_HEADER = 14;

/**
 * Incremental reader of client→server frames. Holds at most one partial frame (bounded by the
 * limit plus a header) and the fragments of one message, each in one {@link GrowBuffer}: a frame
 * arriving in many reads is joined in amortised linear time, not re-concatenated per read.
 * Complete frames inside a read are parsed in place, without a copy.
 */
export class FrameReader {
  /** The partial frame at the end of the last read (none on an idle socket: nothing allocated). */
  private partial: GrowBuffer | undefined;
  /** Bytes the partial frame needs in all, once its header was read (0 before). */
  private need = 0;
  private fragments: GrowBuffer | undefined;
  private fragmentBinary = false;
  private failed = false;
  /** Bytes copied while joining reads and fragments, for tests of the linear bound. */
  copiedBytes = 0;

  /**
   * @param limit largest message (and frame) accepted; larger ones close with 1009. It may be
   *   changed between reads, e.g. raised once a client has authenticated.
   */
  constructor(public limit: number) {}

  /** Bytes held between reads: the partial frame and the fragments received so far. */
  get heldBytes(): number {
    return (this.partial?.length ?? 0) + (this.fragments?.length ?? 0);
  }

  /** Holds nothing between reads and may read on: a new reader would do the same. */
  get idle(): boolean {
    return this.partial === undefined && this.fragments === undefined && !this.failed;
  }

  /** Memory pinned between reads, spare room of the growing buffers included. */
  get heldCapacity(): number {
    return (this.partial?.capacity ?? 0) + (this.fragments?.capacity ?? 0);
  }

  /** Feeds bytes from the socket; calls the sink for every complete frame, in order. */
  push(chunk: Buffer, sink: FrameSink): void {
    if (this.failed) return;
    let data = chunk;
    const partial = this.partial;
    if (partial) {
      this.copiedBytes += partial.append(chunk, this.need);
      if (partial.length < this.need) return; // still incomplete: nothing to parse again
      data = partial.view();
    }
    let off = 0;
    while (data.length - off >= 2) {
      const b0 = data[off] as number;
      const b1 = data[off + 1] as number;
      const fin = (b0 & 0x80) !== 0;
      const opcode = b0 & 0x0f;
      if ((b0 & 0x70) !== 0) return this.fail(sink, WireClose.ProtocolError, 'RSV bits set');
      if ((b1 & 0x80) === 0) return this.fail(sink, WireClose.ProtocolError, 'client frames must be masked');
      let len = b1 & 0x7f;
      let header = 2;
      if (len === 126) {
        if (data.length - off < 4) break;
        len = data.readUInt16BE(off + 2);
        header = 4;
      } else if (len === 127) {
        if (data.length - off < 10) break;
        if (data.readUInt32BE(off + 2) !== 0) return this.fail(sink, WireClose.TooBig, 'message too big');
        len = data.readUInt32BE(off + 6);
        header = 10;
      }
      if (opcode >= 0x8) {
        if (opcode > Opcode.Pong) return this.fail(sink, WireClose.ProtocolError, 'reserved opcode');
        if (!fin) return this.fail(sink, WireClose.ProtocolError, 'fragmented control frame');
        if (len > 125) return this.fail(sink, WireClose.ProtocolError, 'control frame too long');
      } else {
        if (opcode > Opcode.Binary) return this.fail(sink, WireClose.ProtocolError, 'reserved opcode');
        if (opcode === Opcode.Continuation && !this.fragments)
          return this.fail(sink, WireClose.ProtocolError, 'continuation without a message');
        if (opcode !== Opcode.Continuation && this.fragments)
          return this.fail(sink, WireClose.ProtocolError, 'new message inside a fragmented one');
        if ((this.fragments?.length ?? 0) + len > this.limit)
          return this.fail(sink, WireClose.TooBig, 'message too big');
      }
      const end = off + header + 4 + len;
      if (data.length < end) {
        this.need = end - off;
        break;
      }
      this.need = 0;
      const payload = data.subarray(off + header + 4, end);
      unmask(payload, data, off + header);
      off = end;
      if (!this.frame(sink, fin, opcode, payload)) return;
    }
    if (data !== chunk) {
      if (off === 0) return; // the held frame is still incomplete (its header was short)
      // Payloads delivered from the held buffer may be kept by the sink: never write over them.
      this.partial = undefined;
    }
    if (off < data.length) {
      // Copied, so a small tail does not pin a large read buffer.
      this.partial = new GrowBuffer();
      this.copiedBytes += this.partial.append(data.subarray(off), this.need);
    }
  }

  /** Handles one complete frame; false once reading must stop. */
  private frame(sink: FrameSink, fin: boolean, opcode: number, payload: Buffer): boolean {
    switch (opcode) {
      case Opcode.Ping:
        sink.onWirePing(payload);
        return true;
      case Opcode.Pong:
        return true;
      case Opcode.Close:
        return this.close(sink, payload);
    }
    if (opcode !== Opcode.Continuation) {
      if (fin) return this.message(sink, payload, opcode === Opcode.Binary);
      this.fragments = new GrowBuffer();
      this.fragmentBinary = opcode === Opcode.Binary;
    }
    const parts = this.fragments as GrowBuffer;
    this.copiedBytes += parts.append(payload, this.limit);
    if (!fin) return true;
    this.fragments = undefined;
    return this.message(sink, parts.view(), this.fragmentBinary);
  }

  private message(sink: FrameSink, payload: Buffer, binary: boolean): boolean {
    if (!binary && !isUtf8(payload)) {
      this.fail(sink, WireClose.InvalidPayload, 'text message is not UTF-8');
      return false;
    }
    sink.onWireMessage(payload, binary);
    return !this.failed;
  }

  private close(sink: FrameSink, payload: Buffer): boolean {
    if (payload.length === 0) {
      this.failed = true; // nothing is read after a close frame
      sink.onWireClose(WireClose.NoStatus, '');
      return false;
    }
    const code = payload.length >= 2 ? payload.readUInt16BE(0) : 0;
    const reason = payload.subarray(2);
    if (payload.length === 1 || !isValidCloseCode(code)) {
      this.fail(sink, WireClose.ProtocolError, 'invalid close code');
    } else if (!isUtf8(reason)) {
      this.fail(sink, WireClose.InvalidPayload, 'close reason is not UTF-8');
    } else {
      this.failed = true;
      sink.onWireClose(code, reason.toString('utf8'));
    }
    return false;
  }

  private fail(sink: FrameSink, code: number, reason: string): void {
    this.failed = true;
    this.partial = undefined;
    this.need = 0;
    this.fragments = undefined;
    sink.onWireError(code, reason);
  }
}

/** XORs `payload` in place with the 4-byte mask at `data[at]`. */
function unmask(payload: Buffer, data: Buffer, at: number): void {
  const m0 = data[at] as number;
  const m1 = data[at + 1] as number;
  const m2 = data[at + 2] as number;
  const m3 = data[at + 3] as number;
  const n = payload.length;
  let i = 0;
  for (; i + 3 < n; i += 4) {
    payload[i] = (payload[i] as number) ^ m0;
    payload[i + 1] = (payload[i + 1] as number) ^ m1;
    payload[i + 2] = (payload[i + 2] as number) ^ m2;
    payload[i + 3] = (payload[i + 3] as number) ^ m3;
  }
  // The last 0–3 bytes; no array per frame on this per-message path.
  if (i < n) payload[i] = (payload[i] as number) ^ m0;
  if (i + 1 < n) payload[i + 1] = (payload[i + 1] as number) ^ m1;
  if (i + 2 < n) payload[i + 2] = (payload[i + 2] as number) ^ m2;
}

/** Codes a peer may send in a close frame (RFC 6455 §7.4, IANA registry, private 3000–4999). */
export function isValidCloseCode(code: number): boolean {
  return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) || (code >= 3000 && code <= 4999);
}

function headerLength(len: number): number {
  return len < 126 ? 2 : len < 65536 ? 4 : 10;
}

function writeHeader(buf: Buffer, opcode: number, len: number): number {
  buf[0] = 0x80 | opcode;
  if (len < 126) {
    buf[1] = len;
    return 2;
  }
  if (len < 65536) {
    buf[1] = 126;
    buf.writeUInt16BE(len, 2);
    return 4;
  }
  buf[1] = 127;
  buf.writeUInt32BE(0, 2);
  buf.writeUInt32BE(len, 6);
  return 10;
}

/** One unmasked text frame, header and payload in one buffer (one write per socket). */
export function textFrame(text: string | Buffer): Buffer {
  if (typeof text !== 'string') return frame(Opcode.Text, text);
  const len = Buffer.byteLength(text);
  const buf = Buffer.allocUnsafe(headerLength(len) + len);
  buf.write(text, writeHeader(buf, Opcode.Text, len), 'utf8');
  return buf;
}

/** One unmasked frame of any opcode. */
export function frame(opcode: number, payload: Buffer): Buffer {
  const buf = Buffer.allocUnsafe(headerLength(payload.length) + payload.length);
  payload.copy(buf, writeHeader(buf, opcode, payload.length));
  return buf;
}

/** A close frame; the reason is cut to fit the 125-byte control frame limit. */
export function closeFrame(code: number, reason = ''): Buffer {
  let text = reason;
  while (Buffer.byteLength(text) > 123) text = text.slice(0, -1); // whole characters only
  const r = Buffer.from(text, 'utf8');
  const payload = Buffer.allocUnsafe(2 + r.length);
  payload.writeUInt16BE(code, 0);
  r.copy(payload, 2);
  return frame(Opcode.Close, payload);
}
