export { type PushRequestHeaders, parsePushHeaders } from './headers.js';
export { PostgresWebPushRegistry } from './postgres-registry.js';
export type { WebPushRegistry, WebPushSubscriptionRecord } from './registry.js';
export { MAX_PUSH_BODY, registerWebPush, type WebPushOptions } from './routes.js';
export { SqliteWebPushRegistry } from './sqlite-registry.js';
export {
  parseVapidHeaders,
  type VapidCredentials,
  VapidError,
  type VapidErrorCode,
  type VapidExpectation,
  type VapidIdentity,
  verifyVapid,
} from './vapid.js';
