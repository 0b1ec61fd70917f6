/**
 * The public surface shared by the browser/neutral entry (`index.ts`) and the Node entry
 * (`node.ts`). Each entry adds its own `createClient` with its default transport.
 */
export { type BackoffOptions, DEFAULT_BACKOFF, type Random } from './backoff.js';
export type { BrowserEnvironment } from './browser.js';
export type { ClientEvents, PushwireClient } from './client.js';
export { type Clock, systemClock } from './clock.js';
export type { FetchLike, RegisterOption } from './credentials.js';
export type { Disposer } from './emitter.js';
export {
  AuthError,
  ClosedError,
  ConfigError,
  ConnectionError,
  ForbiddenError,
  ListenerError,
  ProtocolViolationError,
  PushwireError,
  type PushwireErrorCode,
  type PushwireErrorOptions,
  RateLimitedError,
  RegistrationError,
  RequestError,
  StorageError,
  TimeoutError,
  VersionError,
  WebPushError,
  type WebPushErrorReason,
} from './errors.js';
export {
  type AdaptiveHeartbeatOptions,
  adaptiveHeartbeat,
  DEFAULT_ADAPTIVE_HEARTBEAT,
  DEFAULT_FIXED_HEARTBEAT,
  type FixedHeartbeatOptions,
  fixedHeartbeat,
  type HeartbeatPolicy,
  type LearnedHeartbeat,
} from './heartbeat.js';
export type { NotificationMessage, PushMessage } from './message.js';
export type { ClientOptions, HeartbeatOption } from './options.js';
export type { ConnectionState, StateChange } from './state.js';
export { localStorageStorage, type StorageLike } from './storage/local.js';
export { memoryStorage } from './storage/memory.js';
export type { ClientState, Credentials, StateStore, StoredWebPush } from './storage/types.js';
export type { Connection, Transport, TransportHandlers } from './transport/types.js';
export { type WebSocketConstructor, type WebSocketLike, webSocketTransport } from './transport/websocket.js';
export type { WakeReport } from './wake.js';
export type { WakeTokenOptions } from './wake-token.js';
export type { PushSubscribeOptions, PushSubscriptionJSON, WebPushSubscription } from './webpush.js';
