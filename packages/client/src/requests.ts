import type {
  SubscribedFrame,
  SubscribeFrame,
  UnsubscribedFrame,
  UnsubscribeFrame,
} from '@pushwire/protocol';
import type { PushwireError } from './errors.js';

type RequestFrame = (SubscribeFrame | UnsubscribeFrame) & { ref: number };

interface Pending {
  frame: RequestFrame;
  resolve(): void;
  reject(error: PushwireError): void;
}

/**
 * Subscribe/unsubscribe requests waiting for their answer, and the device's topics. Requests are
 * sent when a session opens and sent again on every new session until answered (both are
 * idempotent on the server), so a request made offline, or lost with a dropped socket, completes.
 */
export interface Requests {
  /** Topics the device is subscribed to, as of the last welcome / subbed / unsubbed. */
  readonly topics: string[];
  /** `welcome` lists the device's topics. */
  welcome(topics: readonly string[]): void;
  /**
   * A `subbed`/`unsubbed` answer: updates the topics, runs `save` (the topic cursor), then settles
   * the request it answers, if any (a failed save does not fail the request: the server is done).
   * The request is found by `ref`, or (a server that omits it) as the oldest pending request of
   * that kind and topic.
   */
  answer(frame: SubscribedFrame | UnsubscribedFrame, save: Promise<void>): void;
  /** Registers a request; the promise settles on its answer, or when it is rejected. */
  add(t: RequestFrame['t'], topic: string): { frame: RequestFrame; done: Promise<void> };
  /** Frames of every pending request, oldest first, to (re)send on a new session. */
  frames(): RequestFrame[];
  /** Rejects the request with this ref; returns whether there was one. */
  reject(ref: number, error: PushwireError): boolean;
  /** Rejects every pending request (the client is closing). */
  rejectAll(error: PushwireError): void;
}

export function createRequests(): Requests {
  const pending = new Map<number, Pending>();
  let nextRef = 1;
  let topics = new Set<string>();
  const all = () => [...pending.values()];
  return {
    get topics() {
      return [...topics];
    },
    welcome(list) {
      topics = new Set(list);
    },
    answer(frame, save) {
      const t = frame.t === 'subbed' ? 'sub' : 'unsub';
      if (t === 'sub') topics.add(frame.topic);
      else topics.delete(frame.topic);
      let found = frame.ref === undefined ? undefined : pending.get(frame.ref);
      if (found?.frame.t !== t) found = all().find((p) => p.frame.t === t && p.frame.topic === frame.topic);
      if (found) {
        pending.delete(found.frame.ref);
        save.then(found.resolve, found.resolve);
      } else save.catch(() => {});
    },
    add(t, topic) {
      const frame = { t, topic, ref: nextRef++ };
      const done = new Promise<void>((resolve, reject) => pending.set(frame.ref, { frame, resolve, reject }));
      return { frame, done };
    },
    frames: () => all().map((p) => p.frame),
    reject(ref, error) {
      const p = pending.get(ref);
      if (p) {
        pending.delete(ref);
        p.reject(error);
      }
      return !!p;
    },
    rejectAll(error) {
      const list = all();
      pending.clear();
      for (const p of list) p.reject(error);
    },
  };
}
