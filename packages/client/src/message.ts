import type { MessageFrame, NotificationFields } from '@pushwire/protocol';

/**
 * A message as the app sees it: the `msg` frame without `t`.
 * `{ id, stream, seq, ts, exp?, data?, notification?, urgency?, collapseKey?, webpush? }`
 *
 * A Web Push message (RFC 8291, see `pushSubscribe`) arrives decrypted: `webpush: true` and `data`
 * the plaintext as a UTF-8 string (absent for a push without payload).
 */
export type PushMessage = Omit<MessageFrame, 't'> & { webpush?: true };

/** A message that carries notification fields (the payload of the `notification` event). */
export type NotificationMessage = PushMessage & { notification: NotificationFields };
