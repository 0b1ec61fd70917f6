import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import type { ResolvedOptions } from '../config.js';
import type { Hub } from '../core/hub.js';
import type { WireListener, WireSocket } from '../gateway/wire/socket.js';
import type { Access, Principal } from './auth.js';
import { type AcceptedReply, accepted, publishOne } from './messages.js';
import {
  type BodyValidator,
  decodePublishFrame,
  isRefusal,
  type JsonParse,
  PublishClose,
  type RefusalResult,
  refusal,
  refusalOf,
} from './publish-frames.js';

/** What every publisher connection of a server shares. */
export interface PublishHost {
  hub: Hub;
  opts: ResolvedOptions;
  access: Access;
  log: Logger | undefined;
  parse: JsonParse;
  validator(): BodyValidator;
  /** Unacknowledged frames a client may have outstanding (announced in `ready`). */
  maxInFlight: number;
  /** The connection closed: stop counting it. */
  release(c: PublishConnection): void;
}

/** One ack: the frame's number on the connection, then the 202 body or the refusal. */
type Ack = { n: number } & (RefusalResult | AcceptedReply);

/**
 * One publisher stream. Frames are numbered from 1 in arrival order; each gets exactly one ack,
 * sent once its message is durable (or refused), and acks leave in frame order: a result that
 * completes early waits for the ones before it. Acks completed in one turn of the event loop are
 * coalesced into one `acks` frame.
 *
 * Bounds: at most `maxInFlight` frames without an ack (one more closes the stream with 4008);
 * reading the socket pauses while that many are in flight or while the client does not read its
 * acks (the send queue past the high-water mark), so a fast publisher is slowed by TCP, not
 * buffered.
 */
export class PublishConnection implements WireListener {
  /** Frames received. */
  private received = 0;
  /** Frames whose ack is queued: acks 1..acked are sent or in `batch`. */
  private acked = 0;
  /** Results completed ahead of an earlier frame's. */
  private readonly early = new Map<number, Ack>();
  private batch: Ack[] = [];
  private flushing = false;
  private paused = false;
  private awaitingDrain = false;
  closed = false;
  /** Last time bytes were read (frames or pings), and the count then (idle timeout). */
  activeAt: number;
  bytesSeen = 0;
  /** When the key was last read again from the store, and whether a read is running. */
  checkedAt: number;
  checking = false;

  constructor(
    private readonly host: PublishHost,
    readonly ws: WireSocket,
    private readonly socket: Duplex,
    public principal: Principal,
    now: number,
  ) {
    this.activeAt = now;
    this.checkedAt = now;
  }

  get inFlight(): number {
    return this.received - this.acked;
  }

  /** Bytes read from the client so far (frames and pings: any of them keeps the stream alive). */
  get bytesRead(): number {
    return (this.socket as { bytesRead?: number }).bytesRead ?? 0;
  }

  onMessage(data: Buffer, binary: boolean): void {
    if (this.closed) return;
    const n = ++this.received;
    if (this.inFlight > this.host.maxInFlight) {
      return this.close(
        PublishClose.TooManyInFlight,
        `TOO_MANY_IN_FLIGHT: more than ${this.host.maxInFlight} unacknowledged`,
      );
    }
    const { hub, opts, access } = this.host;
    const body = decodePublishFrame(data, binary, this.host.parse, this.host.validator(), opts.maxJsonDepth);
    if (isRefusal(body)) this.settle(n, body);
    else if (!this.principal.scopes.has('publish')) {
      this.settle(n, {
        ...refusal(403, 'FORBIDDEN', 'this key lacks the "publish" scope'),
        scope: 'publish',
      });
    } else {
      try {
        access.limit(this.principal);
        publishOne(hub, opts, body, undefined, this.principal)
          .then((p) => accepted(hub, p))
          .then(
            (r) => this.settle(n, r),
            (err: unknown) => this.failed(n, err),
          );
      } catch (err) {
        this.failed(n, err);
      }
    }
    if (!this.paused && (this.inFlight >= this.host.maxInFlight || this.sendQueueFull())) this.pause();
  }

  onClose(): void {
    this.closed = true;
    this.early.clear();
    this.batch = [];
    this.host.release(this);
  }

  /** Closes the stream with a code of {@link PublishClose} (or RFC 6455's) and a reason. */
  close(code: number, reason: string): void {
    if (this.closed) return;
    this.closed = true;
    this.ws.close(code, reason.slice(0, 120));
    // Read again so the client's close frame (and end) finishes the handshake without the deadline.
    if (this.paused) this.socket.resume();
  }

  private failed(n: number, err: unknown): void {
    const r = refusalOf(err);
    if (r) return this.settle(n, r);
    this.host.log?.error({ err }, 'streamed publish failed');
    this.settle(n, refusal(500, 'INTERNAL', 'internal error'));
  }

  /** Frame `n` has its result: queue its ack and every later one that was waiting for it. */
  private settle(n: number, result: RefusalResult | AcceptedReply): void {
    if (this.closed) return;
    const ack: Ack = { n, ...result };
    if (n !== this.acked + 1) {
      this.early.set(n, ack);
      return;
    }
    this.batch.push(ack);
    this.acked = n;
    for (let next = this.early.get(n + 1); next; next = this.early.get(this.acked + 1)) {
      this.early.delete(next.n);
      this.batch.push(next);
      this.acked = next.n;
    }
    if (!this.flushing) {
      this.flushing = true;
      setImmediate(flush, this);
    }
  }

  /** Sends the queued acks as one frame; reading resumes when the bounds allow. */
  flush(): void {
    this.flushing = false;
    if (this.closed || this.batch.length === 0) return;
    const acks = this.batch;
    this.batch = [];
    this.ws.send(JSON.stringify({ t: 'acks', acks }));
    if (this.paused) this.resumeWhenDrained();
  }

  private sendQueueFull(): boolean {
    return this.ws.bufferedAmount > this.host.opts.sendHighWaterBytes;
  }

  private pause(): void {
    this.paused = true;
    this.socket.pause();
  }

  private resumeWhenDrained(): void {
    if (this.closed || this.awaitingDrain || this.inFlight >= this.host.maxInFlight) return;
    if (this.sendQueueFull()) {
      this.awaitingDrain = true;
      this.socket.once('drain', () => {
        this.awaitingDrain = false;
        this.resumeWhenDrained();
      });
      return;
    }
    this.paused = false;
    this.socket.resume();
  }
}

function flush(c: PublishConnection): void {
  c.flush();
}
