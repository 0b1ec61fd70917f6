/**
 * The Web Push code loaded on demand (a dynamic `import()` from webpush.ts): subscribing and
 * unsubscribing over HTTP, and RFC 8291 with WebCrypto. An app that never calls `pushSubscribe`
 * and never receives a Web Push message never loads it. What it needs of the always-loaded code
 * comes as `kit` (imported here, bundlers would split it into a third, shared chunk).
 */
import {
  base64urlDecode,
  base64urlEncode,
  decryptAes128gcm,
  exportWebPushKeys,
  generateWebPushKeys,
  type WebPushKeys,
} from '@pushwire/protocol';
import type { WebPushErrorReason } from './errors.js';
import type { StoredWebPush } from './storage/types.js';
import type { Kit, PushSubscribeOptions, WebPushDeps, WebPushSubscription } from './webpush.js';

export { importWebPushKeys } from '@pushwire/protocol';

/**
 * An `applicationServerKey` as base64url without padding (undefined when none is given). Throws
 * unless it is an uncompressed P-256 point: 65 bytes, raw or base64url.
 */
export function serverKey(key: PushSubscribeOptions['applicationServerKey']): string | undefined {
  if (key === undefined || key === null) return undefined;
  const raw =
    typeof key === 'string'
      ? base64urlDecode(key)
      : key instanceof ArrayBuffer
        ? new Uint8Array(key)
        : new Uint8Array(key.buffer, key.byteOffset, key.byteLength);
  if (raw.length !== 65 || raw[0] !== 4) throw new RangeError('not a P-256 point');
  return base64urlEncode(raw);
}

/** The UTF-8 plaintext of a Web Push message's base64url `aes128gcm` body. */
export const decrypt = async (body: string, keys: WebPushKeys): Promise<string> =>
  new TextDecoder().decode(await decryptAes128gcm(base64urlDecode(body), keys));

type Reason = WebPushErrorReason;

/**
 * Subscribing and unsubscribing for one client, one at a time (see {@link WebPush} in
 * webpush.ts). `forget` drops the stored subscription and its keys.
 */
export function webPushOps(d: WebPushDeps, kit: Kit, forget: () => void) {
  const { WebPushError, ClosedError, subscriptionOf, errorText, request } = kit;
  const { keeper } = d;
  let queue: Promise<unknown> = Promise.resolve();

  /**
   * A request to the device's Web Push routes (`/v1/devices/:id/webpush` and `rest`). An answer
   * whose status is not in `ok` is refused: a WebPushError with the status and the server's
   * `{error, message}` when it sent one.
   */
  const call = async (reason: Reason, method: string, ok: number[], rest = '', body?: unknown) => {
    const creds = await keeper.credentials();
    const path = `/v1/devices/${encodeURIComponent(creds.deviceId)}/webpush${rest}`;
    const what = `${method} ${path}: `;
    const answer = await request(
      d.fetch,
      d.http() + path,
      method,
      `Device ${creds.deviceId}:${creds.token}`,
      body,
      (cause) => new WebPushError(reason, what + errorText(cause), { cause }),
    );
    const { status, body: got } = answer;
    if (!ok.includes(status)) {
      const serverError = typeof got?.error === 'string' ? got.error : undefined;
      const why = typeof got?.message === 'string' ? `: ${got.message}` : '';
      throw new WebPushError(
        serverError === 'BAD_APPLICATION_SERVER_KEY' ? serverError : reason,
        `${what}HTTP ${status} ${serverError ?? ''}${why}`,
        { status, ...(serverError !== undefined && { serverError }) },
      );
    }
    return answer;
  };

  const serial = <T>(op: () => Promise<T>): Promise<T> => {
    if (d.closed()) return Promise.reject(new ClosedError());
    const run = queue.then(op, op);
    queue = run.catch(() => {});
    return run;
  };

  /**
   * Whether the server still has the subscription active. Only a clear "revoked" or "unknown"
   * answer counts as dead: offline, or any other answer, keeps the stored one.
   */
  const alive = async (stored: StoredWebPush): Promise<boolean> => {
    try {
      const { body } = await call('SUBSCRIBE_FAILED', 'GET', [200]);
      const subs = body?.subscriptions as { subscriptionId?: unknown; revokedAt?: unknown }[] | undefined;
      if (!Array.isArray(subs)) return true;
      const mine = subs.find((s) => s?.subscriptionId === stored.subscriptionId);
      return mine !== undefined && (mine.revokedAt ?? null) === null;
    } catch {
      return true;
    }
  };

  const subscribe = async (key: string | undefined): Promise<WebPushSubscription> => {
    await keeper.credentials();
    const current = keeper.webpush;
    if (current !== undefined) {
      const live = await alive(current);
      if (live && current.applicationServerKey === key) return subscriptionOf(current);
      if (live) {
        throw new WebPushError('KEY_MISMATCH', 'subscribed with another key: pushUnsubscribe() first');
      }
      forget(); // revoked on the server: replaced below
    }
    const keys = await generateWebPushKeys().catch((cause: unknown) => {
      throw new WebPushError('UNSUPPORTED', 'no WebCrypto here', { cause });
    });
    const exported = await exportWebPushKeys(keys);
    const { body, status } = await call(
      'SUBSCRIBE_FAILED',
      'POST',
      [200, 201],
      '',
      key === undefined ? {} : { applicationServerKey: key },
    );
    const { subscriptionId, endpoint, expirationTime } = body ?? {};
    if (typeof subscriptionId !== 'string' || typeof endpoint !== 'string') {
      throw new WebPushError('SUBSCRIBE_FAILED', 'no subscriptionId and endpoint in the answer', { status });
    }
    if (d.closed()) throw new ClosedError();
    const stored: StoredWebPush = {
      subscriptionId,
      endpoint,
      expirationTime: typeof expirationTime === 'number' ? expirationTime : null,
      keys: exported,
      ...(key !== undefined && { applicationServerKey: key }),
    };
    keeper.webpush = stored;
    await keeper.save(); // the keys are durable before anyone can encrypt to them
    return subscriptionOf(stored);
  };

  return {
    subscribe(options: PushSubscribeOptions): Promise<WebPushSubscription> {
      let key: string | undefined;
      try {
        key = serverKey(options.applicationServerKey);
      } catch (cause) {
        return Promise.reject(
          new WebPushError('BAD_APPLICATION_SERVER_KEY', 'applicationServerKey must be a P-256 public key', {
            cause,
          }),
        );
      }
      return serial(() => subscribe(key));
    },
    unsubscribe: () =>
      serial(async () => {
        await keeper.load();
        const current = keeper.webpush;
        if (current === undefined) return false;
        // 404: the server no longer knows it; gone either way.
        await call(
          'UNSUBSCRIBE_FAILED',
          'DELETE',
          [200, 204, 404],
          `/${encodeURIComponent(current.subscriptionId)}`,
        );
        if (keeper.webpush === current) forget();
        await keeper.save();
        return true;
      }),
  };
}
