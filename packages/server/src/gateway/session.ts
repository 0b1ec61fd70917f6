import {
  CloseCode,
  type Cursors,
  type ErrorCode,
  type ErrorFrame,
  encodeFrame,
  type ServerFrame,
} from '@pushwire/protocol';
import { StoreError } from '../store/errors.js';
import type { StoredEntry } from '../store/types.js';
import { encodeEntry } from './encode.js';
import { textFrame } from './wire/frames.js';
import { type WireListener, WireSocket } from './wire/socket.js';

/** Delivery progress of one stream within one session. */
interface StreamState {
  /** Highest seq sent on this socket. */
  sent: number;
  /** A replay from the store is running. */
  pumping: boolean;
  /** Something was appended while the replay ran: read again before going live. */
  dirty: boolean;
}

/** What a session needs from the rest of the server. */
export interface SessionHost {
  read(stream: string, after: number): Promise<StoredEntry[]>;
  /** Highest seq of a stream (cheap: a cached value in the embedded store). */
  head(stream: string): Promise<number>;
  readonly pageSize: number;
  readonly maxBufferedBytes: number;
  /** `count` entries were written to the socket; `liveTs` is the publish time of a live hand-over. */
  onDelivered(count: number, liveTs?: number): void;
  onError(err: unknown): void;
  /** The session was dropped: its unsent buffer passed the bound. */
  onSlowConsumer(session: Session): void;
  /** A message arrived on the session's socket. */
  onFrame(session: Session, data: Buffer, binary: boolean): void;
  /** The session's socket closed (`code`: the peer's close code, 1006 without one). */
  onClosed(session: Session, code: number): void;
}

/**
 * One authenticated WebSocket of one device. Sends each stream in seq order: a replay from the
 * store after the cursor, then live entries handed over by the hub. Live entries arriving during a
 * replay are not sent directly; the replay reads again instead, so order holds without buffering.
 *
 *   offer(entry) ──▶ seq ≤ sent? drop (already sent)
 *                 ──▶ replaying?  mark dirty (the replay loop picks it up)
 *                 ──▶ sent ≥ prevSeq? send now (caught up: the common, cheap path);
 *                                     a low-urgency entry is held until the device's next frame
 *                 ──▶ else start a replay from `sent`
 */
/** Held low-urgency frames per session before they are sent anyway (bounds memory). */
const MAX_HELD = 64;

export class Session implements WireListener {
  readonly streams = new Map<string, StreamState>();
  closed = false;
  /** Bucket of the idle-deadline wheel this session is filed in. */
  wheelSlot = -1;
  /** Last time any frame arrived (ms). */
  lastActivity: number;
  /** Declared heartbeat (s) and the idle limit derived from it (ms). */
  heartbeat = 0;
  idleMs = 0;
  /**
   * Low-urgency frames waiting for the device's next frame (its heartbeat), so its radio wakes
   * once for both. Any other send flushes them first, which keeps every stream in order.
   */
  private held: Buffer[] | undefined;

  constructor(
    readonly id: string,
    readonly deviceId: string,
    private readonly socket: WireSocket,
    private readonly host: SessionHost,
    now: number,
  ) {
    this.lastActivity = now;
  }

  /** Starts delivering a stream after `cursor`. */
  open(stream: string, cursor: number): void {
    if (this.streams.has(stream)) return;
    this.streams.set(stream, { sent: cursor, pumping: false, dirty: false });
    void this.pump(stream);
  }

  /** Stops delivering a stream. */
  drop(stream: string): void {
    this.streams.delete(stream);
  }

  onMessage(data: Buffer, binary: boolean): void {
    this.host.onFrame(this, data, binary);
  }

  onClose(code: number): void {
    this.host.onClosed(this, code);
  }

  /**
   * Hands over a newly appended entry; `frame` is its msg frame as WebSocket bytes, built once
   * and written as is to every session that follows the stream.
   */
  offer(entry: StoredEntry, frame: Buffer): void {
    const st = this.streams.get(entry.stream);
    if (!st || this.closed || entry.seq <= st.sent) return;
    if (st.pumping) {
      st.dirty = true;
    } else if (st.sent >= entry.prevSeq) {
      st.sent = entry.seq;
      if (entry.hold) {
        this.held ??= [];
        this.held.push(frame);
        if (this.held.length >= MAX_HELD) this.flushHeld();
      } else {
        this.write(frame);
      }
      this.host.onDelivered(1, entry.ts);
    } else {
      void this.pump(entry.stream);
    }
  }

  /**
   * Reads the session's streams (or one of them) again after what was sent, in case a live
   * hand-over was lost (a cluster bus notifies at most once). A stream being replayed just reads
   * once more. Resolves false when the store was unavailable (the socket stays open; retry later).
   */
  async catchUp(stream?: string): Promise<boolean> {
    if (this.closed) return true;
    const names = stream === undefined ? [...this.streams.keys()] : [stream];
    const runs = names.map((name) => {
      const st = this.streams.get(name);
      if (!st) return true;
      if (st.pumping) {
        st.dirty = true;
        return true;
      }
      return this.pump(name);
    });
    return (await Promise.all(runs)).every(Boolean);
  }

  /** Clamps acks to what this session may acknowledge: its streams, up to what it was sent. */
  entitledAcks(acks: Cursors): Cursors {
    const out: Cursors = {};
    for (const [stream, seq] of Object.entries(acks)) {
      const st = this.streams.get(stream);
      if (st) out[stream] = Math.min(seq, st.sent);
    }
    return out;
  }

  send(frame: ServerFrame): void {
    this.write(textFrame(encodeFrame(frame)));
  }

  /** Sends an error frame; a fatal one closes the socket with `closeCode`. */
  fail(
    code: ErrorCode,
    message: string,
    fatal: boolean,
    closeCode: number = CloseCode.ProtocolError,
    extra?: Partial<ErrorFrame>,
  ): void {
    if (this.closed) return;
    this.send({ t: 'error', code, message, fatal, ...extra });
    if (fatal) this.close(closeCode, code);
  }

  private closedWaiters: (() => void)[] | undefined;

  /** Resolves once the socket has closed. */
  whenClosed(): Promise<void> {
    if (this.socket.readyState === WireSocket.CLOSED) return Promise.resolve();
    return new Promise((resolve) => {
      this.closedWaiters ??= [];
      this.closedWaiters.push(resolve);
    });
  }

  /** Called by the gateway when the socket's close event fired. */
  resolveClosed(): void {
    this.closed = true;
    for (const w of this.closedWaiters ?? []) w();
    this.closedWaiters = undefined;
  }

  close(code: number, reason: string): void {
    if (this.closed) return;
    this.closed = true;
    this.socket.close(code, reason);
  }

  /** Bytes queued in user space for this socket. */
  get buffered(): number {
    return this.socket.bufferedAmount;
  }

  /** Sends the held low-urgency frames now (the device is awake: it just sent a frame). */
  flushHeld(): void {
    const held = this.held;
    if (!held) return;
    this.held = undefined;
    for (const frame of held) this.write(frame);
  }

  /** Writes a WebSocket frame, unless the socket's unsent buffer is past the bound. */
  private write(frame: Buffer, cb?: () => void): void {
    if (this.closed) return cb?.();
    if (this.held) this.flushHeld();
    if (this.socket.bufferedAmount > this.host.maxBufferedBytes) {
      // Bounded memory per connection: a reader this slow resumes later from its cursor.
      this.closed = true;
      this.socket.terminate();
      this.host.onSlowConsumer(this);
      return cb?.();
    }
    this.socket.sendFrame(frame, cb);
  }

  /** Replays a stream from the store after `sent`; false when the store was unavailable. */
  private async pump(stream: string): Promise<boolean> {
    const st = this.streams.get(stream);
    if (!st || st.pumping) return true;
    st.pumping = true;
    try {
      // A device that is caught up (the common case at reconnect) costs no read.
      if ((await this.host.head(stream)) <= st.sent && !st.dirty) return true;
      for (;;) {
        st.dirty = false;
        const rows = await this.host.read(stream, st.sent);
        if (this.closed || this.streams.get(stream) !== st) return true;
        let sent = 0;
        let written: Promise<void> | undefined;
        if (rows.length > 1) this.socket.cork();
        for (const [i, row] of rows.entries()) {
          if (row.seq <= st.sent) continue;
          st.sent = row.seq;
          sent++;
          if (i === rows.length - 1 && rows.length >= this.host.pageSize) {
            // Backpressure between pages: wait until this page reached the kernel.
            written = new Promise((resolve) => this.write(textFrame(encodeEntry(row)), resolve));
          } else {
            this.write(textFrame(encodeEntry(row)));
          }
        }
        this.host.onDelivered(sent);
        if (rows.length >= this.host.pageSize) {
          await written;
          continue;
        }
        if (!st.dirty) return true;
      }
    } catch (err) {
      // The store (Redis) is away: keep the socket, the bus catches the stream up once it is back.
      if (err instanceof StoreError && err.code === 'STORE_UNAVAILABLE') return false;
      this.host.onError(err);
      this.fail('INTERNAL', 'replay failed', true, 1011);
      return true;
    } finally {
      st.pumping = false;
    }
  }
}
