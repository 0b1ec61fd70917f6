import type Database from 'better-sqlite3';
import { StoreError } from './errors.js';

/**
 * Schema migrations of the SQLite store: `MIGRATIONS[v]` brings `PRAGMA user_version` from v to
 * v + 1. Append only: a shipped migration is never edited.
 *
 * - `streams` keeps each stream's head, so heads never go back when a sweep deletes entries (the
 *   head of a stream is the higher of its `streams` row and its last entry).
 * - `entries` is keyed by (stream, seq): `read` is one range scan of that index. Collapsed entries
 *   keep their row (seq, prev_seq) until the sweep, with their payload freed.
 * - `publishes` remembers each publish id for idempotency, for the retention period.
 */
const MIGRATIONS: readonly (string | ((db: Database.Database) => void))[] = [
  `
  CREATE TABLE devices (
    id TEXT PRIMARY KEY,
    token_hash TEXT NOT NULL,
    user TEXT,
    created_at INTEGER NOT NULL,
    last_seen INTEGER NOT NULL DEFAULT 0
  ) STRICT;
  CREATE INDEX devices_by_user ON devices (user) WHERE user IS NOT NULL;

  CREATE TABLE streams (
    name TEXT PRIMARY KEY,
    head INTEGER NOT NULL
  ) STRICT, WITHOUT ROWID;

  CREATE TABLE entries (
    stream TEXT NOT NULL,
    seq INTEGER NOT NULL,
    prev_seq INTEGER NOT NULL,
    id TEXT NOT NULL,
    data TEXT,
    notification TEXT,
    urgency TEXT,
    collapse_key TEXT,
    ts INTEGER NOT NULL,
    exp INTEGER NOT NULL,
    collapsed INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (stream, seq)
  ) STRICT;
  CREATE INDEX entries_by_exp ON entries (exp);
  CREATE INDEX entries_by_collapse_key ON entries (stream, collapse_key) WHERE collapse_key IS NOT NULL;
  CREATE INDEX entries_collapsed ON entries (collapsed) WHERE collapsed = 1;

  CREATE TABLE publishes (
    id TEXT PRIMARY KEY,
    entries TEXT NOT NULL,
    ts INTEGER NOT NULL,
    exp INTEGER NOT NULL
  ) STRICT;
  CREATE INDEX publishes_by_ts ON publishes (ts);

  CREATE TABLE subscriptions (
    device_id TEXT NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    topic TEXT NOT NULL,
    PRIMARY KEY (device_id, topic)
  ) STRICT, WITHOUT ROWID;

  CREATE TABLE cursors (
    device_id TEXT NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    stream TEXT NOT NULL,
    seq INTEGER NOT NULL,
    PRIMARY KEY (device_id, stream)
  ) STRICT, WITHOUT ROWID;
  `,
  // 2: delivery status: when a device acknowledged each entry of its own stream. Kept as long as
  // publish records (the entry itself goes at the next sweep once acknowledged). Rows are appended
  // in time order, so the sweep deletes a rowid prefix and needs no index on the time.
  `
  CREATE TABLE deliveries (
    device_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    acked_at INTEGER NOT NULL
  ) STRICT;
  CREATE UNIQUE INDEX deliveries_by_entry ON deliveries (device_id, seq);
  `,
  // 3: quotas: whether anyone follows a topic (short retention for unfollowed topics), and how
  // many topics a device follows (its primary key) or devices a user has (devices_by_user).
  `
  CREATE INDEX IF NOT EXISTS subscriptions_by_topic ON subscriptions (topic);
  `,
  // 4: access control. `devices.subscribe`: JSON array of the topic patterns a device may follow
  // (NULL: any topic, a device registered with an admin key). `api_keys`: scoped keys, stored as
  // the SHA-256 of the key (see sqlite-keys.ts); revoked keys keep their row (listed, refused).
  // A function, so that it can be run again on a database that has it (SQLite has no
  // `ADD COLUMN IF NOT EXISTS`).
  (db) => {
    const columns = db.pragma('table_info(devices)') as { name: string }[];
    if (!columns.some((c) => c.name === 'subscribe'))
      db.exec('ALTER TABLE devices ADD COLUMN subscribe TEXT');
    db.exec(`
      CREATE TABLE IF NOT EXISTS api_keys (
        id TEXT PRIMARY KEY,
        hash TEXT NOT NULL UNIQUE,
        record TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        last_used INTEGER,
        revoked_at INTEGER
      ) STRICT;
    `);
  },
  // 5: a device's Web Push subscriptions go with it (the table, created on first use until now,
  // is created here so that the writer can delete them in the device's transaction; those of
  // devices deleted before are purged). `devices.key_id`: the `register` key that created the
  // device (NULL: an admin key); `register_keys.devices`: how many such devices are alive, kept
  // with each insert and delete (a count(*) would scan every device of the key per registration).
  (db) => {
    db.exec(`
      CREATE TABLE IF NOT EXISTS webpush_subscriptions (
        id TEXT PRIMARY KEY,
        device_id TEXT NOT NULL,
        capability_hash TEXT NOT NULL UNIQUE,
        application_server_key TEXT,
        topic_key TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        revoked_at INTEGER
      ) STRICT;
      CREATE INDEX IF NOT EXISTS webpush_subscriptions_by_device ON webpush_subscriptions (device_id);
      DELETE FROM webpush_subscriptions WHERE device_id NOT IN (SELECT id FROM devices);
    `);
    const columns = db.pragma('table_info(devices)') as { name: string }[];
    if (!columns.some((c) => c.name === 'key_id')) db.exec('ALTER TABLE devices ADD COLUMN key_id TEXT');
    db.exec(`
      CREATE TABLE IF NOT EXISTS register_keys (
        key_id TEXT PRIMARY KEY,
        devices INTEGER NOT NULL
      ) STRICT, WITHOUT ROWID;
    `);
  },
];

/** Schema version this code writes. */
export const SCHEMA_VERSION = MIGRATIONS.length;

/**
 * Brings the database to {@link SCHEMA_VERSION} (or to `target`: tests build the databases earlier
 * releases wrote), one transaction per step.
 */
export function migrate(db: Database.Database, target = SCHEMA_VERSION): void {
  const current = db.pragma('user_version', { simple: true }) as number;
  if (current > SCHEMA_VERSION) {
    throw new StoreError(
      'STORE_SCHEMA',
      `database schema version ${current} is newer than this server's (${SCHEMA_VERSION})`,
    );
  }
  for (let version = current; version < Math.min(target, SCHEMA_VERSION); version++) {
    db.transaction(() => {
      const step = MIGRATIONS[version]!;
      if (typeof step === 'string') db.exec(step);
      else step(db);
      db.pragma(`user_version = ${version + 1}`);
    })();
  }
}

/** A row of `entries`, as read and written. */
export interface EntryRow {
  stream: string;
  seq: number;
  prev_seq: number;
  id: string;
  data: string | null;
  notification: string | null;
  urgency: string | null;
  collapse_key: string | null;
  ts: number;
  exp: number;
}

export interface DeviceRow {
  id: string;
  token_hash: string;
  user: string | null;
  created_at: number;
  last_seen: number;
  /** JSON array of topic patterns; null: any topic. */
  subscribe: string | null;
  /** Id of the `register` key that created the device; null: an admin key. */
  key_id: string | null;
}

export interface PublishRow {
  id: string;
  entries: string;
  ts: number;
  exp: number;
}

const ENTRY_COLUMNS = 'stream, seq, prev_seq, id, data, notification, urgency, collapse_key, ts, exp';
/** Deliverable: not collapsed, not expired, and not a "deliver only to sessions online now" entry. */
const DELIVERABLE = 'collapsed = 0 AND exp > @now AND exp > ts';

/**
 * Every statement the store runs, prepared once.
 * @internal (better-sqlite3's statement types cannot be named in declaration files)
 */
export function prepareStatements(db: Database.Database) {
  const s = <P extends unknown[] | object = unknown[], R = unknown>(sql: string) => db.prepare<P, R>(sql);
  return {
    insertDevice: s<[DeviceRow]>(
      `INSERT INTO devices (id, token_hash, user, created_at, last_seen, subscribe, key_id)
        VALUES (@id, @token_hash, @user, @created_at, @last_seen, @subscribe, @key_id)`,
    ),
    getDevice: s<[string], DeviceRow>('SELECT * FROM devices WHERE id = ?'),
    deleteDevice: s<[string]>('DELETE FROM devices WHERE id = ?'),
    deleteDeviceWebPush: s<[string]>('DELETE FROM webpush_subscriptions WHERE device_id = ?'),
    /** Counts one more device of a register key; answers the new count. */
    countKeyDevice: s<[string], number>(
      `INSERT INTO register_keys (key_id, devices) VALUES (?, 1)
        ON CONFLICT (key_id) DO UPDATE SET devices = devices + 1 RETURNING devices`,
    ).pluck(),
    /** Counts one device less for the register key that created it (if any); before it is deleted. */
    uncountKeyDevice: s<[string]>(
      `UPDATE register_keys SET devices = devices - 1
        WHERE key_id = (SELECT key_id FROM devices WHERE id = ?)`,
    ),
    devicesOfUser: s<[string], string>(
      'SELECT id FROM devices WHERE user = ? ORDER BY created_at, id',
    ).pluck(),
    touchDevice: s<[number, string]>('UPDATE devices SET last_seen = ? WHERE id = ?'),
    countUserDevices: s<[string], number>('SELECT count(*) FROM devices WHERE user = ?').pluck(),
    countTopics: s<[string], number>('SELECT count(*) FROM subscriptions WHERE device_id = ?').pluck(),
    isFollowed: s<[string], number>('SELECT 1 FROM subscriptions WHERE topic = ? LIMIT 1').pluck(),
    /** Entries a stream stores after a seq, whatever their state (an index-only count). */
    storedAfter: s<[string, number], number>(
      'SELECT count(*) FROM entries WHERE stream = ? AND seq > ?',
    ).pluck(),
    /** Payload bytes (JSON as stored) of a stream's entries after a seq. */
    bytesAfter: s<[string, number], number>(
      `SELECT total(length(CAST(data AS BLOB))) + total(length(CAST(notification AS BLOB)))
        FROM entries WHERE stream = ? AND seq > ?`,
    ).pluck(),

    headOf: s<[{ stream: string }], number | null>(
      `SELECT max(h) FROM (SELECT head AS h FROM streams WHERE name = @stream
        UNION ALL SELECT max(seq) AS h FROM entries WHERE stream = @stream)`,
    ).pluck(),
    setHead: s<[string, number]>(
      'INSERT INTO streams (name, head) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET head = max(head, excluded.head)',
    ),
    /**
     * Heads are not written per publish (the entries carry them): the sweep keeps every stream's
     * head here before it deletes entries, so heads never go back.
     */
    saveHeads: s<[]>(
      `INSERT INTO streams (name, head) SELECT stream, max(seq) FROM entries WHERE true GROUP BY stream
        ON CONFLICT (name) DO UPDATE SET head = max(head, excluded.head)`,
    ),

    insertEntry: s<[EntryRow]>(
      `INSERT INTO entries (${ENTRY_COLUMNS}) VALUES
        (@stream, @seq, @prev_seq, @id, @data, @notification, @urgency, @collapse_key, @ts, @exp)`,
    ),
    /** insertEntry with positional parameters: (stream, seq, prev_seq, id, data, notification, urgency, collapse_key, ts, exp). */
    appendEntry: s<
      [string, number, number, unknown, unknown, unknown, unknown, string | null, unknown, unknown]
    >(`INSERT INTO entries (${ENTRY_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`),
    collapse: s<[string, string]>(
      `UPDATE entries SET collapsed = 1, data = NULL, notification = NULL
        WHERE stream = ? AND collapse_key = ? AND collapsed = 0`,
    ),
    read: s<[{ stream: string; after: number; now: number; limit: number }], EntryRow>(
      `SELECT ${ENTRY_COLUMNS} FROM entries
        WHERE stream = @stream AND seq > @after AND ${DELIVERABLE} ORDER BY seq LIMIT @limit`,
    ),
    countAfter: s<[{ stream: string; after: number; now: number }], number>(
      `SELECT count(*) FROM entries WHERE stream = @stream AND seq > @after AND ${DELIVERABLE}`,
    ).pluck(),
    deleteStreamEntries: s<[string]>('DELETE FROM entries WHERE stream = ?'),

    getPublish: s<[string], PublishRow>('SELECT id, entries, ts, exp FROM publishes WHERE id = ?'),
    deletePublish: s<[string]>('DELETE FROM publishes WHERE id = ?'),
    insertPublish: s<[PublishRow]>(
      'INSERT INTO publishes (id, entries, ts, exp) VALUES (@id, @entries, @ts, @exp)',
    ),

    isSubscribed: s<[string, string], number>(
      'SELECT 1 FROM subscriptions WHERE device_id = ? AND topic = ?',
    ).pluck(),
    subscribe: s<[string, string]>('INSERT INTO subscriptions (device_id, topic) VALUES (?, ?)'),
    unsubscribe: s<[string, string]>('DELETE FROM subscriptions WHERE device_id = ? AND topic = ?'),
    topicsOf: s<[string], string>(
      'SELECT topic FROM subscriptions WHERE device_id = ? ORDER BY topic',
    ).pluck(),
    subscriberCount: s<[string], number>('SELECT count(*) FROM subscriptions WHERE topic = ?').pluck(),

    cursorsOf: s<[string], { stream: string; seq: number }>(
      'SELECT stream, seq FROM cursors WHERE device_id = ?',
    ),
    cursorOf: s<[string, string], number>(
      'SELECT seq FROM cursors WHERE device_id = ? AND stream = ?',
    ).pluck(),
    setCursor: s<[string, string, number]>(
      `INSERT INTO cursors (device_id, stream, seq) VALUES (?, ?, ?)
        ON CONFLICT (device_id, stream) DO UPDATE SET seq = excluded.seq`,
    ),
    /** Moves a cursor forward only; ignores devices that no longer exist. */
    ackCursor: s<[{ device: string; stream: string; seq: number }]>(
      `INSERT INTO cursors (device_id, stream, seq)
        SELECT @device, @stream, @seq WHERE EXISTS (SELECT 1 FROM devices WHERE id = @device)
        ON CONFLICT (device_id, stream) DO UPDATE SET seq = max(seq, excluded.seq)`,
    ),
    deleteCursor: s<[string, string]>('DELETE FROM cursors WHERE device_id = ? AND stream = ?'),

    sweepExpired: s<[number]>('DELETE FROM entries WHERE exp <= ?'),
    sweepCollapsed: s<[]>('DELETE FROM entries WHERE collapsed = 1'),
    deviceCursors: s<[], { stream: string; seq: number }>(
      `SELECT stream, seq FROM cursors WHERE stream = 'd:' || device_id`,
    ),
    sweepAcked: s<[string, number]>('DELETE FROM entries WHERE stream = ? AND seq <= ?'),
    sweepPublishes: s<[number]>('DELETE FROM publishes WHERE ts < ?'),
  };
}

/** @internal */
export type Statements = ReturnType<typeof prepareStatements>;
