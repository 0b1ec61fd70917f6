import type { MessageFrame } from '@pushwire/protocol';
import type { FetchLike } from './credentials.js';
import type { Delivery } from './delivery.js';
import { ClosedError, ConfigError, ConnectionError, type PushwireError, WebPushError } from './errors.js';
import type { StateKeeper } from './keeper.js';
import type { StoredWebPush } from './storage/types.js';
import type { WebPushOps } from './webpush-ops.js';

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
export class WebPush {
  private readonly _d: WebPushDeps;
  private _ops: Promise<WebPushOps> | undefined;
  /** Incoming messages waiting behind a decryption. */
  private _queue: Promise<void> = Promise.resolve();
  private _queued = 0;
  /** Bumped when queued messages must be dropped (closed, or the code failed to load). */
  private _epoch = 0;

  constructor(deps: WebPushDeps) {
    this._d = deps;
  }

  /** True when no message is waiting for a decryption. */
  get idle(): boolean {
    return this._queued === 0;
  }

  /** The stored subscription, or null. */
  async current(): Promise<WebPushSubscription | null> {
    await this._d.keeper.load();
    const stored = this._d.keeper.webpush;
    return stored ? subscriptionOf(stored) : null;
  }

  /**
   * The device's Web Push subscription for `applicationServerKey`: the stored one when it exists
   * and the server still has it, else a new one, saved before it is returned.
   */
  subscribe(options: PushSubscribeOptions = {}): Promise<WebPushSubscription> {
    return this._load('SUBSCRIBE_FAILED').then((ops) => ops.subscribe(options));
  }

  /**
   * Deletes the subscription on the server (the endpoint answers 410 from then on) and forgets
   * its keys. Resolves true when there was one, false when there was none.
   */
  unsubscribe(): Promise<boolean> {
    return this._load('UNSUBSCRIBE_FAILED').then((ops) => ops.unsubscribe());
  }

  /** Handles one `msg` frame: Web Push messages are decrypted first; order is kept. */
  receive(frame: MessageFrame): void {
    const wire = webPushOf(frame.data);
    if (this._queued === 0 && wire === undefined) {
      this._d.delivery.receive(frame);
      return;
    }
    const epoch = this._epoch;
    const current = () => epoch === this._epoch;
    this._queued++;
    this._queue = this._queue
      .then(async () => {
        if (!current()) return;
        let opened: { message: MessageFrame; handOver: boolean } = { message: frame, handOver: true };
        if (wire !== undefined && this._d.delivery.isNew(frame)) {
          let ops: WebPushOps;
          try {
            ops = await this._load('DECRYPT_FAILED');
          } catch (cause) {
            if (!current()) return;
            this._epoch++; // drop what waits behind it too: all of it comes again
            this._d.fail(
              new ConnectionError(
                `cannot decrypt message ${frame.id} now (${errorText(cause)}): reconnecting`,
                {
                  cause,
                },
              ),
            );
            return;
          }
          opened = await ops.open(frame, wire);
        }
        if (current()) this._d.delivery.receive(opened.message, opened.handOver);
      })
      .catch((cause: unknown) => {
        this._d.report(new WebPushError('DECRYPT_FAILED', 'handling a message failed', { cause }));
      })
      .finally(() => {
        this._queued--;
      });
  }

  /** The client closed: messages still waiting are dropped (they are replayed next time). */
  dispose(): void {
    this._epoch++;
  }

  /** Loads the Web Push code (once; again after a failure). */
  private _load(reason: 'SUBSCRIBE_FAILED' | 'UNSUBSCRIBE_FAILED' | 'DECRYPT_FAILED'): Promise<WebPushOps> {
    this._ops ??= import('./webpush-ops.js').then(
      (m) => m.webPushOps(this._d, kit),
      (cause: unknown) => {
        this._ops = undefined;
        throw cause;
      },
    );
    return this._ops.catch((cause: unknown) => {
      throw new WebPushError(reason, `loading the Web Push code failed: ${errorText(cause)}`, { cause });
    });
  }
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
const kit = { WebPushError, ClosedError, ConfigError, subscriptionOf, errorText };
export type Kit = typeof kit;
