export { StoreError, type StoreErrorCode } from './errors.js';
export { SqliteStore, type SqliteStoreOptions, type SqliteStoreStats } from './sqlite.js';
export type {
  DeviceRecord,
  NewEntry,
  PublishBatchItem,
  PublishRecord,
  PublishResult,
  Store,
  StoredEntry,
} from './types.js';
