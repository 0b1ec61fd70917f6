import type { MessageFrame, NotificationFields } from '@pushwire/protocol';

/**
 * A message as the app sees it: the `msg` frame without `t`.
 * `{ id, stream, seq, ts, exp?, data?, notification?, urgency?, collapseKey? }`
 */
export type PushMessage = Omit<MessageFrame, 't'>;

/** A message that carries notification fields (the payload of the `notification` event). */
export type NotificationMessage = PushMessage & { notification: NotificationFields };
