import type { Cursors } from '@pushwire/protocol';
import type { Disposer } from './emitter.js';
import type { PushwireError, RequestError } from './errors.js';
import type { NotificationMessage, PushMessage } from './message.js';
import type { ConnectionState, StateChange } from './state.js';
import type { Transport } from './transport/types.js';
import type { WakeReport } from './wake.js';
import type { WakeTokenOptions } from './wake-token.js';
import type { PushSubscribeOptions, WebPushSubscription } from './webpush.js';

/** Events of a client and their payloads. */
export interface ClientEvents {
  /** A new message (each message once, in seq order per stream). */
  message: PushMessage;
  /** A new message that carries notification fields (also emitted as `message`). */
  notification: NotificationMessage;
  /** The connection state changed. */
  state: StateChange;
  /** Something went wrong; `error.fatal` tells whether the client stopped. */
  error: PushwireError;
}

/** How a runtime entry (browser, Node) completes the core. */
export interface Runtime {
  defaultTransport(): Transport;
  /** Wires environment events (online/offline, visibility); returns their disposer. */
  attach?(client: PushwireClient): Disposer | undefined;
}

/**
 * A Pushwire client: one resilient WebSocket, every message handed to the app once, in order.
 * Create it with `createClient`; it starts connecting on the next microtask.
 *
 * ```
 *          start                welcome
 *   idle ─────────▶ connecting ─────────▶ open
 *                    ▲  │   ▲               │
 *                    │  │   └───────────────┤ networkChanged()
 *     retry timer /  │  │ failure           │ socket lost, pong timeout, goaway, fatal server error
 *     networkChanged │  ▼                   │
 *     / wake()       backoff ◀──────────────┘      (offline: backoff waits without a timer)
 *
 *   any state ── close() / UNAUTHORIZED / UNSUPPORTED_VERSION / fatal config ──▶ closed
 * ```
 *
 * The connection machine (connection.ts) is the only writer of the state; every change is emitted as `state`.
 * @example
 * const c = createClient({ url: 'https://push.example.com', register: { apiKey }, storage });
 * c.on('message', (m) => console.log(m.stream, m.seq, m.data));
 * await c.subscribe('news');
 */
export interface PushwireClient extends AsyncIterable<PushMessage> {
  /** Current connection state. */
  readonly state: ConnectionState;
  /** The device id, once credentials are known (given, loaded or registered). */
  readonly deviceId: string | undefined;
  /** Topics the device is subscribed to, as of the last welcome / subbed / unsubbed. */
  readonly topics: string[];
  /** Current network key (see {@link PushwireClient.networkChanged}). */
  readonly networkKey: string;
  /** Seconds between pings the heartbeat policy wants now (the session may be capped by the server). */
  readonly heartbeatInterval: number;
  /** Current cursors (stream → highest seq processed); a copy. */
  readonly cursors: Cursors;
  /** Listens to an event; returns the disposer that removes the listener. */
  on<K extends keyof ClientEvents>(event: K, listener: (value: ClientEvents[K]) => void): Disposer;
  /** Messages as an async iterator (from now on, buffered until read); ends when the client closes. */
  [Symbol.asyncIterator](): AsyncIterableIterator<PushMessage>;
  /**
   * Subscribes the device to a topic (persisted server-side: it survives reconnects). Sent now
   * if open, else once open. Resolves on `subbed`, after the topic's cursor is saved.
   */
  subscribe(topic: string): Promise<void>;
  /** Unsubscribes the device from a topic. Resolves on `unsubbed`. */
  unsubscribe(topic: string): Promise<void>;
  /**
   * Subscribes the device to Web Push (RFC 8030/8291): a subscription whose JSON is exactly a
   * browser's `PushSubscription.toJSON()`, for the app's backend to push to with any Web Push
   * library. The keys are made here and kept in storage; calling again returns the same
   * subscription while the server still has it. Web Push messages then arrive decrypted, like
   * any other message, with `webpush: true` and the plaintext in `data`.
   * @example
   * const sub = await client.pushSubscribe({ applicationServerKey: VAPID_PUBLIC_KEY });
   * await fetch('/my-backend/subscriptions', { method: 'POST', body: JSON.stringify(sub) });
   */
  pushSubscribe(options?: PushSubscribeOptions): Promise<WebPushSubscription>;
  /** Deletes the Web Push subscription: its endpoint answers 410 from then on; the keys are forgotten. */
  pushUnsubscribe(): Promise<boolean>;
  /** The stored Web Push subscription, or null (no network request). */
  getPushSubscription(): Promise<WebPushSubscription | null>;
  /** Registers the device's APNs/FCM token for content-free wake-ups (docs/mobile.md); null removes it. */
  setWakeToken(token: WakeTokenOptions | null): Promise<void>;
  /**
   * Rotates the device token: the server answers a new one (saved in the state store) and closes
   * the session that used the old one; the client reconnects with the new token at once. Rejects
   * with {@link RequestError} when the server refuses, {@link ConnectionError} when unreachable
   * (the old token then still works).
   */
  rotateToken(): Promise<void>;
  /**
   * Closes the client from any state: closes the socket (1000) without sending anything more,
   * rejects pending requests, ends iterators, removes environment listeners. Resolves once the
   * last state is saved.
   */
  close(): Promise<void>;
  /**
   * Foreground/background. In background acks leave without coalescing delay (the OS may suspend
   * the app any moment) and the policy's background interval applies (fixed: `backgroundInterval`).
   */
  setBackground(on: boolean): void;
  /**
   * The network changed (or may have): drop the current socket, which may be dead, and reconnect
   * at once without backoff. With `key`, switch the heartbeat memory to that network.
   */
  networkChanged(key?: string): void;
  /** Network availability (browser `online`/`offline`). Offline: no reconnect attempts until online. */
  setOnline(online: boolean): void;
  /**
   * For an OS keep-alive or background handler with `deadlineMs` left: ping (or reconnect now),
   * drain the replay, and resolve with a report strictly before the deadline.
   */
  wake(deadlineMs: number): Promise<WakeReport>;
}
