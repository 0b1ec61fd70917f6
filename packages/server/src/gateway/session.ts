import {
  CloseCode,
  type Cursors,
  type ErrorCode,
  type ErrorFrame,
  encodeFrame,
  type ServerFrame,
} from '@pushwire/protocol';
import type { Follower } from '../core/follower.js';
import { StoreError } from '../store/errors.js';
import type { StoredEntry } from '../store/types.js';
import { sessionIdOf } from '../util/ids.js';
import { encodeEntry } from './encode.js';
import type { RequestLimiter } from './requests.js';
import { type StreamState, StreamStates } from './streams.js';
import { textFrame } from './wire/frames.js';
import { type WireListener, WireSocket } from './wire/socket.js';

/** A session whose socket is above the high-water mark: message writers wait for `drained`. */
interface Flow {
  /** When the socket went above the mark (ms). */
  readonly since: number;
  readonly drained: Promise<void>;
  readonly release: () => void;
}

/** What a session needs from the rest of the server. */
export interface SessionHost {
  read(stream: string, after: number): Promise<StoredEntry[]>;
  /** Highest seq of a stream (cheap: a cached value in the embedded store). */
  head(stream: string): Promise<number>;
  readonly pageSize: number;
  readonly maxBufferedBytes: number;
  /** Unsent bytes past which messages wait for the socket to drain. */
  readonly highWaterBytes: number;
  now(): number;
  /** The session's socket went above the high-water mark (the gateway watches for a stall). */
  onBlocked(session: Session): void;
  /** `count` entries were written to the socket; `liveTs` is the publish time of a live hand-over. */
  onDelivered(count: number, liveTs?: number): void;
  onError(err: unknown): void;
  /** The session was dropped: its unsent buffer passed the bound. */
  onSlowConsumer(session: Session): void;
  /** A message arrived on the session's socket. */
  onFrame(session: Session, data: Buffer, binary: boolean): void;
  /** The session's socket closed (`code`: the peer's close code, 1006 without one). */
  onClosed(session: Session, code: number): void;
  /**
   * Optional: the frame an entry is sent as, for sessions of another device protocol (autopush);
   * undefined = nothing to send for this entry (it still counts as sent). Default: the msg frame.
   */
  encode?(entry: StoredEntry, session: Session): Buffer | undefined;
  /**
   * Optional, with `encode`: the frame a control frame (error, goaway) is sent as on this
   * protocol; undefined = none (the close code that follows says it). Default: the frame itself.
   */
  control?(frame: ServerFrame, session: Session): Buffer | undefined;
}

/**
 * One authenticated WebSocket of one device. Sends each stream in seq order: a replay from the
 * store after the cursor, then live entries handed over by the hub. Live entries arriving during a
 * replay are not sent directly; the replay reads again instead, so order holds without buffering.
 *
 *   offer(entry) ──▶ seq ≤ sent? drop (already sent)
 *                 ──▶ replaying?  mark dirty (the replay loop picks it up)
 *                 ──▶ sent ≥ prevSeq and the socket below its high-water mark? send now (caught
 *                     up: the common, cheap path); a low-urgency entry is held until the device's
 *                     next frame
 *                 ──▶ else start a replay from `sent` (it waits for the socket to drain first)
 *
 * Flow control: messages are written while the socket's unsent bytes are under the high-water
 * mark. The write that crosses it carries a callback; until the socket has handed that write to
 * the kernel, replays wait and live entries take the replay path, so a backlog of any size goes
 * out at the reader's pace and the buffer never holds much more than the mark. Only a reader that
 * does not drain for `slowConsumerTimeoutMs` (the gateway watches) is dropped as a slow consumer.
 */
/** Held low-urgency frames per session before they are sent anyway (bounds memory). */
const MAX_HELD = 64;

/** The bare pong (`P`) as WebSocket bytes: built once, written for every ping. */
const PONG_FRAME = textFrame(encodeFrame({ t: 'pong' }));

export class Session implements WireListener, Follower {
  readonly streams = new StreamStates();
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
  /** Set while the socket is above the high-water mark (allocated only then). */
  private flow: Flow | undefined;
  /** Request limits, allocated at the session's first request. */
  requests: RequestLimiter | undefined;
  /**
   * Topic patterns the device may subscribe to by itself (from the key that registered it);
   * undefined: any topic.
   */
  subscribePatterns: readonly string[] | undefined;
  /** The device's user, for `{user}` in its patterns. */
  user: string | undefined;

  constructor(
    /** From `nextSessionNumber()`: the id is made from it when asked (a string per session less). */
    private readonly serial: number,
    readonly deviceId: string,
    private readonly socket: WireSocket,
    private readonly host: SessionHost,
    now: number,
  ) {
    this.lastActivity = now;
  }

  /** The session's id, for the welcome, the cluster bus and logs. */
  get id(): string {
    return sessionIdOf(this.serial);
  }

  /** Starts delivering a stream after `cursor`. */
  open(stream: string, cursor: number): void {
    if (this.streams.has(stream)) return;
    this.streams.add(stream, cursor);
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
    } else if (st.sent >= entry.prevSeq && this.flow === undefined) {
      st.sent = entry.seq;
      if (this.host.encode) {
        const own = this.host.encode(entry, this);
        if (own === undefined) return;
        frame = own;
      }
      if (entry.hold) {
        this.held ??= [];
        this.held.push(frame);
        if (this.held.length >= MAX_HELD) this.flushHeld();
      } else {
        this.writeMessage(frame);
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

  /**
   * Clamps acks to what this session may acknowledge: its streams, up to what it was sent. Works
   * in place on the decoded frame's object (an ack is the most frequent frame: no copy) and
   * returns how many streams remain; a stream the session does not follow is removed.
   */
  entitleAcks(acks: Cursors): number {
    let n = 0;
    for (const stream in acks) {
      const st = this.streams.get(stream);
      if (st === undefined) delete acks[stream];
      else {
        if (acks[stream]! > st.sent) acks[stream] = st.sent;
        n++;
      }
    }
    return n;
  }

  send(frame: ServerFrame): void {
    if (frame.t === 'pong' && !this.host.control) return this.write(PONG_FRAME);
    if (this.host.control) {
      const own = this.host.control(frame, this);
      if (own !== undefined) this.write(own);
      return;
    }
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
    this.flow?.release();
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

  /** Since when (ms) messages have waited for the socket to drain; undefined when they do not. */
  get blockedSince(): number | undefined {
    return this.flow?.since;
  }

  /** Drops the session for not reading: a reader this slow resumes later from its cursor. */
  dropSlow(): void {
    if (this.closed) return;
    this.closed = true;
    this.socket.terminate();
    this.flow?.release();
    this.host.onSlowConsumer(this);
  }

  /** Sends the held low-urgency frames now (the device is awake: it just sent a frame). */
  flushHeld(): void {
    const held = this.held;
    if (!held) return;
    this.held = undefined;
    for (const frame of held) this.write(frame);
  }

  /**
   * Writes a WebSocket frame, unless the socket's unsent buffer is past the bound. Messages stop at
   * the high-water mark far below it, so only replies to a client that keeps sending frames but
   * never reads get here (bounded memory per connection).
   */
  private write(frame: Buffer, cb?: () => void): void {
    if (this.closed) return cb?.();
    if (this.held) this.flushHeld();
    if (this.socket.bufferedAmount > this.host.maxBufferedBytes) {
      this.dropSlow();
      return cb?.();
    }
    this.socket.sendFrame(frame, cb);
  }

  /**
   * Writes a message frame; the one that takes the socket past the high-water mark blocks further
   * messages until the socket has handed it to the kernel (its write callback).
   */
  private writeMessage(frame: Buffer): void {
    if (this.flow !== undefined || this.socket.bufferedAmount + frame.length < this.host.highWaterBytes) {
      return this.write(frame);
    }
    let release!: () => void;
    const drained = new Promise<void>((resolve) => {
      release = resolve;
    });
    const flow: Flow = {
      since: this.host.now(),
      drained,
      release: () => {
        if (this.flow === flow) this.flow = undefined;
        release();
      },
    };
    this.flow = flow;
    this.write(frame, flow.release);
    if (this.flow === flow) this.host.onBlocked(this);
  }

  /** Waits until the socket is below the high-water mark; false when the stream is no longer sent. */
  private async drained(stream: string, st: StreamState): Promise<boolean> {
    while (this.flow !== undefined && !this.closed) await this.flow.drained;
    return !this.closed && this.streams.get(stream) === st;
  }

  /**
   * Replays a stream from the store after `sent`, at the socket's pace (see the class comment);
   * false when the store was unavailable.
   */
  private async pump(stream: string): Promise<boolean> {
    const st = this.streams.get(stream);
    if (!st || st.pumping) return true;
    st.pumping = true;
    try {
      // A device that is caught up (the common case at reconnect) costs no read.
      if ((await this.host.head(stream)) <= st.sent && !st.dirty) return true;
      for (;;) {
        st.dirty = false;
        // Read only when the rows can be written: a blocked session holds no page.
        if (!(await this.drained(stream, st))) return true;
        const rows = await this.host.read(stream, st.sent);
        if (this.closed || this.streams.get(stream) !== st) return true;
        let sent = 0;
        if (rows.length > 1) this.socket.cork();
        for (const row of rows) {
          if (this.flow !== undefined) {
            this.host.onDelivered(sent);
            sent = 0;
            if (!(await this.drained(stream, st))) return true;
            this.socket.cork();
          }
          if (row.seq <= st.sent) continue;
          st.sent = row.seq;
          const frame = this.host.encode ? this.host.encode(row, this) : textFrame(encodeEntry(row));
          if (frame === undefined) continue;
          sent++;
          this.writeMessage(frame);
        }
        this.host.onDelivered(sent);
        if (rows.length >= this.host.pageSize) continue;
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
