/**
 * @packageDocumentation
 * Pushwire server: HTTP API, WebSocket gateway, delivery core and stores.
 */

export { LocalBus } from './bus/local.js';
export { PostgresBus, type PostgresBusOptions } from './bus/postgres.js';
export { RedisBus, type RedisBusOptions } from './bus/redis.js';
export type { Bus, BusSink, CatchUpScope, DeviceCommand } from './bus/types.js';
export type { ServerOptions } from './config.js';
export { Hub, type PublishOutcome, type PublishRequest, type Target } from './core/hub.js';
export { HttpError } from './errors.js';
export { createPushwireServer, type PushwireServer } from './server.js';
export * from './store/index.js';
export { newApiKey } from './util/ids.js';
export * from './wake/index.js';
export * from './webpush/index.js';
