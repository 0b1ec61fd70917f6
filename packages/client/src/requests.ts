import type {
  SubscribedFrame,
  SubscribeFrame,
  UnsubscribedFrame,
  UnsubscribeFrame,
} from '@pushwire/protocol';
import type { PushwireError } from './errors.js';

type RequestFrame = SubscribeFrame | UnsubscribeFrame;

interface Pending {
  frame: RequestFrame & { ref: number };
  resolve(): void;
  reject(error: PushwireError): void;
}

/**
 * Subscribe/unsubscribe requests waiting for their answer, and the device's topics. Requests are
 * sent when a session opens and sent again on every new session until answered (both are
 * idempotent on the server), so a request made offline, or lost with a dropped socket, completes.
 */
export class Requests {
  private readonly _pending = new Map<number, Pending>();
  private _nextRef = 1;
  private _topics = new Set<string>();

  /** Topics the device is subscribed to, as of the last welcome / subbed / unsubbed. */
  get topics(): string[] {
    return [...this._topics];
  }

  /** `welcome` lists the device's topics. */
  welcome(topics: readonly string[]): void {
    this._topics = new Set(topics);
  }

  /**
   * A `subbed`/`unsubbed` answer: updates the topics, runs `save` (the topic cursor), then settles
   * the request it answers, if any (a failed save does not fail the request: the server is done).
   */
  answer(frame: SubscribedFrame | UnsubscribedFrame, save: Promise<void>): void {
    const sub = frame.t === 'subbed';
    if (sub) this._topics.add(frame.topic);
    else this._topics.delete(frame.topic);
    const resolve = this.take(sub ? 'sub' : 'unsub', frame.topic, frame.ref);
    if (resolve) save.then(resolve, resolve);
    else save.catch(() => {});
  }

  /** Registers a request; the promise settles when {@link Requests.settle} or `reject` is called. */
  add(t: RequestFrame['t'], topic: string): { frame: RequestFrame & { ref: number }; done: Promise<void> } {
    const frame = { t, topic, ref: this._nextRef++ };
    const done = new Promise<void>((resolve, reject) =>
      this._pending.set(frame.ref, { frame, resolve, reject }),
    );
    return { frame, done };
  }

  /** Frames of every pending request, oldest first, to (re)send on a new session. */
  frames(): RequestFrame[] {
    return [...this._pending.values()].map((p) => p.frame);
  }

  /**
   * Finds and removes the request a reply answers: by `ref`, or (a server that omits it) the
   * oldest pending request of that kind and topic. Returns its resolve function.
   */
  take(t: RequestFrame['t'], topic: string, ref: number | undefined): (() => void) | undefined {
    let found: Pending | undefined = ref === undefined ? undefined : this._pending.get(ref);
    if (found === undefined || found.frame.t !== t) {
      found = [...this._pending.values()].find((p) => p.frame.t === t && p.frame.topic === topic);
    }
    if (found === undefined) return undefined;
    this._pending.delete(found.frame.ref);
    return found.resolve;
  }

  /** Rejects the request with this ref; returns whether there was one. */
  reject(ref: number, error: PushwireError): boolean {
    const p = this._pending.get(ref);
    if (p === undefined) return false;
    this._pending.delete(ref);
    p.reject(error);
    return true;
  }

  /** Rejects every pending request (the client is closing). */
  rejectAll(error: PushwireError): void {
    const all = [...this._pending.values()];
    this._pending.clear();
    for (const p of all) p.reject(error);
  }
}
