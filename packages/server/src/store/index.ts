export { type Quota, QuotaError, StoreError, type StoreErrorCode } from './errors.js';
export {
  type PostgresConnectionOptions,
  type PostgresDurability,
  PostgresStore,
  type PostgresStoreOptions,
} from './postgres.js';
export { type DurabilityReport, RedisStore, type RedisStoreOptions } from './redis.js';
export { SqliteStore, type SqliteStoreOptions, type SqliteStoreStats } from './sqlite.js';
export type {
  DeviceRecord,
  EntryFate,
  NewEntry,
  PublishBatchItem,
  PublishLimits,
  PublishRecord,
  PublishResult,
  Store,
  StoredEntry,
} from './types.js';
export { maskedWakeToken, type WakeProvider, type WakeToken, type WakeTokenStore } from './wake-tokens.js';
