/** Moved beside the store it lives in; re-exported here for the Web Push module's users. */
export { SqliteWebPushRegistry } from '../store/sqlite-webpush.js';
