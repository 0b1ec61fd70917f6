import {
  chmodSync,
  closeSync,
  copyFileSync,
  fsyncSync,
  openSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import Database from 'better-sqlite3';
import { StoreError } from './errors.js';
import { SCHEMA_VERSION } from './schema.js';

/**
 * Seqs a restored store skips on every stream. Devices that received messages after the backup was
 * taken present cursors past the restored heads; their SDK ignores any seq at or below its cursor,
 * so new messages must be numbered past every seq handed out since the backup. 2^32 is beyond what
 * one stream can receive between a backup and its restore, and leaves room for 2 million restores
 * below 2^53.
 */
export const RESTORE_SEQ_GAP = 2 ** 32;

/** Table a backup file carries besides the store's own: what the backup is, and the data dir's API key. */
const META = 'pushwire_backup';

/** What `backupSqlite` wrote, or `inspectBackup` found. */
export interface BackupInfo {
  /** Schema version of the store in the backup (`PRAGMA user_version`). */
  schemaVersion: number;
  /** When the backup was taken (ms since the epoch). */
  createdAt: number;
  bytes: number;
  /** Streams, devices and entries it holds. */
  counts: { devices: number; streams: number; entries: number };
  /** The data dir's admin API key, when the backup carries one. */
  apiKey?: string;
}

const count = (db: Database.Database, table: string): number =>
  db.prepare(`SELECT count(*) FROM ${table}`).pluck().get() as number;

/**
 * Copies the SQLite store at `dbPath` to `outPath` while a server may be writing to it: SQLite's
 * online backup API, in one step (one read transaction), so the copy is the store as of one commit:
 * every publish answered before the backup began is in it, and no half of a batch. Writers are not
 * blocked (WAL). The copy is written beside `outPath` and renamed over it once complete and synced;
 * it is readable by its owner only (it holds device token hashes, and `apiKey` when given).
 */
export async function backupSqlite(
  dbPath: string,
  outPath: string,
  opts: { apiKey?: string; now?: number } = {},
): Promise<BackupInfo> {
  statSync(dbPath); // a clear ENOENT instead of a new empty database
  const partial = `${outPath}.partial-${process.pid}`;
  const source = new Database(dbPath, { fileMustExist: true, timeout: 5000 });
  try {
    const createdAt = opts.now ?? Date.now();
    // Owner-only from the first byte (an empty file is an empty database to SQLite).
    writeFileSync(partial, '', { mode: 0o600 });
    chmodSync(partial, 0o600);
    // The first step only learns the size; the second copies every page at once.
    await source.backup(partial, { progress: () => 0x7fffffff });
    const copy = new Database(partial);
    let info: BackupInfo;
    try {
      copy.pragma('journal_mode = DELETE');
      const schemaVersion = copy.pragma('user_version', { simple: true }) as number;
      copy.exec(`CREATE TABLE ${META} (key TEXT PRIMARY KEY, value TEXT NOT NULL) STRICT`);
      const put = copy.prepare(`INSERT INTO ${META} (key, value) VALUES (?, ?)`);
      put.run('format', '1');
      put.run('created_at', String(createdAt));
      if (opts.apiKey !== undefined) put.run('api_key', opts.apiKey);
      info = {
        schemaVersion,
        createdAt,
        bytes: 0,
        counts: {
          devices: count(copy, 'devices'),
          streams: count(copy, 'streams'),
          entries: count(copy, 'entries'),
        },
        ...(opts.apiKey !== undefined && { apiKey: opts.apiKey }),
      };
    } finally {
      copy.close();
    }
    const fd = openSync(partial, 'r+');
    try {
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(partial, outPath);
    return { ...info, bytes: statSync(outPath).size };
  } catch (err) {
    rmSync(partial, { force: true });
    throw err;
  } finally {
    source.close();
  }
}

/** Opens a backup file read-only and checks it: a Pushwire store this server can open, intact. */
export function inspectBackup(path: string): BackupInfo {
  const db = openBackup(path, true);
  try {
    return describeBackup(db, path);
  } finally {
    db.close();
  }
}

function openBackup(path: string, readonly: boolean): Database.Database {
  let db: Database.Database;
  try {
    db = new Database(path, { readonly, fileMustExist: true });
    db.pragma('schema_version'); // reads the header: fails on a file that is not SQLite
  } catch (cause) {
    throw new StoreError('STORE_BACKUP', `${path} is not a SQLite database: ${(cause as Error).message}`);
  }
  return db;
}

function describeBackup(db: Database.Database, path: string): BackupInfo {
  const schemaVersion = db.pragma('user_version', { simple: true }) as number;
  const hasMeta = db.prepare(`SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?`).get(META);
  if (!hasMeta || schemaVersion < 1) {
    throw new StoreError('STORE_BACKUP', `${path} is not a Pushwire backup (made by pushwire backup)`);
  }
  if (schemaVersion > SCHEMA_VERSION) {
    throw new StoreError(
      'STORE_SCHEMA',
      `${path} holds schema version ${schemaVersion}, newer than this server's (${SCHEMA_VERSION}): restore it with a newer pushwire`,
    );
  }
  const check = db.pragma('quick_check', { simple: true });
  if (check !== 'ok') throw new StoreError('STORE_BACKUP', `${path} is damaged: ${String(check)}`);
  const meta = new Map(
    (db.prepare(`SELECT key, value FROM ${META}`).all() as { key: string; value: string }[]).map((r) => [
      r.key,
      r.value,
    ]),
  );
  const apiKey = meta.get('api_key');
  return {
    schemaVersion,
    createdAt: Number(meta.get('created_at') ?? 0),
    bytes: statSync(path).size,
    counts: {
      devices: count(db, 'devices'),
      streams: count(db, 'streams'),
      entries: count(db, 'entries'),
    },
    ...(apiKey !== undefined && { apiKey }),
  };
}

/**
 * Puts a backup in place as the store at `dbPath` (which must not exist, nor be in use: the caller
 * holds the data dir). The copy is checked, its backup table removed, and every stream's head moved
 * {@link RESTORE_SEQ_GAP} on: for each device's own stream, each topic a device follows, and each
 * stream with a head or entries. Messages in the backup keep their seqs; new ones are numbered past
 * anything a device may have received from the store after the backup.
 */
export function restoreSqlite(fromPath: string, dbPath: string): BackupInfo {
  inspectBackup(fromPath);
  const partial = `${dbPath}.restoring-${process.pid}`;
  copyFileSync(fromPath, partial);
  try {
    const db = openBackup(partial, false);
    let info: BackupInfo;
    try {
      info = describeBackup(db, fromPath);
      db.transaction(() => {
        db.exec(`DROP TABLE ${META}`);
        db.prepare(
          `WITH names (name) AS (
             SELECT 'd:' || id FROM devices
             UNION SELECT 't:' || topic FROM subscriptions
             UNION SELECT name FROM streams
             UNION SELECT DISTINCT stream FROM entries)
           INSERT INTO streams (name, head)
           SELECT name, max(
               coalesce((SELECT head FROM streams s WHERE s.name = names.name), 0),
               coalesce((SELECT max(seq) FROM entries e WHERE e.stream = names.name), 0)) + @gap
             FROM names WHERE true
           ON CONFLICT (name) DO UPDATE SET head = excluded.head`,
        ).run({ gap: RESTORE_SEQ_GAP });
      })();
      db.pragma('journal_mode = WAL');
    } finally {
      db.close();
    }
    const fd = openSync(partial, 'r+');
    try {
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(partial, dbPath);
    return info;
  } catch (err) {
    rmSync(partial, { force: true });
    throw err;
  }
}
