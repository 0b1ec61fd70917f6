/**
 * @packageDocumentation
 * Pushwire server: HTTP API, WebSocket gateway, delivery core and stores.
 */

export { DEMO_SUBSCRIBE, ensureDemoKey } from './api/demo.js';
export { newScopedKey } from './api/keys.js';
export * from './autopush/index.js';
export { LocalBus } from './bus/local.js';
export { PostgresBus, type PostgresBusOptions } from './bus/postgres.js';
export { RedisBus, type RedisBusOptions } from './bus/redis.js';
export type { Bus, BusSink, CatchUpScope, DeviceCommand } from './bus/types.js';
export type { ServerOptions } from './config.js';
export { HubError, type HubErrorCode } from './core/errors.js';
export type { Follower, FrameEncoder } from './core/follower.js';
export { Hub, type PublishOutcome, type PublishRequest, type Target } from './core/hub.js';
export { anyMatches, patternError, topicMatches } from './core/topic-patterns.js';
export { HttpError } from './errors.js';
export { createPushwireServer, type PushwireServer } from './server.js';
export * from './store/index.js';
export { newApiKey } from './util/ids.js';
export * from './wake/index.js';
export * from './webpush/index.js';
