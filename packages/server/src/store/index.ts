export { type ApiKeyRecord, type ApiKeyStore, SCOPES, type Scope } from './api-keys.js';
export { type Quota, QuotaError, StoreError, type StoreErrorCode } from './errors.js';
export {
  type PostgresConnectionOptions,
  type PostgresDurability,
  PostgresStore,
  type PostgresStoreOptions,
} from './postgres.js';
export { PostgresWebPushRegistry } from './postgres-webpush.js';
export { type DurabilityReport, RedisStore, type RedisStoreOptions } from './redis.js';
export { RedisWebPushRegistry } from './redis-webpush.js';
export { SqliteStore, type SqliteStoreOptions, type SqliteStoreStats } from './sqlite.js';
export {
  type BackupInfo,
  backupSqlite,
  inspectBackup,
  RESTORE_SEQ_GAP,
  restoreSqlite,
} from './sqlite-backup.js';
export { SqliteWebPushRegistry } from './sqlite-webpush.js';
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
  StoreStats,
} from './types.js';
export { maskedWakeToken, type WakeProvider, type WakeToken, type WakeTokenStore } from './wake-tokens.js';
