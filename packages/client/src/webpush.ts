import { type FetchLike, request } from './credentials.js';
import { ClosedError, WebPushError, type WebPushErrorReason } from './errors.js';
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

/** What {@link WebPush} (and the code it loads) needs from the client. */
export interface WebPushDeps {
  keeper: Pick<StateKeeper, 'load' | 'credentials' | 'save' | 'webpush'>;
  /** HTTP base of the server (`https://host[:port][/prefix]`). */
  http(): string;
  fetch: FetchLike | undefined;
  closed(): boolean;
}

/** The `data` of a Web Push message on the wire: `{ webpush: { sub, body? } }` (docs/protocol.md). */
export interface WireWebPush {
  sub: string;
  body?: string;
}

/** The Web Push code loaded on demand (webpush-ops.ts). */
export type Ops = typeof import('./webpush-ops.js');

/** Loads the Web Push code (once; again after a failure); a failure is a {@link WebPushError} with `reason`. */
export type LoadOps = (reason: WebPushErrorReason) => Promise<Ops>;

/**
 * The loader of the Web Push code for one client, shared by subscribing ({@link createWebPush})
 * and decrypting (webpush-stage.ts). The dynamic `import()` is here, in always-loaded code, so
 * bundlers split webpush-ops.ts off into a chunk of its own.
 */
export function webPushLoader(): LoadOps {
  let ops: Promise<Ops> | undefined;
  return (reason) => {
    ops ??= import('./webpush-ops.js').catch((cause: unknown) => {
      ops = undefined;
      throw cause;
    });
    return ops.catch((cause: unknown) => {
      throw new WebPushError(reason, `loading the Web Push code failed: ${errorText(cause)}`, { cause });
    });
  };
}

/**
 * The Web Push subscription of a Pushwire device (RFC 8030 subscriptions on the Pushwire
 * server): makes and keeps the receiver's keys and manages the server-side subscription. The
 * HTTP and WebCrypto work is in webpush-ops.ts, loaded on the first `pushSubscribe` or
 * `pushUnsubscribe`. Incoming Web Push messages are decrypted by the stage in webpush-stage.ts.
 */
export interface WebPush {
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
}

export function createWebPush(d: WebPushDeps, load: LoadOps): WebPush {
  const { keeper } = d;
  const forget = (): void => {
    keeper.webpush = undefined;
  };
  /** Subscribing and unsubscribing (one instance: it runs them one at a time). */
  let manager: ReturnType<Ops['webPushOps']> | undefined;
  const manage = (reason: WebPushErrorReason) =>
    load(reason).then((m) => (manager ??= m.webPushOps(d, kit, forget)));
  return {
    async current() {
      await keeper.load();
      const stored = keeper.webpush;
      return stored ? subscriptionOf(stored) : null;
    },
    subscribe: (options = {}) => manage('SUBSCRIBE_FAILED').then((m) => m.subscribe(options)),
    unsubscribe: () => manage('UNSUBSCRIBE_FAILED').then((m) => m.unsubscribe()),
  };
}

/** `data.webpush` of a Web Push message, or undefined for any other message. */
export function webPushOf(data: unknown): WireWebPush | undefined {
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
