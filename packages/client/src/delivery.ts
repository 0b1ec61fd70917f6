import { type Cursors, isTopicStream, type MessageFrame, topicStream } from '@pushwire/protocol';
import type { Clock } from './clock.js';
import { dedupeWindow } from './dedupe.js';
import type { PushMessage } from './message.js';
import { createTimers } from './timers.js';

/** What a save covered: handed back by the persister once the save is durable. */
export interface SaveMark {
  cursors: Cursors;
  /** Messages processed when the snapshot was taken. */
  processed: number;
  /** Of those, topic messages. */
  topic: number;
}

/** Topic messages waiting for an ack that send one at once, whatever the delay. */
export const TOPIC_ACK_BATCH = 1000;

export interface DeliveryOptions {
  clock: Clock;
  /** Ids kept in the dedupe window. */
  windowSize: number;
  /** Milliseconds to wait for more before sending an ack frame (device stream). */
  ackDelay: number;
  /** Persisted-but-unacknowledged device messages that trigger an ack at once. */
  ackBatch: number;
  /**
   * Longest wait (ms) of a topic ack for a ping that carries it; the actual deadline is drawn in
   * its second half so that a broadcast's acks do not all come back at once. At most `ackDelay`:
   * topic acks are scheduled like device acks.
   */
  topicAckDelay: number;
  /** Randomness in [0, 1) for the topic ack deadline. */
  random(): number;
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
  /** Takes the pending acks (device and topic) for a ping about to be sent (undefined when none). */
  takeAcks(): Cursors | undefined;
  /** Sends pending acks (device and topic) now. */
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
 * Acks are coalesced. Device-stream acks (a backend watches their delivery status): one `ack`
 * frame `ackDelay` ms after the last save, at once when `ackBatch` device messages wait, or riding
 * on a ping that is due anyway. Topic-stream acks are lazy: nothing depends on them being prompt
 * (flow control counts the socket's unsent bytes, not unacknowledged ones; the hello carries the
 * saved cursors, so a resume does not need them), so they ride on the next frame that goes anyway
 * (a ping, a device ack) and leave on their own only `topicAckDelay` after the first of them
 * waited (drawn in its second half), or at once when {@link TOPIC_ACK_BATCH} topic messages wait.
 * Every ack that goes carries all pending acks. Background, a `wake()`, a goaway and `close()`
 * send them at once.
 */
export function createDelivery(o: DeliveryOptions): Delivery {
  const timers = createTimers<'ack' | 'topicAck'>(o.clock);
  let window = dedupeWindow(o.windowSize);
  /** Cursors as processed (ahead of storage while a save is in flight). */
  let cursors: Cursors = {};
  /** Cursors as durably saved. */
  let saved: Cursors = {};
  /** Cursors the current session knows (from hello, then acks). */
  let acked: Cursors = {};
  /** Messages processed, saved and acknowledged, in all and of topic streams. */
  let processed = 0;
  let processedTopic = 0;
  let savedProcessed = 0;
  let savedTopic = 0;
  let ackedProcessed = 0;
  let ackedTopic = 0;
  let sessionOpen = false;
  let background = false;
  let holds = 0;
  /** A topic ack deadline is running (it is not pushed back by later messages). */
  let topicDeadline = false;
  /** Topic acks are scheduled like device acks when their delay is no longer. */
  const lazyTopics = o.topicAckDelay > o.ackDelay;

  const isNew = (frame: Pick<MessageFrame, 'id' | 'stream' | 'seq'>): boolean =>
    frame.seq > (cursors[frame.stream] ?? 0) && !window.has(frame.id);

  /** Streams whose saved cursor is ahead of what the session knows: 0 none, 1 device, 2 topic, 3 both. */
  const pendingKinds = (): number => {
    let kinds = 0;
    for (const stream in saved) {
      if (saved[stream]! > (acked[stream] ?? -1)) kinds |= lazyTopics && isTopicStream(stream) ? 2 : 1;
    }
    return kinds;
  };

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
    timers.clear('topicAck');
    topicDeadline = false;
    acked = { ...acked, ...acks };
    ackedProcessed = savedProcessed;
    ackedTopic = savedTopic;
    return acks;
  };

  const flushAcks = (): void => {
    const acks = takeAcks();
    if (acks !== undefined) o.sendAcks(acks);
  };

  const onTopicDeadline = (): void => {
    topicDeadline = false;
    flushAcks();
  };

  const scheduleAck = (): void => {
    if (!sessionOpen) return;
    const kinds = pendingKinds();
    if (kinds === 0) return;
    const topicWaiting = savedTopic - ackedTopic;
    const waiting = savedProcessed - ackedProcessed - (lazyTopics ? topicWaiting : 0);
    if (background || holds > 0 || waiting >= o.ackBatch || topicWaiting >= TOPIC_ACK_BATCH) {
      return flushAcks();
    }
    if (kinds & 1) timers.set('ack', o.ackDelay, flushAcks);
    if (kinds & 2 && !topicDeadline) {
      topicDeadline = true;
      timers.set('topicAck', o.topicAckDelay * (1 - o.random() / 2), onTopicDeadline);
    }
  };

  const endSession = (): void => {
    sessionOpen = false;
    timers.clear('ack');
    timers.clear('topicAck');
    topicDeadline = false;
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
      if (isTopicStream(frame.stream)) processedTopic++;
      o.persist().catch(() => {}); // failures are reported by the persister and retried
    },
    capture() {
      const copy = { ...cursors };
      return {
        cursors: copy,
        dedupe: window.toArray(),
        mark: { cursors: copy, processed, topic: processedTopic },
      };
    },
    saved(mark) {
      saved = mark.cursors;
      savedProcessed = Math.max(savedProcessed, mark.processed);
      savedTopic = Math.max(savedTopic, mark.topic);
      scheduleAck();
    },
    beginSession() {
      endSession();
      // The hello's cursors resume delivery, but the server does not record them as acks (its
      // record feeds the delivery status): topic acks that waited when the last session ended
      // stay pending and go with the new session's first ping.
      const known: Cursors = { ...saved };
      if (lazyTopics) {
        for (const stream in known) {
          if (!isTopicStream(stream)) continue;
          const sent = acked[stream];
          if (sent === undefined) delete known[stream];
          else if (sent < known[stream]!) known[stream] = sent;
        }
      }
      acked = known;
      ackedProcessed = savedProcessed;
      ackedTopic = savedTopic;
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
