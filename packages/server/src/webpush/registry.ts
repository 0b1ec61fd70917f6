// The registry's contract belongs to the store layer (every engine keeps subscriptions); the Web
// Push service imports it from here as before.
export type { WebPushRegistry, WebPushSubscriptionRecord } from '../store/webpush-registry.js';
