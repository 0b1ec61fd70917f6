import type { MessageFrame, WebPushKeys } from '@pushwire/protocol';
import { type FetchLike, request } from './credentials.js';
import type { Delivery } from './delivery.js';
import {
  ClosedError,
  ConnectionError,
  type PushwireError,
  WebPushError,
  type WebPushErrorReason,
} from './errors.js';
import type { StateKeeper } from './keeper.js';
import type { StoredWebPush } from './storage/types.js';

/** Exactly what a browser's `PushSubscription.toJSON()` gives: what a Web Push backend stores. */
export interface PushSubscriptionJSON {
  endpoint: string;
  expirationTime: number | null;
  keys: { p256dh: string; auth: string };
}

/**
 * A Web Push subscription of this device. Its own fields are the browser's, so it can be handed
 * to a Web Push library as it is; `JSON.stringify` gives exactly {@link PushSubscriptionJSON}.
 */
export interface WebPushSubscription extends PushSubscriptionJSON {
  /** Pushwire's id of the subscription (`DELETE /v1/devices/:id/webpush/:subscriptionId`). */
  readonly subscriptionId: string;
  /** The VAPID public key it is bound to (base64url), or null. */
  readonly applicationServerKey: string | null;
  toJSON(): PushSubscriptionJSON;
}

/** Options of `pushSubscribe`, as the browser's `PushManager.subscribe()` takes them. */
export interface PushSubscribeOptions {
  /**
   * The backend's VAPID public key: base64url, or the 65 raw bytes. When given, the endpoint only
   * accepts messages signed with it. Without it, any sender may push (no VAPID required).
   */
  applicationServerKey?: string | ArrayBuffer | ArrayBufferView | null;
}

/** What {@link WebPush} needs from the client. */
export interface WebPushDeps {
  keeper: Pick<StateKeeper, 'load' | 'credentials' | 'save' | 'webpush'>;
  delivery: Pick<Delivery, 'isNew' | 'receive'>;
  /** HTTP base of the server (`https://host[:port][/prefix]`). */
  http(): string;
  fetch: FetchLike | undefined;
  closed(): boolean;
  report(error: PushwireError): void;
  /**
   * The Web Push code could not be loaded to decrypt a message: end the session without
   * processing it (nor anything behind it), so that the server replays them after a reconnect.
   */
  fail(error: PushwireError): void;
}

/** The `data` of a Web Push message on the wire: `{ webpush: { sub, body? } }` (docs/protocol.md). */
export interface WireWebPush {
  sub: string;
  body?: string;
}

/**
 * Web Push for a Pushwire device (RFC 8030 subscriptions on the Pushwire server, RFC 8291
 * payloads): makes and keeps the receiver's keys, manages the server-side subscription, and
 * decrypts incoming Web Push messages before they reach {@link Delivery}.
 *
 * This part is always loaded: it spots Web Push messages and keeps the order. Everything else
 * (HTTP, WebCrypto, RFC 8291) is in webpush-ops.ts, loaded by a dynamic `import()` on the first
 * `pushSubscribe`/`pushUnsubscribe` or Web Push message, so bundlers split it off.
 *
 * Messages keep their order: a Web Push message is decrypted (asynchronously, WebCrypto) in a
 * queue, and every message behind it waits in the same queue until it is handed over. A message
 * that cannot be decrypted is reported as a {@link WebPushError} and processed without being
 * handed over (saved, acknowledged), so it never blocks the stream. When the code cannot even be
 * loaded (offline, a deploy removed the chunk), the message and everything behind it are left
 * unprocessed and the session ends ({@link WebPushDeps.fail}): the server replays them.
 */
export interface WebPush {
  /** True when no message is waiting for a decryption. */
  readonly idle: boolean;
  /** The stored subscription, or null. */
  current(): Promise<WebPushSubscription | null>;
  /**
   * The device's Web Push subscription for `applicationServerKey`: the stored one when it exists
   * and the server still has it, else a new one (fresh keys, `POST /v1/devices/:id/webpush`),
   * saved before it is returned. A stored subscription bound to another key is a `KEY_MISMATCH`.
   */
  subscribe(options?: PushSubscribeOptions): Promise<WebPushSubscription>;
  /**
   * Deletes the subscription on the server (the endpoint answers 410 from then on) and forgets
   * its keys. Resolves true when there was one, false when there was none.
   */
  unsubscribe(): Promise<boolean>;
  /** Handles one `msg` frame: Web Push messages are decrypted first; order is kept. */
  receive(frame: MessageFrame): void;
  /** The client closed: messages still waiting are dropped (they are replayed next time). */
  dispose(): void;
}

type Ops = typeof import('./webpush-ops.js');
type Reason = WebPushErrorReason;

export function createWebPush(d: WebPushDeps): WebPush {
  const { keeper } = d;
  let ops: Promise<Ops> | undefined;
  /** Incoming messages waiting behind a decryption. */
  let queue: Promise<void> = Promise.resolve();
  let queued = 0;
  /** Bumped when queued messages must be dropped (closed, or the code failed to load). */
  let epoch = 0;
  /** The keys of the stored subscription, imported (by their private scalar `d`). */
  let cached: { d: string; keys: Promise<WebPushKeys> } | undefined;

  /** Loads the Web Push code (once; again after a failure). */
  const load = (reason: Reason): Promise<Ops> => {
    ops ??= import('./webpush-ops.js').catch((cause: unknown) => {
      ops = undefined;
      throw cause;
    });
    return ops.catch((cause: unknown) => {
      throw new WebPushError(reason, `loading the Web Push code failed: ${errorText(cause)}`, { cause });
    });
  };

  const forget = (): void => {
    keeper.webpush = undefined;
    cached = undefined;
  };

  /** Subscribing and unsubscribing (one instance: it runs them one at a time). */
  let manager: ReturnType<Ops['webPushOps']> | undefined;
  const manage = (reason: Reason) => load(reason).then((m) => (manager ??= m.webPushOps(d, kit, forget)));

  /** Decrypts one new Web Push message; on failure reports it and asks for it to be skipped. */
  const open = async (m: Ops, frame: MessageFrame, wire: WireWebPush) => {
    const stored = keeper.webpush;
    const skip = (reason: Reason, text: string, cause?: unknown) => {
      d.report(new WebPushError(reason, `message ${frame.id}: ${text}`, { messageId: frame.id, cause }));
      return { message: frame, handOver: false };
    };
    if (stored?.subscriptionId !== wire.sub) {
      return skip('NO_SUBSCRIPTION', `no keys of subscription ${wire.sub}`);
    }
    if (wire.body === undefined) {
      const { data: _none, ...rest } = frame; // a push without payload: no data, as in a browser
      return { message: { ...rest, webpush: true as const }, handOver: true };
    }
    try {
      if (cached?.d !== stored.keys.d) {
        const keys = m.importWebPushKeys(stored.keys);
        cached = { d: stored.keys.d, keys };
        keys.catch(() => {
          if (cached?.keys === keys) cached = undefined;
        });
      }
      const data = await m.decrypt(wire.body, await cached.keys);
      return { message: { ...frame, data, webpush: true as const }, handOver: true };
    } catch (cause) {
      return skip('DECRYPT_FAILED', errorText(cause), cause);
    }
  };

  return {
    get idle() {
      return queued === 0;
    },
    async current() {
      await keeper.load();
      const stored = keeper.webpush;
      return stored ? subscriptionOf(stored) : null;
    },
    subscribe: (options = {}) => manage('SUBSCRIBE_FAILED').then((m) => m.subscribe(options)),
    unsubscribe: () => manage('UNSUBSCRIBE_FAILED').then((m) => m.unsubscribe()),
    receive(frame) {
      const wire = webPushOf(frame.data);
      if (queued === 0 && wire === undefined) {
        d.delivery.receive(frame);
        return;
      }
      const mine = epoch;
      const current = () => mine === epoch;
      queued++;
      queue = queue
        .then(async () => {
          if (!current()) return;
          let opened: { message: MessageFrame; handOver: boolean } = { message: frame, handOver: true };
          if (wire !== undefined && d.delivery.isNew(frame)) {
            let m: Ops;
            try {
              m = await load('DECRYPT_FAILED');
            } catch (cause) {
              if (!current()) return;
              epoch++; // drop what waits behind it too: all of it comes again
              d.fail(
                new ConnectionError(`cannot decrypt message ${frame.id} now: ${errorText(cause)}`, { cause }),
              );
              return;
            }
            opened = await open(m, frame, wire);
          }
          if (current()) d.delivery.receive(opened.message, opened.handOver);
        })
        .catch((cause: unknown) => {
          d.report(new WebPushError('DECRYPT_FAILED', 'handling a message failed', { cause }));
        })
        .finally(() => {
          queued--;
        });
    },
    dispose() {
      epoch++;
    },
  };
}

/** `data.webpush` of a Web Push message, or undefined for any other message. */
function webPushOf(data: unknown): WireWebPush | undefined {
  if (typeof data !== 'object' || data === null || !('webpush' in data)) return undefined;
  const wp = (data as { webpush: unknown }).webpush;
  if (typeof wp !== 'object' || wp === null) return undefined;
  const { sub, body } = wp as Record<string, unknown>;
  if (typeof sub !== 'string' || (body !== undefined && typeof body !== 'string')) return undefined;
  return body === undefined ? { sub } : { sub, body };
}

/** The subscription as the app sees it; its JSON is the browser's. */
export function subscriptionOf(s: StoredWebPush): WebPushSubscription {
  const json = (): PushSubscriptionJSON => ({
    endpoint: s.endpoint,
    expirationTime: s.expirationTime,
    keys: { p256dh: s.keys.p256dh, auth: s.keys.auth },
  });
  return {
    ...json(),
    subscriptionId: s.subscriptionId,
    applicationServerKey: s.applicationServerKey ?? null,
    toJSON: json,
  };
}

export const errorText = (e: unknown): string => (e instanceof Error ? e.message : String(e));

/**
 * What webpush-ops.ts uses of the always-loaded code, handed to it when it loads: importing it
 * there would make bundlers put it in a third chunk, shared by both and loaded up front.
 */
const kit = { WebPushError, ClosedError, subscriptionOf, errorText, request };
export type Kit = typeof kit;
