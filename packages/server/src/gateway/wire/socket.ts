import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { closeFrame, FrameReader, type FrameSink, frame, Opcode, textFrame, WireClose } from './frames.js';

/** Receives what arrives on a {@link WireSocket}. */
export interface WireListener {
  onMessage(data: Buffer, binary: boolean): void;
  /** The socket is gone; `code` is the peer's close code, or 1006 when it just disconnected. */
  onClose(code: number): void;
}

/** How long a close handshake may take before the socket is destroyed. */
const CLOSE_TIMEOUT_MS = 10_000;

const kWire = Symbol('pushwire.wire');
type Carrier = Duplex & { [kWire]?: WireSocket };

/**
 * A server-side WebSocket on an upgraded socket, kept small because a node holds tens of
 * thousands: no event emitter, no per-connection closures (the socket's listeners are shared
 * functions that find their WireSocket through a symbol), a frame reader that holds nothing
 * between complete frames, and a write path that takes pre-built frames.
 */
export class WireSocket implements FrameSink {
  static readonly OPEN = 1;
  static readonly CLOSING = 2;
  static readonly CLOSED = 3;

  readyState: number = WireSocket.OPEN;
  listener: WireListener | undefined;
  private readonly reader: FrameReader;
  private closeSent = false;
  private peerCode: number = WireClose.Abnormal;

  /**
   * @param open the set of open sockets this one joins until it closes (a server's, for
   *   closing them all at shutdown)
   */
  constructor(
    private readonly socket: Duplex,
    head: Buffer,
    maxMessage: number,
    private readonly open: Set<WireSocket>,
  ) {
    open.add(this);
    this.reader = new FrameReader(maxMessage);
    const s = socket as Carrier;
    s[kWire] = this;
    (socket as Socket).setTimeout?.(0);
    (socket as Socket).setNoDelay?.(true);
    socket.on('data', onData);
    socket.on('end', onEnd);
    socket.on('close', onClose);
    socket.on('error', onError);
    if (head.length > 0) this.reader.push(head, this);
  }

  /** Bytes written but not yet handed to the kernel. */
  get bufferedAmount(): number {
    return this.socket.writableLength;
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
      (this.socket as Socket).setTimeout?.(CLOSE_TIMEOUT_MS, () => this.socket.destroy());
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

  onWirePing(payload: Buffer): void {
    if (this.readyState === WireSocket.OPEN) this.socket.write(frame(Opcode.Pong, payload));
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
    this.open.delete(this);
    const listener = this.listener;
    this.listener = undefined;
    listener?.onClose(this.peerCode);
  }

  /** The peer half-closed: finish our side too. */
  ended(): void {
    if (this.readyState === WireSocket.OPEN) this.readyState = WireSocket.CLOSING;
    this.socket.end();
  }

  push(chunk: Buffer): void {
    this.reader.push(chunk, this);
  }
}

function onData(this: Carrier, chunk: Buffer): void {
  this[kWire]?.push(chunk);
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
