import type { MessageFrame, WebPushKeys } from '@pushwire/protocol';
import { ConnectionError, type PushwireError, WebPushError, type WebPushErrorReason } from './errors.js';
import type { StateKeeper } from './keeper.js';
import type { PushMessage } from './message.js';
import { errorText, type LoadOps, type WireWebPush } from './webpush.js';

/** A Web Push message after the stage: decrypted and handed over, or processed without reaching the app. */
export interface Opened {
  message: PushMessage & { t: 'msg' };
  /** False when the message could not be read: it is remembered, saved and acked, not handed over. */
  handOver: boolean;
}

/**
 * The Web Push stage in front of delivery (RFC 8291): only new Web Push messages enter it, and
 * leave decrypted (`data` the plaintext, `webpush: true`). One that cannot be read — not for the
 * stored subscription's keys (`NO_SUBSCRIPTION`), or not decrypting (`DECRYPT_FAILED`) — is
 * reported as a {@link WebPushError} and leaves with `handOver: false`, so it never blocks the
 * stream. The decryption code is loaded on the first Web Push message.
 */
export interface WebPushStage {
  /**
   * Opens one Web Push message whose wire form is `wire`. Rejects (with a `ConnectionError`) only
   * when the Web Push code cannot be loaded: the message must then not be processed at all.
   */
  open(frame: MessageFrame, wire: WireWebPush): Promise<Opened>;
}

export function createWebPushStage(d: {
  keeper: Pick<StateKeeper, 'webpush'>;
  load: LoadOps;
  report(error: PushwireError): void;
}): WebPushStage {
  /** The keys of the stored subscription, imported (by their private scalar `d`). */
  let cached: { d: string; keys: Promise<WebPushKeys> } | undefined;

  return {
    async open(frame, wire) {
      let m: Awaited<ReturnType<LoadOps>>;
      try {
        m = await d.load('DECRYPT_FAILED');
      } catch (cause) {
        throw new ConnectionError(`cannot decrypt message ${frame.id} now: ${errorText(cause)}`, { cause });
      }
      const stored = d.keeper.webpush;
      const skip = (reason: WebPushErrorReason, text: string, cause?: unknown): Opened => {
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
    },
  };
}
