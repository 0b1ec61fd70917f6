import { type Cursors, type MessageFrame, topicStream } from '@pushwire/protocol';
import type { Clock } from './clock.js';
import { DedupeWindow } from './dedupe.js';
import type { PushMessage } from './message.js';
import { Timers } from './timers.js';

/** What a save covered: handed back by the persister once the save is durable. */
export interface SaveMark {
  cursors: Cursors;
  /** Messages processed when the snapshot was taken. */
  processed: number;
}

export interface DeliveryOptions {
  clock: Clock;
  /** Ids kept in the dedupe window. */
  windowSize: number;
  /** Milliseconds to wait for more before sending an ack frame. */
  ackDelay: number;
  /** Persisted-but-unacknowledged messages that trigger an ack at once. */
  ackBatch: number;
  /** Hands a new message to the app. */
  deliver(message: PushMessage): void;
  /** Asks for a save of the client state (coalesced); resolves when durable. */
  persist(): Promise<void>;
  /** Sends acknowledgements (as an `ack` frame, or on a ping that is due anyway). */
  sendAcks(acks: Cursors): void;
}

/**
 * Exactly-once delivery on top of the wire's at-least-once. Per message, in this order:
 *
 * 1. drop it if its id is in the dedupe window or its seq is not above the stream's cursor;
 * 2. otherwise hand it to the app;
 * 3. add the id to the window and advance the cursor;
 * 4. persist (coalesced: one save per burst);
 * 5. acknowledge, cumulatively per stream, only what a completed save covers.
 *
 * Acks are coalesced: one `ack` frame `ackDelay` ms after the last save, at once when `ackBatch`
 * messages wait, or riding on a ping that is due anyway.
 */
export class Delivery {
  readonly #o: DeliveryOptions;
  readonly #timers: Timers<'ack'>;
  #window: DedupeWindow;
  /** Cursors as processed (ahead of storage while a save is in flight). */
  #cursors: Cursors = {};
  /** Cursors as durably saved. */
  #saved: Cursors = {};
  /** Cursors the current session knows (from hello, then acks). */
  #acked: Cursors = {};
  #processed = 0;
  #savedProcessed = 0;
  #ackedProcessed = 0;
  #sessionOpen = false;
  #background = false;
  #holds = 0;

  constructor(options: DeliveryOptions) {
    this.#o = options;
    this.#timers = new Timers(options.clock);
    this.#window = new DedupeWindow(options.windowSize);
  }

  /** Restores cursors and the window from storage. */
  restore(cursors: Cursors, dedupe: readonly string[]): void {
    this.#cursors = { ...cursors };
    this.#saved = { ...cursors };
    this.#window = new DedupeWindow(this.#o.windowSize, dedupe);
  }

  /** True when the app has not seen this message yet (its id is new and its seq above the cursor). */
  isNew(frame: Pick<MessageFrame, 'id' | 'stream' | 'seq'>): boolean {
    return frame.seq > (this.#cursors[frame.stream] ?? 0) && !this.#window.has(frame.id);
  }

  /**
   * Handles one `msg` frame (for a Web Push message: decrypted). With `handOver` false the message
   * is processed (remembered, saved, acknowledged) without reaching the app: it could not be read.
   */
  receive(frame: PushMessage & { t: 'msg' }, handOver = true): void {
    const { t: _t, ...message } = frame;
    const cursor = this.#cursors[frame.stream] ?? 0;
    if (handOver && this.isNew(frame)) this.#o.deliver(message);
    this.#window.add(frame.id);
    if (frame.seq > cursor) this.#cursors[frame.stream] = frame.seq;
    this.#processed++;
    this.#o.persist().catch(() => {}); // failures are reported by the persister and retried
  }

  /** State to save now, and the mark that comes back to {@link Delivery.saved} once durable. */
  capture(): { cursors: Cursors; dedupe: string[]; mark: SaveMark } {
    const cursors = { ...this.#cursors };
    return { cursors, dedupe: this.#window.toArray(), mark: { cursors, processed: this.#processed } };
  }

  /** A save covering `mark` is durable: its cursors may now be acknowledged. */
  saved(mark: SaveMark): void {
    this.#saved = mark.cursors;
    this.#savedProcessed = Math.max(this.#savedProcessed, mark.processed);
    this.#scheduleAck();
  }

  /** A session is starting: returns the cursors for its hello (what storage holds). */
  beginSession(): Cursors {
    this.endSession();
    this.#acked = { ...this.#saved };
    this.#ackedProcessed = this.#savedProcessed;
    return { ...this.#saved };
  }

  /** The session is open (welcome received): acks may flow. */
  sessionOpened(): void {
    this.#sessionOpen = true;
    this.#scheduleAck();
  }

  /** The session ended: pending acks are dropped (the next hello carries the saved cursors). */
  endSession(): void {
    this.#sessionOpen = false;
    this.#timers.clear('ack');
  }

  /** In the background acks leave without delay: the radio is up now and the OS may suspend us soon. */
  setBackground(on: boolean): void {
    this.#background = on;
    this.#scheduleAck();
  }

  /** Acks without delay until the returned disposer runs (a `wake()` in progress). */
  holdImmediate(): () => void {
    this.#holds++;
    this.#scheduleAck();
    let held = true;
    return () => {
      if (held) this.#holds--;
      held = false;
    };
  }

  /** Takes the pending acks for a ping about to be sent (undefined when none). */
  takeAcks(): Cursors | undefined {
    if (!this.#sessionOpen) return undefined;
    const acks = this.#pending();
    if (acks === undefined) return undefined;
    this.#timers.clear('ack');
    this.#acked = { ...this.#acked, ...acks };
    this.#ackedProcessed = this.#savedProcessed;
    return acks;
  }

  /** Sends pending acks now. */
  flushAcks(): void {
    const acks = this.takeAcks();
    if (acks !== undefined) this.#o.sendAcks(acks);
  }

  /** True when nothing processed is waiting to be acknowledged. */
  get settled(): boolean {
    return this.#processed === this.#savedProcessed && this.#pending() === undefined;
  }

  /** Current cursors (a copy). */
  get cursors(): Cursors {
    return { ...this.#cursors };
  }

  /** `subbed`: the topic's delivery starts after `seq` unless we already have a cursor. */
  subscribed(topic: string, seq: number): Promise<void> {
    const stream = topicStream(topic);
    if (this.#cursors[stream] === undefined) this.#cursors[stream] = seq;
    return this.#o.persist();
  }

  /** `unsubbed`: forget the topic's cursor, so a later subscribe starts fresh. */
  unsubscribed(topic: string): Promise<void> {
    delete this.#cursors[topicStream(topic)];
    return this.#o.persist();
  }

  dispose(): void {
    this.#timers.clearAll();
  }

  #pending(): Cursors | undefined {
    const acks: Cursors = {};
    let any = false;
    for (const [stream, seq] of Object.entries(this.#saved)) {
      if (seq > (this.#acked[stream] ?? -1)) {
        acks[stream] = seq;
        any = true;
      }
    }
    return any ? acks : undefined;
  }

  #scheduleAck(): void {
    if (!this.#sessionOpen || this.#pending() === undefined) return;
    const waiting = this.#savedProcessed - this.#ackedProcessed;
    if (this.#background || this.#holds > 0 || waiting >= this.#o.ackBatch) {
      this.flushAcks();
      return;
    }
    this.#timers.set('ack', this.#o.ackDelay, () => this.flushAcks());
  }
}
