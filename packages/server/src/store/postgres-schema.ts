import type pg from 'pg';
import { StoreError } from './errors.js';

/**
 * Schema migrations of the PostgreSQL store: `MIGRATIONS[v]` brings `schema_version` from v to
 * v + 1. Append only: a shipped migration is never edited. Every table lives in the store's own
 * schema (`search_path`), so names carry no prefix.
 *
 * - `streams` keeps each stream's head. Appending takes the row's lock (`INSERT … ON CONFLICT DO
 *   UPDATE SET head = head + 1`) until COMMIT, so the seqs of one stream are handed out one
 *   transaction at a time: gap-free and committed in order. Sweeps never touch it.
 * - `entries` is keyed by (stream, seq): `read` is one range scan. Collapsed entries keep their row,
 *   payload freed, until the sweep.
 * - `publishes` remembers each publish id for idempotency during the retention; inserted in the
 *   transaction that appends the entries, so a publish is all or nothing.
 * - `deliveries`: when a device acknowledged each entry of its own stream (delivery status), kept
 *   as long as publish records.
 * - `wake_tokens` and `webpush_subscriptions`: the APNs/FCM tokens and Web Push registry.
 * - `presence`: which node holds each device's session, for the LISTEN/NOTIFY bus (expiring by
 *   the server's clock).
 */
const MIGRATIONS: readonly string[] = [
  `
  CREATE TABLE devices (
    id text PRIMARY KEY,
    token_hash text NOT NULL,
    "user" text,
    created_at bigint NOT NULL,
    last_seen bigint NOT NULL DEFAULT 0
  );
  CREATE INDEX devices_by_user ON devices ("user", created_at, id) WHERE "user" IS NOT NULL;

  CREATE TABLE streams (
    name text PRIMARY KEY,
    head bigint NOT NULL
  );

  CREATE TABLE entries (
    stream text NOT NULL,
    seq bigint NOT NULL,
    id text NOT NULL,
    data text,
    notification text,
    urgency text,
    collapse_key text,
    ts bigint NOT NULL,
    exp bigint NOT NULL,
    collapsed boolean NOT NULL DEFAULT false,
    PRIMARY KEY (stream, seq)
  );
  CREATE INDEX entries_by_exp ON entries (exp);
  CREATE INDEX entries_by_collapse_key ON entries (stream, collapse_key)
    WHERE collapse_key IS NOT NULL AND NOT collapsed;
  CREATE INDEX entries_collapsed ON entries (stream) WHERE collapsed;

  CREATE TABLE publishes (
    id text PRIMARY KEY,
    entries text NOT NULL,
    ts bigint NOT NULL,
    exp bigint NOT NULL
  );
  CREATE INDEX publishes_by_ts ON publishes (ts);

  CREATE TABLE subscriptions (
    device_id text NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    topic text NOT NULL,
    PRIMARY KEY (device_id, topic)
  );
  CREATE INDEX subscriptions_by_topic ON subscriptions (topic);

  CREATE TABLE cursors (
    device_id text NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    stream text NOT NULL,
    seq bigint NOT NULL,
    PRIMARY KEY (device_id, stream)
  );

  CREATE TABLE deliveries (
    device_id text NOT NULL,
    seq bigint NOT NULL,
    acked_at bigint NOT NULL,
    PRIMARY KEY (device_id, seq)
  );
  CREATE INDEX deliveries_by_time ON deliveries (acked_at);

  CREATE TABLE wake_tokens (
    device_id text PRIMARY KEY REFERENCES devices (id) ON DELETE CASCADE,
    provider text NOT NULL,
    token text NOT NULL,
    topic text,
    environment text,
    updated_at bigint NOT NULL
  );

  CREATE TABLE webpush_subscriptions (
    id text PRIMARY KEY,
    device_id text NOT NULL,
    capability_hash text NOT NULL UNIQUE,
    application_server_key text,
    topic_key text NOT NULL,
    created_at bigint NOT NULL,
    revoked_at bigint
  );
  CREATE INDEX webpush_subscriptions_by_device ON webpush_subscriptions (device_id, created_at, id);
  CREATE INDEX webpush_subscriptions_revoked ON webpush_subscriptions (revoked_at) WHERE revoked_at IS NOT NULL;

  CREATE TABLE presence (
    device_id text PRIMARY KEY,
    node text NOT NULL,
    session text NOT NULL,
    expires_at timestamptz NOT NULL
  );
  CREATE INDEX presence_by_node ON presence (node);
  `,
  // 2: scoped API keys (only their SHA-256), and the subscribe patterns a device registered with a
  // `register` key may follow.
  `
  ALTER TABLE devices ADD COLUMN subscribe text;
  CREATE TABLE api_keys (
    id text PRIMARY KEY,
    hash text NOT NULL UNIQUE,
    record text NOT NULL,
    created_at bigint NOT NULL,
    last_used bigint,
    revoked_at bigint
  );
  `,
  // 3: a device's Web Push subscriptions go with it (those of devices deleted before are purged
  // here). `devices.key_id`: the `register` key that created a device (NULL: an admin key);
  // `register_keys.devices`: how many such devices are alive, kept with each insert and delete.
  `
  DELETE FROM webpush_subscriptions WHERE device_id NOT IN (SELECT id FROM devices);
  ALTER TABLE devices ADD COLUMN key_id text;
  CREATE TABLE register_keys (
    key_id text PRIMARY KEY,
    devices bigint NOT NULL
  );
  `,
];

/** Schema version this code writes. */
export const PG_SCHEMA_VERSION = MIGRATIONS.length;

/**
 * Creates the schema when missing and brings it to {@link PG_SCHEMA_VERSION}, one transaction per
 * step, under an advisory lock: nodes of a cluster starting together migrate once.
 */
export async function migratePostgres(pool: pg.Pool, schema: string): Promise<void> {
  const client = await pool.connect();
  try {
    await client.query('BEGIN');
    await client.query('SELECT pg_advisory_xact_lock(hashtextextended($1, 0))', [
      `pushwire-migrate:${schema}`,
    ]);
    await client.query(`CREATE SCHEMA IF NOT EXISTS ${schema}`);
    await client.query('CREATE TABLE IF NOT EXISTS schema_version (version integer NOT NULL)');
    const row = (await client.query<{ version: number }>('SELECT version FROM schema_version')).rows[0];
    let current = row?.version ?? 0;
    if (row === undefined) await client.query('INSERT INTO schema_version VALUES (0)');
    if (current > PG_SCHEMA_VERSION) {
      throw new StoreError(
        'STORE_SCHEMA',
        `database schema version ${current} is newer than this server's (${PG_SCHEMA_VERSION})`,
      );
    }
    for (; current < PG_SCHEMA_VERSION; current++) {
      await client.query(MIGRATIONS[current]!);
      await client.query('UPDATE schema_version SET version = $1', [current + 1]);
    }
    await client.query('COMMIT');
  } catch (err) {
    await client.query('ROLLBACK').catch(() => {});
    throw err;
  } finally {
    client.release();
  }
}
