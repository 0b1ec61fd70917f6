import type { MessageFrame } from '@pushwire/protocol';
import type { Delivery } from './delivery.js';
import { type PushwireError, WebPushError } from './errors.js';
import { webPushOf } from './webpush.js';
import type { Opened, WebPushStage } from './webpush-stage.js';

/**
 * The path of a `msg` frame from the session to the app, walked once per frame:
 *
 * ```
 *   session ──▶ Web Push stage (new Web Push messages only: decrypt) ──▶ delivery ──▶ app
 *           └──────────────────── every other message ─────────────────▶
 * ```
 *
 * Stream order is kept: the stage is asynchronous (WebCrypto), so while a Web Push message is in
 * it, every message behind it waits in line, and enters delivery after it. When the Web Push code
 * cannot be loaded (offline, a deploy removed the chunk), that message and everything behind it
 * are left unprocessed and the session ends (`fail`): the server replays them after a reconnect.
 */
export interface Inbound {
  /** True when no message is waiting for the stage. */
  readonly idle: boolean;
  /** Takes one `msg` frame from the session. */
  receive(frame: MessageFrame): void;
  /** The client closed: messages still waiting are dropped (they are replayed next time). */
  dispose(): void;
}

export function createInbound(d: {
  delivery: Pick<Delivery, 'isNew' | 'receive'>;
  stage: WebPushStage;
  report(error: PushwireError): void;
  /** The stage cannot work now: end the session without processing what waits. */
  fail(error: PushwireError): void;
}): Inbound {
  /** Messages waiting behind the stage, in order. */
  let line: Promise<void> = Promise.resolve();
  let waiting = 0;
  /** Bumped when waiting messages must be dropped (closed, or the stage failed). */
  let epoch = 0;

  return {
    get idle() {
      return waiting === 0;
    },
    receive(frame) {
      const wire = webPushOf(frame.data);
      if (waiting === 0 && wire === undefined) {
        d.delivery.receive(frame);
        return;
      }
      const mine = epoch;
      const current = () => mine === epoch;
      waiting++;
      line = line
        .then(async () => {
          if (!current()) return;
          let opened: Opened = { message: frame, handOver: true };
          if (wire !== undefined && d.delivery.isNew(frame)) {
            try {
              opened = await d.stage.open(frame, wire);
            } catch (error) {
              if (!current()) return;
              epoch++; // drop what waits behind it too: all of it comes again
              d.fail(error as PushwireError);
              return;
            }
          }
          if (current()) d.delivery.receive(opened.message, opened.handOver);
        })
        .catch((cause: unknown) => {
          d.report(new WebPushError('DECRYPT_FAILED', 'handling a message failed', { cause }));
        })
        .finally(() => {
          waiting--;
        });
    },
    dispose() {
      epoch++;
    },
  };
}
