import { type Cursors, type MessageFrame, topicStream } from '@pushwire/protocol';
import type { Clock } from './clock.js';
import { dedupeWindow } from './dedupe.js';
import type { PushMessage } from './message.js';
import { createTimers } from './timers.js';

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

/** Exactly-once delivery for one client: see {@link createDelivery}. */
export interface Delivery {
  /** Restores cursors and the window from storage. */
  restore(cursors: Cursors, dedupe: readonly string[]): void;
  /** True when the app has not seen this message yet (its id is new and its seq above the cursor). */
  isNew(frame: Pick<MessageFrame, 'id' | 'stream' | 'seq'>): boolean;
  /**
   * Handles one `msg` frame (for a Web Push message: decrypted). With `handOver` false the message
   * is processed (remembered, saved, acknowledged) without reaching the app: it could not be read.
   */
  receive(frame: PushMessage & { t: 'msg' }, handOver?: boolean): void;
  /** State to save now, and the mark that comes back to {@link Delivery.saved} once durable. */
  capture(): { cursors: Cursors; dedupe: string[]; mark: SaveMark };
  /** A save covering `mark` is durable: its cursors may now be acknowledged. */
  saved(mark: SaveMark): void;
  /** A session is starting: returns the cursors for its hello (what storage holds). */
  beginSession(): Cursors;
  /** The session is open (welcome received): acks may flow. */
  sessionOpened(): void;
  /** The session ended: pending acks are dropped (the next hello carries the saved cursors). */
  endSession(): void;
  /** In the background acks leave without delay: the radio is up now and the OS may suspend us soon. */
  setBackground(on: boolean): void;
  /** Acks without delay until the returned disposer runs (a `wake()` in progress). */
  holdImmediate(): () => void;
  /** Takes the pending acks for a ping about to be sent (undefined when none). */
  takeAcks(): Cursors | undefined;
  /** Sends pending acks now. */
  flushAcks(): void;
  /** True when nothing processed is waiting to be acknowledged. */
  readonly settled: boolean;
  /** Current cursors (a copy). */
  readonly cursors: Cursors;
  /** `subbed`: the topic's delivery starts after `seq` unless we already have a cursor. */
  subscribed(topic: string, seq: number): Promise<void>;
  /** `unsubbed`: forget the topic's cursor, so a later subscribe starts fresh. */
  unsubscribed(topic: string): Promise<void>;
  dispose(): void;
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
export function createDelivery(o: DeliveryOptions): Delivery {
  const timers = createTimers<'ack'>(o.clock);
  let window = dedupeWindow(o.windowSize);
  /** Cursors as processed (ahead of storage while a save is in flight). */
  let cursors: Cursors = {};
  /** Cursors as durably saved. */
  let saved: Cursors = {};
  /** Cursors the current session knows (from hello, then acks). */
  let acked: Cursors = {};
  let processed = 0;
  let savedProcessed = 0;
  let ackedProcessed = 0;
  let sessionOpen = false;
  let background = false;
  let holds = 0;

  const isNew = (frame: Pick<MessageFrame, 'id' | 'stream' | 'seq'>): boolean =>
    frame.seq > (cursors[frame.stream] ?? 0) && !window.has(frame.id);

  const pending = (): Cursors | undefined => {
    const acks: Cursors = {};
    let any = false;
    for (const [stream, seq] of Object.entries(saved)) {
      if (seq > (acked[stream] ?? -1)) {
        acks[stream] = seq;
        any = true;
      }
    }
    return any ? acks : undefined;
  };

  const takeAcks = (): Cursors | undefined => {
    if (!sessionOpen) return undefined;
    const acks = pending();
    if (acks === undefined) return undefined;
    timers.clear('ack');
    acked = { ...acked, ...acks };
    ackedProcessed = savedProcessed;
    return acks;
  };

  const flushAcks = (): void => {
    const acks = takeAcks();
    if (acks !== undefined) o.sendAcks(acks);
  };

  const scheduleAck = (): void => {
    if (!sessionOpen || pending() === undefined) return;
    if (background || holds > 0 || savedProcessed - ackedProcessed >= o.ackBatch) flushAcks();
    else timers.set('ack', o.ackDelay, flushAcks);
  };

  const endSession = (): void => {
    sessionOpen = false;
    timers.clear('ack');
  };

  return {
    restore(c, dedupe) {
      cursors = { ...c };
      saved = { ...c };
      window = dedupeWindow(o.windowSize, dedupe);
    },
    isNew,
    receive(frame, handOver = true) {
      const { t: _t, ...message } = frame;
      const cursor = cursors[frame.stream] ?? 0;
      if (handOver && isNew(frame)) o.deliver(message);
      window.add(frame.id);
      if (frame.seq > cursor) cursors[frame.stream] = frame.seq;
      processed++;
      o.persist().catch(() => {}); // failures are reported by the persister and retried
    },
    capture() {
      const copy = { ...cursors };
      return { cursors: copy, dedupe: window.toArray(), mark: { cursors: copy, processed } };
    },
    saved(mark) {
      saved = mark.cursors;
      savedProcessed = Math.max(savedProcessed, mark.processed);
      scheduleAck();
    },
    beginSession() {
      endSession();
      acked = { ...saved };
      ackedProcessed = savedProcessed;
      return { ...saved };
    },
    sessionOpened() {
      sessionOpen = true;
      scheduleAck();
    },
    endSession,
    setBackground(on) {
      background = on;
      scheduleAck();
    },
    holdImmediate() {
      holds++;
      scheduleAck();
      let held = true;
      return () => {
        if (held) holds--;
        held = false;
      };
    },
    takeAcks,
    flushAcks,
    get settled() {
      return processed === savedProcessed && pending() === undefined;
    },
    get cursors() {
      return { ...cursors };
    },
    subscribed(topic, seq) {
      const stream = topicStream(topic);
      if (cursors[stream] === undefined) cursors[stream] = seq;
      return o.persist();
    },
    unsubscribed(topic) {
      delete cursors[topicStream(topic)];
      return o.persist();
    },
    dispose() {
      timers.clearAll();
    },
  };
}
