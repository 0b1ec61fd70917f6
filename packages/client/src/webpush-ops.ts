/**
 * The Web Push code loaded on demand (a dynamic `import()` from webpush.ts): subscribing and
 * unsubscribing over HTTP, and RFC 8291 decryption with WebCrypto. An app that never calls
 * `pushSubscribe` and never receives a Web Push message never loads it.
 */
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
import type { WebPushError, WebPushErrorReason } from './errors.js';
import type { PushMessage } from './message.js';
import type { Credentials, StoredWebPush } from './storage/types.js';
import type { Kit, PushSubscribeOptions, WebPushDeps, WebPushSubscription, WireWebPush } from './webpush.js';

type Response = Awaited<ReturnType<FetchLike>>;

/** What webpush.ts loads: one per client. */
export interface WebPushOps {
  subscribe(options: PushSubscribeOptions): Promise<WebPushSubscription>;
  unsubscribe(): Promise<boolean>;
  /** Decrypts one new Web Push message; on failure reports it and asks for it to be skipped. */
  open(
    frame: MessageFrame,
    wire: WireWebPush,
  ): Promise<{ message: PushMessage & { t: 'msg' }; handOver: boolean }>;
}

const utf8 = new TextDecoder();

/**
 * Web Push operations for one client (see {@link WebPush} in webpush.ts for the whole picture).
 * `kit` brings what this module needs of the always-loaded code: imported here, it would make
 * bundlers split it into a third, shared chunk.
 */
export function webPushOps(d: WebPushDeps, kit: Kit): WebPushOps {
  const { WebPushError, ClosedError, ConfigError, subscriptionOf, errorText } = kit;
  const { keeper } = d;
  /** Subscribe/unsubscribe run one at a time. */
  let ops: Promise<unknown> = Promise.resolve();
  let cached: { sub: string; keys: Promise<WebPushKeys> } | undefined;

  const serial = <T>(op: () => Promise<T>): Promise<T> => {
    if (d.closed()) return Promise.reject(new ClosedError());
    const run = ops.then(op, op);
    ops = run.catch(() => {});
    return run;
  };

  const forget = (): void => {
    keeper.webpush = undefined;
    cached = undefined;
  };

  const devicePath = (creds: Credentials, rest = ''): string =>
    `/v1/devices/${encodeURIComponent(creds.deviceId)}/webpush${rest}`;

  const request = async (
    reason: WebPushErrorReason,
    method: string,
    path: string,
    creds: Credentials,
    body?: unknown,
  ): Promise<Response> => {
    const doFetch = d.fetch ?? (globalThis.fetch as unknown as FetchLike | undefined);
    if (doFetch === undefined) throw new ConfigError('no fetch here: pass the `fetch` option for Web Push');
    const headers: Record<string, string> = { authorization: `Device ${creds.deviceId}:${creds.token}` };
    if (body !== undefined) headers['content-type'] = 'application/json';
    // GET and DELETE go without a body (fetch refuses one on GET), whatever FetchLike's type says.
    const init = { method, headers, ...(body !== undefined && { body: JSON.stringify(body) }) };
    try {
      return await doFetch(`${d.http()}${path}`, init as Parameters<FetchLike>[1]);
    } catch (cause) {
      throw new WebPushError(reason, `${method} ${path} failed: ${errorText(cause)}`, { cause });
    }
  };

  /**
   * Whether the server still has the subscription active. Only a clear "revoked" or "unknown"
   * answer counts as dead: offline, or any other answer, keeps the stored one.
   */
  const alive = async (creds: Credentials, stored: StoredWebPush): Promise<boolean> => {
    try {
      const res = await request('SUBSCRIBE_FAILED', 'GET', devicePath(creds), creds);
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
  };

  /**
   * The device's Web Push subscription for `key`: the stored one when it exists and the server
   * still has it, else a new one (fresh keys, `POST /v1/devices/:id/webpush`), saved before it is
   * returned. A stored subscription bound to another key is a `KEY_MISMATCH`.
   */
  const subscribe = async (key: string | undefined): Promise<WebPushSubscription> => {
    await keeper.load();
    const creds = await keeper.credentials();
    const current = keeper.webpush;
    if (current !== undefined) {
      const live = await alive(creds, current);
      if (live && current.applicationServerKey === key) return subscriptionOf(current);
      if (live) {
        throw new WebPushError(
          'KEY_MISMATCH',
          'already subscribed with another applicationServerKey: pushUnsubscribe() first',
        );
      }
      forget(); // revoked on the server: replaced below
    }
    const keys = await generateWebPushKeys().catch((cause: unknown) => {
      throw new WebPushError('UNSUPPORTED', 'cannot make P-256 keys here (WebCrypto missing?)', { cause });
    });
    const exported = await exportWebPushKeys(keys);
    const res = await request(
      'SUBSCRIBE_FAILED',
      'POST',
      devicePath(creds),
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
    if (d.closed()) throw new ClosedError('the client closed while subscribing');
    const stored: StoredWebPush = {
      subscriptionId: body.subscriptionId,
      endpoint: body.endpoint,
      expirationTime: typeof body.expirationTime === 'number' ? body.expirationTime : null,
      keys: exported,
      ...(key !== undefined && { applicationServerKey: key }),
    };
    keeper.webpush = stored;
    cached = { sub: stored.subscriptionId, keys: Promise.resolve(keys) };
    await keeper.save(); // the keys are durable before anyone can encrypt to them
    return subscriptionOf(stored);
  };

  /** Deletes the subscription on the server and forgets its keys; false when there was none. */
  const unsubscribe = async (): Promise<boolean> => {
    await keeper.load();
    const current = keeper.webpush;
    if (current === undefined) return false;
    const creds = await keeper.credentials();
    const path = devicePath(creds, `/${encodeURIComponent(current.subscriptionId)}`);
    const res = await request('UNSUBSCRIBE_FAILED', 'DELETE', path, creds);
    // 404: the server no longer knows it; gone either way.
    if (res.status !== 204 && res.status !== 200 && res.status !== 404) {
      throw await failure('UNSUBSCRIBE_FAILED', 'unsubscribing', res);
    }
    if (keeper.webpush === current) forget();
    await keeper.save();
    return true;
  };

  /** Normalises an `applicationServerKey` to base64url without padding; checks it is a P-256 point. */
  const applicationServerKeyOf = (key: PushSubscribeOptions['applicationServerKey']): string | undefined => {
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
  };

  /** A WebPushError for a refused request, with the server's `{error, message}` when it sent one. */
  const failure = async (reason: WebPushErrorReason, doing: string, res: Response): Promise<WebPushError> => {
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
  };

  const keysOf = (stored: StoredWebPush): Promise<WebPushKeys> => {
    if (cached?.sub !== stored.subscriptionId) {
      const keys = importWebPushKeys(stored.keys);
      cached = { sub: stored.subscriptionId, keys };
      keys.catch(() => {
        if (cached?.keys === keys) cached = undefined;
      });
    }
    return cached.keys;
  };

  return {
    subscribe(options) {
      let key: string | undefined;
      try {
        key = applicationServerKeyOf(options.applicationServerKey);
      } catch (error) {
        return Promise.reject(error);
      }
      return serial(() => subscribe(key));
    },
    unsubscribe: () => serial(unsubscribe),
    async open(frame, wire) {
      const stored = keeper.webpush;
      const skip = (reason: WebPushErrorReason, text: string, cause?: unknown) => {
        d.report(new WebPushError(reason, text, { messageId: frame.id, cause }));
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
        const keys = await keysOf(stored);
        const plain = await decryptAes128gcm(base64urlDecode(wire.body), keys);
        return { message: { ...frame, data: utf8.decode(plain), webpush: true }, handOver: true };
      } catch (cause) {
        return skip('DECRYPT_FAILED', `message ${frame.id} does not decrypt: ${errorText(cause)}`, cause);
      }
    },
  };
}
