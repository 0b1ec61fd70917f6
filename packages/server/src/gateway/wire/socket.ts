import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { closeFrame, FrameReader, type FrameSink, frame, Opcode, textFrame, WireClose } from './frames.js';
import type { WireSockets } from './registry.js';

/** Receives what arrives on a {@link WireSocket}. */
export interface WireListener {
  onMessage(data: Buffer, binary: boolean): void;
  /** The socket is gone; `code` is the peer's close code, or 1006 when it just disconnected. */
  onClose(code: number): void;
}

/**
 * What one queued write costs beyond its bytes: the stream's queue entry and the Buffer object
 * (measured on Node 20.20: 155 B of heap and 16 B of buffer per queued 14-byte frame). Counted
 * so that a flood of tiny frames to a client that does not read hits the same bound as a few
 * large ones.
 */
export const WRITE_OVERHEAD_BYTES = 160;

const kWire = Symbol('pushwire.wire');
type Carrier = Duplex & { [kWire]?: WireSocket };

/**
 * A server-side WebSocket on an upgraded socket, kept small because a node holds tens of
 * thousands: no event emitter, no per-connection closures (the socket's listeners are shared
 * functions that find their WireSocket through a symbol), a frame reader kept only while a frame
 * is incomplete, and a write path that takes pre-built frames.
 */
export class WireSocket implements FrameSink {
  static readonly OPEN = 1;
  static readonly CLOSING = 2;
  static readonly CLOSED = 3;

  readyState: number = WireSocket.OPEN;
  listener: WireListener | undefined;
  /**
   * The frame reader, kept only between reads that left a partial frame or fragments (or after a
   * protocol error): an idle socket holds none, and a read of whole frames uses a short-lived one.
   */
  private reader: FrameReader | undefined;
  /** Largest message accepted (see {@link setMaxMessage}). */
  private limit: number;
  private closeSent = false;
  private peerCode: number = WireClose.Abnormal;
  /** Writes and bytes since the send queue was last seen empty: estimate the writes queued. */
  private writesSinceEmpty = 0;
  private bytesSinceEmpty = 0;
  /** The payload of the latest ping not answered yet (only one is kept: RFC 6455 §5.5.3). */
  private pongDue: Buffer | undefined;

  /**
   * @param maxMessage largest message accepted at first (see {@link setMaxMessage})
   * @param registry the server's sockets: this one is counted there until it closes, and its
   *   close deadline is kept there
   */
  constructor(
    private readonly socket: Duplex,
    head: Buffer,
    maxMessage: number,
    private readonly registry: WireSockets,
  ) {
    registry.open.add(this);
    this.limit = maxMessage;
    const s = socket as Carrier;
    s[kWire] = this;
    (socket as Socket).setTimeout?.(0);
    (socket as Socket).setNoDelay?.(true);
    socket.on('data', onData);
    socket.on('end', onEnd);
    socket.on('close', onClose);
    socket.on('error', onError);
    if (head.length > 0) this.push(head);
  }

  /**
   * What the unsent queue costs in memory: its bytes plus {@link WRITE_OVERHEAD_BYTES} per queued
   * write. The slow-consumer bound is checked against this, so that a client flooding `p` (each
   * answered by a 3-byte `P` frame) and not reading is dropped as soon as one sent large frames.
   * The number of queued writes is estimated without touching stream internals: the writes since
   * the queue was last empty, scaled by the share of their bytes still queued (exact for frames of
   * one size, and it cannot grow while the client reads).
   */
  get bufferedAmount(): number {
    const bytes = this.socket.writableLength;
    if (bytes === 0 || this.bytesSinceEmpty === 0) return bytes;
    const writes = Math.ceil(
      (this.writesSinceEmpty * Math.min(bytes, this.bytesSinceEmpty)) / this.bytesSinceEmpty,
    );
    return bytes + writes * WRITE_OVERHEAD_BYTES;
  }

  /** Bytes written but not yet handed to the kernel (without the per-write overhead). */
  get queuedBytes(): number {
    return this.socket.writableLength;
  }

  /** Largest message accepted from now on; e.g. small before the client authenticated. */
  setMaxMessage(bytes: number): void {
    this.limit = bytes;
    if (this.reader) this.reader.limit = bytes;
  }

  /** Bytes of input held between reads (a partial frame and fragments). */
  get heldInput(): number {
    return this.reader?.heldBytes ?? 0;
  }

  /** Sends one text message. */
  send(text: string | Buffer, cb?: (err?: Error | null) => void): void {
    this.sendFrame(textFrame(text), cb);
  }

  /** Writes a frame built by {@link textFrame} (the same bytes may go to many sockets). */
  sendFrame(bytes: Buffer, cb?: (err?: Error | null) => void): void {
    if (this.readyState !== WireSocket.OPEN) {
      cb?.(new Error('socket is not open'));
      return;
    }
    this.write(bytes, cb);
  }

  private write(bytes: Buffer, cb?: (err?: Error | null) => void): void {
    if (this.socket.writableLength === 0) {
      this.writesSinceEmpty = 0;
      this.bytesSinceEmpty = 0;
    }
    this.writesSinceEmpty++;
    this.bytesSinceEmpty += bytes.length;
    this.socket.write(bytes, cb);
  }

  /** Starts the close handshake; the socket is destroyed if the peer does not answer in time. */
  close(code: number = WireClose.Normal, reason = ''): void {
    if (this.readyState === WireSocket.CLOSED) return;
    if (!this.closeSent) {
      this.closeSent = true;
      if (this.socket.writable) this.socket.write(closeFrame(code, reason));
    }
    if (this.readyState === WireSocket.OPEN) {
      this.readyState = WireSocket.CLOSING;
      this.pongDue = undefined;
      // An absolute deadline: a socket timeout would restart with every byte the peer sends.
      this.registry.startClose(this);
    }
  }

  /** Drops the connection at once. */
  terminate(): void {
    if (this.readyState === WireSocket.CLOSED) return;
    this.readyState = WireSocket.CLOSING;
    this.socket.destroy();
  }

  /** Groups the writes of the current tick into fewer system calls (a replay page). */
  cork(): void {
    this.socket.cork();
    process.nextTick(uncork, this.socket);
  }

  onWireMessage(payload: Buffer, binary: boolean): void {
    if (this.readyState === WireSocket.OPEN) this.listener?.onMessage(payload, binary);
  }

  /**
   * Answers a ping, at most one pong queued: while the send queue is past its high-water mark
   * (the client does not read), only the latest ping's payload is kept and answered on drain
   * (RFC 6455 §5.5.3 allows answering only the most recent ping). So a ping flood from a client
   * that never reads costs one pending pong, not a queue that grows with the flood.
   */
  onWirePing(payload: Buffer): void {
    if (this.readyState !== WireSocket.OPEN) return;
    if (!this.socket.writableNeedDrain) return this.write(frame(Opcode.Pong, payload));
    if (!this.pongDue) this.socket.once('drain', onDrain);
    this.pongDue = Buffer.from(payload); // a copy: the payload is a view of a read buffer
  }

  /** The send queue drained: send the pong kept back, if the socket is still open. */
  drained(): void {
    const payload = this.pongDue;
    this.pongDue = undefined;
    if (payload && this.readyState === WireSocket.OPEN) this.write(frame(Opcode.Pong, payload));
  }

  onWireClose(code: number): void {
    this.peerCode = code;
    // Echo the close (RFC 6455 §5.5.1) and end our side; the socket's close event finishes.
    this.close(code === WireClose.NoStatus ? WireClose.Normal : code);
    this.socket.end();
  }

  onWireError(code: number, reason: string): void {
    this.peerCode = code;
    this.close(code, reason);
    this.socket.end();
  }

  /** The underlying socket closed. */
  closed(): void {
    if (this.readyState === WireSocket.CLOSED) return;
    this.readyState = WireSocket.CLOSED;
    this.pongDue = undefined;
    this.registry.open.delete(this);
    const listener = this.listener;
    this.listener = undefined;
    listener?.onClose(this.peerCode);
  }

  /** The peer half-closed: finish our side too. */
  ended(): void {
    if (this.readyState === WireSocket.OPEN) {
      this.readyState = WireSocket.CLOSING;
      this.pongDue = undefined;
      // Our end may wait behind unsent bytes the peer never reads: the same absolute deadline.
      this.registry.startClose(this);
    }
    this.socket.end();
  }

  push(chunk: Buffer): void {
    // Kept in the field while it reads, so that a limit set by the sink meanwhile applies to it.
    this.reader ??= new FrameReader(this.limit);
    const reader = this.reader;
    reader.push(chunk, this);
    if (reader.idle && this.reader === reader) this.reader = undefined;
  }
}

function onData(this: Carrier, chunk: Buffer): void {
  this[kWire]?.push(chunk);
}

function onDrain(this: Carrier): void {
  this[kWire]?.drained();
}

function onEnd(this: Carrier): void {
  this[kWire]?.ended();
}

function onClose(this: Carrier): void {
  this[kWire]?.closed();
}

function onError(this: Carrier): void {
  // The close event follows and tells the listener; nothing else to do.
}

function uncork(socket: Duplex): void {
  socket.uncork();
}
