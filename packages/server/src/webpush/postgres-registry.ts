/** Moved beside the store it lives in; re-exported here for the Web Push module's users. */
export { PostgresWebPushRegistry } from '../store/postgres-webpush.js';
