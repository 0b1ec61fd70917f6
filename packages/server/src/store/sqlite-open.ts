import { chmodSync, existsSync, mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';
import { StoreError, toStoreError } from './errors.js';
import { migrate } from './schema.js';

export interface SqliteStoreOptions {
  /** Database file (created when missing). A file, not `:memory:`: the writer thread opens it too. */
  path: string;
  /** Time source for publish records without entries; defaults to `Date.now`. */
  clock?: () => number;
  /** Longest a publish waits for companions before its batch commits; 0 = next macrotask. */
  batchMaxDelayMs?: number;
  /** A batch commits at once when it holds this many publishes (default 512). */
  batchMaxSize?: number;
  /**
   * Longest acks and last-seen times wait when nothing durable is queued (default 25 ms), so a
   * reconnect storm or an ack stream costs a few writer round trips instead of one per tick. A
   * crash loses at most this much of them: acked messages are delivered again (the SDK drops the
   * duplicates by seq) and last-seen times are a little older.
   */
  softWriteDelayMs?: number;
  /** How long publish ids are remembered for idempotency (default 30 days). */
  retentionMs?: number;
  /** Streams whose head is kept in memory (default 100 000); others are read back on demand. */
  headCacheSize?: number;
  /** Devices kept in memory for publish target checks and session auth (default 100 000). */
  deviceCacheSize?: number;
}

/**
 * Opens the store's (read) connection at `path`, creating and migrating the database as needed:
 * WAL, `synchronous = FULL`, files private to the service account.
 */
export function openDatabase(path: string): Database.Database {
  if (path === ':memory:' || path === '') {
    throw new StoreError('STORE_INVALID', 'the SQLite store needs a file: its writer thread opens it too');
  }
  let db: Database.Database | undefined;
  try {
    // Private to the service account: messages and device token hashes live here.
    mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
    db = new Database(path, { timeout: 5000 });
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = FULL');
    db.pragma('busy_timeout = 5000');
    db.pragma('foreign_keys = ON');
    migrate(db);
    for (const file of [path, `${path}-wal`, `${path}-shm`]) {
      if (existsSync(file)) chmodSync(file, 0o600);
    }
    return db;
  } catch (err) {
    db?.close();
    throw toStoreError(err, `cannot open store ${path}`);
  }
}

/** Runs `fn` (synchronous) in its own durable transaction on `db`; errors as store errors. */
export function durably<T>(db: Database.Database, fn: () => T): T {
  try {
    return db.transaction(fn)();
  } catch (err) {
    throw toStoreError(err, 'write failed');
  }
}
