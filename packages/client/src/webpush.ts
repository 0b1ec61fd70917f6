import {
  base64urlDecode,
  base64urlEncode,
  decryptAes128gcm,
  exportWebPushKeys,
  generateWebPushKeys,
  importWebPushKeys,
  type MessageFrame,
  type WebPushKeys,
} from '@pushwire/protocol';
import type { FetchLike } from './credentials.js';
import type { Delivery } from './delivery.js';
import {
  ClosedError,
  ConfigError,
  type PushwireError,
  WebPushError,
  type WebPushErrorReason,
} from './errors.js';
import type { StateKeeper } from './keeper.js';
import type { PushMessage } from './message.js';
import type { Credentials, StoredWebPush } from './storage/types.js';

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
}

/** The `data` of a Web Push message on the wire: `{ webpush: { sub, body? } }` (docs/protocol.md). */
interface WireWebPush {
  sub: string;
  body?: string;
}

type Response = Awaited<ReturnType<FetchLike>>;

const utf8 = new TextDecoder();

/**
 * Web Push for a Pushwire device (RFC 8030 subscriptions on the Pushwire server, RFC 8291
 * payloads): makes and keeps the receiver's keys, manages the server-side subscription, and
 * decrypts incoming Web Push messages before they reach {@link Delivery}.
 *
 * Messages keep their order: a Web Push message is decrypted (asynchronously, WebCrypto) in a
 * queue, and every message behind it waits in the same queue until it is handed over. A message
 * that cannot be decrypted is reported as a {@link WebPushError} and processed without being
 * handed over (saved, acknowledged), so it never blocks the stream.
 */
export class WebPush {
  readonly #d: WebPushDeps;
  /** Subscribe/unsubscribe run one at a time. */
  #ops: Promise<unknown> = Promise.resolve();
  /** Incoming messages waiting behind a decryption. */
  #queue: Promise<void> = Promise.resolve();
  #queued = 0;
  #keys: { sub: string; keys: Promise<WebPushKeys> } | undefined;
  #disposed = false;

  constructor(deps: WebPushDeps) {
    this.#d = deps;
  }

  /** True when no message is waiting for a decryption. */
  get idle(): boolean {
    return this.#queued === 0;
  }

  /** The stored subscription, or null. */
  async current(): Promise<WebPushSubscription | null> {
    await this.#d.keeper.load();
    const stored = this.#d.keeper.webpush;
    return stored ? subscriptionOf(stored) : null;
  }

  /**
   * The device's Web Push subscription for `applicationServerKey`: the stored one when it exists
   * and the server still has it, else a new one (fresh keys, `POST /v1/devices/:id/webpush`),
   * saved before it is returned. A stored subscription bound to another key is a `KEY_MISMATCH`.
   */
  subscribe(options: PushSubscribeOptions = {}): Promise<WebPushSubscription> {
    let key: string | undefined;
    try {
      key = applicationServerKeyOf(options.applicationServerKey);
    } catch (error) {
      return Promise.reject(error);
    }
    return this.#serial(() => this.#subscribe(key));
  }

  /**
   * Deletes the subscription on the server (the endpoint answers 410 from then on) and forgets
   * its keys. Resolves true when there was one, false when there was none.
   */
  unsubscribe(): Promise<boolean> {
    return this.#serial(() => this.#unsubscribe());
  }

  /** Handles one `msg` frame: Web Push messages are decrypted first; order is kept. */
  receive(frame: MessageFrame): void {
    const wire = webPushOf(frame.data);
    if (this.#queued === 0 && wire === undefined) {
      this.#d.delivery.receive(frame);
      return;
    }
    this.#queued++;
    this.#queue = this.#queue
      .then(async () => {
        if (this.#disposed) return;
        const opened =
          wire === undefined || !this.#d.delivery.isNew(frame)
            ? { message: frame, handOver: true }
            : await this.#open(frame, wire);
        if (!this.#disposed) this.#d.delivery.receive(opened.message, opened.handOver);
      })
      .catch((cause: unknown) => {
        this.#d.report(new WebPushError('DECRYPT_FAILED', 'handling a message failed', { cause }));
      })
      .finally(() => {
        this.#queued--;
      });
  }

  /** The client closed: messages still waiting are dropped (they are replayed next time). */
  dispose(): void {
    this.#disposed = true;
  }

  // ── subscriptions ──────────────────────────────────────────────────────────────────────────

  async #subscribe(key: string | undefined): Promise<WebPushSubscription> {
    const { keeper } = this.#d;
    await keeper.load();
    const creds = await keeper.credentials();
    const current = keeper.webpush;
    if (current !== undefined) {
      const alive = await this.#alive(creds, current);
      if (alive && current.applicationServerKey === key) return subscriptionOf(current);
      if (alive) {
        throw new WebPushError(
          'KEY_MISMATCH',
          'already subscribed with another applicationServerKey: pushUnsubscribe() first',
        );
      }
      this.#forget(); // revoked on the server: replaced below
    }
    const keys = await generateWebPushKeys().catch((cause: unknown) => {
      throw new WebPushError('UNSUPPORTED', 'cannot make P-256 keys here (WebCrypto missing?)', { cause });
    });
    const exported = await exportWebPushKeys(keys);
    const res = await this.#request(
      'SUBSCRIBE_FAILED',
      'POST',
      `/v1/devices/${encodeURIComponent(creds.deviceId)}/webpush`,
      creds,
      key === undefined ? {} : { applicationServerKey: key },
    );
    if (res.status !== 201 && res.status !== 200) throw await failure('SUBSCRIBE_FAILED', 'subscribing', res);
    const body = (await res.json().catch(() => undefined)) as Record<string, unknown> | undefined;
    if (typeof body?.subscriptionId !== 'string' || typeof body.endpoint !== 'string') {
      throw new WebPushError('SUBSCRIBE_FAILED', 'the server answered without subscriptionId and endpoint', {
        status: res.status,
      });
    }
    if (this.#d.closed()) throw new ClosedError('the client closed while subscribing');
    const stored: StoredWebPush = {
      subscriptionId: body.subscriptionId,
      endpoint: body.endpoint,
      expirationTime: typeof body.expirationTime === 'number' ? body.expirationTime : null,
      keys: exported,
      ...(key !== undefined && { applicationServerKey: key }),
    };
    keeper.webpush = stored;
    this.#keys = { sub: stored.subscriptionId, keys: Promise.resolve(keys) };
    await keeper.save(); // the keys are durable before anyone can encrypt to them
    return subscriptionOf(stored);
  }

  async #unsubscribe(): Promise<boolean> {
    const { keeper } = this.#d;
    await keeper.load();
    const current = keeper.webpush;
    if (current === undefined) return false;
    const creds = await keeper.credentials();
    const path = `/v1/devices/${encodeURIComponent(creds.deviceId)}/webpush/${encodeURIComponent(current.subscriptionId)}`;
    const res = await this.#request('UNSUBSCRIBE_FAILED', 'DELETE', path, creds);
    // 404: the server no longer knows it; gone either way.
    if (res.status !== 204 && res.status !== 200 && res.status !== 404) {
      throw await failure('UNSUBSCRIBE_FAILED', 'unsubscribing', res);
    }
    if (keeper.webpush === current) this.#forget();
    await keeper.save();
    return true;
  }

  /**
   * Whether the server still has the subscription active. Only a clear "revoked" or "unknown"
   * answer counts as dead: offline, or any other answer, keeps the stored one.
   */
  async #alive(creds: Credentials, stored: StoredWebPush): Promise<boolean> {
    const path = `/v1/devices/${encodeURIComponent(creds.deviceId)}/webpush`;
    try {
      const res = await this.#request('SUBSCRIBE_FAILED', 'GET', path, creds);
      if (res.status !== 200) return true;
      const body = (await res.json()) as {
        subscriptions?: { subscriptionId?: unknown; revokedAt?: unknown }[];
      };
      if (!Array.isArray(body?.subscriptions)) return true;
      const mine = body.subscriptions.find((s) => s?.subscriptionId === stored.subscriptionId);
      return mine !== undefined && (mine.revokedAt === null || mine.revokedAt === undefined);
    } catch {
      return true;
    }
  }

  #forget(): void {
    this.#d.keeper.webpush = undefined;
    this.#keys = undefined;
  }

  async #request(
    reason: WebPushErrorReason,
    method: string,
    path: string,
    creds: Credentials,
    body?: unknown,
  ): Promise<Response> {
    const doFetch = this.#d.fetch ?? (globalThis.fetch as unknown as FetchLike | undefined);
    if (doFetch === undefined) throw new ConfigError('no fetch here: pass the `fetch` option for Web Push');
    const headers: Record<string, string> = { authorization: `Device ${creds.deviceId}:${creds.token}` };
    if (body !== undefined) headers['content-type'] = 'application/json';
    // GET and DELETE go without a body (fetch refuses one on GET), whatever FetchLike's type says.
    const init = { method, headers, ...(body !== undefined && { body: JSON.stringify(body) }) };
    try {
      return await doFetch(`${this.#d.http()}${path}`, init as Parameters<FetchLike>[1]);
    } catch (cause) {
      throw new WebPushError(reason, `${method} ${path} failed: ${errorText(cause)}`, { cause });
    }
  }

  #serial<T>(op: () => Promise<T>): Promise<T> {
    if (this.#d.closed()) return Promise.reject(new ClosedError());
    const run = this.#ops.then(op, op);
    this.#ops = run.catch(() => {});
    return run;
  }

  // ── incoming messages ──────────────────────────────────────────────────────────────────────

  /** Decrypts one new Web Push message; on failure reports it and asks for it to be skipped. */
  async #open(
    frame: MessageFrame,
    wire: WireWebPush,
  ): Promise<{ message: PushMessage & { t: 'msg' }; handOver: boolean }> {
    const stored = this.#d.keeper.webpush;
    const skip = (reason: WebPushErrorReason, text: string, cause?: unknown) => {
      this.#d.report(new WebPushError(reason, text, { messageId: frame.id, cause }));
      return { message: frame, handOver: false };
    };
    if (stored === undefined || stored.subscriptionId !== wire.sub) {
      return skip(
        'NO_SUBSCRIPTION',
        `message ${frame.id} is for Web Push subscription ${wire.sub}, whose keys this client does not hold`,
      );
    }
    if (wire.body === undefined) {
      const { data: _none, ...rest } = frame; // a push without payload: no data, as in a browser
      return { message: { ...rest, webpush: true }, handOver: true };
    }
    try {
      const keys = await this.#keysOf(stored);
      const plain = await decryptAes128gcm(base64urlDecode(wire.body), keys);
      return { message: { ...frame, data: utf8.decode(plain), webpush: true }, handOver: true };
    } catch (cause) {
      return skip('DECRYPT_FAILED', `message ${frame.id} does not decrypt: ${errorText(cause)}`, cause);
    }
  }

  #keysOf(stored: StoredWebPush): Promise<WebPushKeys> {
    if (this.#keys?.sub !== stored.subscriptionId) {
      const keys = importWebPushKeys(stored.keys);
      this.#keys = { sub: stored.subscriptionId, keys };
      keys.catch(() => {
        if (this.#keys?.keys === keys) this.#keys = undefined;
      });
    }
    return this.#keys.keys;
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
function subscriptionOf(s: StoredWebPush): WebPushSubscription {
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

/** Normalises an `applicationServerKey` to base64url without padding; checks it is a P-256 point. */
function applicationServerKeyOf(key: PushSubscribeOptions['applicationServerKey']): string | undefined {
  if (key === undefined || key === null) return undefined;
  let raw: Uint8Array | undefined;
  try {
    if (typeof key === 'string') raw = base64urlDecode(key);
    else if (key instanceof ArrayBuffer) raw = new Uint8Array(key);
    else if (ArrayBuffer.isView(key)) raw = new Uint8Array(key.buffer, key.byteOffset, key.byteLength);
  } catch {
    raw = undefined;
  }
  if (raw === undefined || raw.length !== 65 || raw[0] !== 4) {
    throw new WebPushError(
      'BAD_APPLICATION_SERVER_KEY',
      'applicationServerKey must be an uncompressed P-256 public key: 65 bytes, or base64url of them',
    );
  }
  return base64urlEncode(raw);
}

/** A WebPushError for a refused request, with the server's `{error, message}` when it sent one. */
async function failure(reason: WebPushErrorReason, doing: string, res: Response): Promise<WebPushError> {
  const body = (await res.json().catch(() => undefined)) as
    | { error?: unknown; message?: unknown }
    | undefined;
  const serverError = typeof body?.error === 'string' ? body.error : undefined;
  const why = typeof body?.message === 'string' ? `: ${body.message}` : '';
  const r = serverError === 'BAD_APPLICATION_SERVER_KEY' ? serverError : reason;
  return new WebPushError(
    r,
    `${doing} failed (HTTP ${res.status}${serverError ? ` ${serverError}` : ''})${why}`,
    {
      status: res.status,
      ...(serverError !== undefined && { serverError }),
    },
  );
}

const errorText = (e: unknown): string => (e instanceof Error ? e.message : String(e));
