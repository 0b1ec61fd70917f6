import { deviceOfStream, deviceStream, topicStream } from '@pushwire/protocol';
import type pg from 'pg';
import { StoreError } from './errors.js';
import { PostgresAcks } from './postgres-acks.js';
import {
  createPool,
  durabilityOf,
  type PostgresConnectionOptions,
  type PostgresDurability,
  redactUrl,
  schemaOf,
  toPostgresStoreError,
  transaction,
} from './postgres-conn.js';
import { fateOf } from './postgres-delivery.js';
import { PostgresApiKeys } from './postgres-keys.js';
import { PostgresRunner } from './postgres-runner.js';
import { migratePostgres } from './postgres-schema.js';
import { PostgresWakeTokens } from './postgres-wake.js';
import { PostgresWebPushRegistry } from './postgres-webpush.js';
import { PostgresWriter } from './postgres-writer.js';
import {
  DEVICE_COLUMNS,
  deleteDeviceRows,
  insertDevices,
  subscribeDevice,
  sweepEntries,
} from './postgres-writes.js';
import { fromEntryRow, fromPublishRow, toDevice, toEntryRow } from './rows.js';
import type { DeviceRow, EntryRow, PublishRow } from './schema.js';
import type {
  DeviceLimits,
  DeviceRecord,
  EntryFate,
  PublishBatchItem,
  PublishRecord,
  PublishResult,
  Store,
  StoredEntry,
} from './types.js';

export type { PostgresConnectionOptions, PostgresDurability } from './postgres-conn.js';

export interface PostgresStoreOptions extends PostgresConnectionOptions {
  /** Time source for publish records without entries; defaults to `Date.now`. */
  clock?: () => number;
  /** How long publish ids are remembered for idempotency (default 30 days). */
  retentionMs?: number;
}

const DAY_MS = 24 * 60 * 60 * 1000;
const ENTRY_COLUMNS =
  'stream, seq, seq - 1 AS prev_seq, id, data, notification, urgency, collapse_key, ts, exp';
/** Deliverable: not collapsed, not expired, and not a "deliver only to sessions online now" entry. */
const DELIVERABLE = 'NOT collapsed AND exp > $3 AND exp > ts';

/**
 * The store on PostgreSQL: every node of a cluster shares one database (one schema of it).
 *
 * Seqs: each stream has a row in `streams` holding its head. Publishes are group-committed (see
 * postgres-writer.ts): a batch locks the rows of every stream it appends to, in name order (no
 * deadlock between batches, on this node or others), reads their heads, assigns seqs in batch
 * order and writes entries, publish records and new heads in a fixed number of statements, then
 * commits: one fsync for the batch. The locks are held until COMMIT, so appends to one stream are
 * committed one batch at a time, gap-free (a rolled-back batch gives its seqs back) and in seq
 * order: a reader never sees seq n + 1 before n. A publish and its record are all or nothing. A
 * concurrent publish with the same id (another node) waits on the record's key and, once the
 * first commits, is answered the first record (idempotency); its batch runs again without it.
 *
 * Durability: `publish` resolves after COMMIT returned. With the default `synchronous_commit = on`
 * (and `fsync = on`), that is after the WAL flush: a crash of PostgreSQL loses no acknowledged
 * publish. See {@link PostgresStore.checkDurability}.
 *
 * Acks and last-seen times are coalesced (one statement for all that arrive while one write is in
 * flight) and committed without waiting for the WAL flush: a crash may lose the last few, so a
 * device may be sent those messages again (the SDK drops them by seq and id), and last-seen
 * times are a little older. Reads issued meanwhile see them.
 *
 * Failures: while PostgreSQL cannot be reached, operations reject with `STORE_UNAVAILABLE` (HTTP
 * 503); the pool connects again on the next operation. A publish that failed so may or may not
 * have committed: retrying it with its id is safe.
 *
 * @example
 * const store = await PostgresStore.connect({ url: 'postgres://pushwire@db/pushwire' });
 * console.log((await store.checkDurability()).note);
 * const { record } = await store.publish({ id, entries });
 * await store.close();
 */
export class PostgresStore implements Store {
  private readonly clock: () => number;
  private readonly retentionMs: number;
  private readonly runner: PostgresRunner;
  private readonly acks: PostgresAcks;
  private readonly writer: PostgresWriter;
  /** The schema holding the tables. */
  readonly schema: string;
  readonly wakeTokens: PostgresWakeTokens;
  readonly apiKeys: PostgresApiKeys;
  /** Web Push subscriptions, in this database (`webpush_subscriptions`). */
  readonly webPushRegistry: PostgresWebPushRegistry = PostgresWebPushRegistry.onStore(this);

  private constructor(
    private readonly pool: pg.Pool,
    opts: PostgresStoreOptions,
  ) {
    this.schema = schemaOf(opts);
    this.runner = new PostgresRunner(pool);
    this.clock = opts.clock ?? Date.now;
    this.retentionMs = Math.max(1, Math.floor(opts.retentionMs ?? 30 * DAY_MS));
    this.acks = new PostgresAcks(
      (fn) => this.run('ack', () => transaction(this.pool, fn, { durable: false })),
      this.clock,
    );
    this.wakeTokens = new PostgresWakeTokens(pool, (what, op) => this.run(what, op));
    this.apiKeys = new PostgresApiKeys(pool, (what, op) => this.run(what, op));
    this.writer = new PostgresWriter(pool, async (id) => {
      const record = await this.getPublishRow(id);
      if (!record) throw new StoreError('STORE_IO', `publish ${id}: record vanished`);
      return { record, duplicate: true, appended: [] };
    });
  }

  /**
   * Connects, creates the schema or migrates it; rejects with `STORE_UNAVAILABLE` when the server
   * cannot be reached, `STORE_SCHEMA` when the database is newer than this code.
   */
  static async connect(opts: PostgresStoreOptions): Promise<PostgresStore> {
    const schema = schemaOf(opts);
    const pool = createPool(opts);
    try {
      await migratePostgres(pool, schema);
    } catch (err) {
      await pool.end().catch(() => {});
      throw toPostgresStoreError(err, `cannot use PostgreSQL at ${redactUrl(opts.url)}`);
    }
    return new PostgresStore(pool, opts);
  }

  /** False after an operation found the server unreachable, until one succeeds again (readiness). */
  get connected(): boolean {
    return this.runner.reachable;
  }

  /** What a crash of PostgreSQL would lose with the server's settings. */
  checkDurability(): Promise<PostgresDurability> {
    return this.run('durability check', () => durabilityOf(this.pool));
  }

  /**
   * Runs one statement on the store's pool (autocommit: durable when it resolves), for modules that
   * keep their own tables in the store's schema (Web Push registry). Returns the rows.
   */
  query<R = Record<string, unknown>>(what: string, sql: string, params: unknown[] = []): Promise<R[]> {
    return this.run(what, async () => (await this.pool.query(sql, params)).rows as R[]);
  }

  createDevice(device: DeviceRecord, limits?: DeviceLimits): Promise<void> {
    return this.createDevices([device], limits);
  }

  /**
   * Registers devices in one transaction. The devices-per-user bound is checked under a
   * transaction-level advisory lock per user, so concurrent registrations never pass it.
   */
  createDevices(devices: DeviceRecord[], limits?: DeviceLimits): Promise<void> {
    return this.run('createDevice', () =>
      transaction(this.pool, (client) => insertDevices(client, devices, limits)),
    );
  }

  getDevice(id: string): Promise<DeviceRecord | undefined> {
    return this.run('getDevice', async () => {
      const row = (
        await this.pool.query<DeviceRow>(`SELECT ${DEVICE_COLUMNS} FROM devices WHERE id = $1`, [id])
      ).rows[0];
      return row && toDevice(row, undefined);
    });
  }

  /**
   * Deletes the device, its Web Push subscriptions and its stream's entries, and counts it off its
   * register key, in one transaction (postgres-writes.ts); the head stays.
   */
  deleteDevice(id: string): Promise<void> {
    this.acks.forget(id);
    return this.run('deleteDevice', () => transaction(this.pool, (client) => deleteDeviceRows(client, id)));
  }

  /** Token rotation: one autocommitted update; false when there is no such device. */
  setDeviceToken(id: string, tokenHash: string): Promise<boolean> {
    return this.run('setDeviceToken', async () => {
      const r = await this.pool.query('UPDATE devices SET token_hash = $1 WHERE id = $2', [tokenHash, id]);
      return (r.rowCount ?? 0) > 0;
    });
  }

  devicesOfUser(user: string): Promise<string[]> {
    return this.run('devicesOfUser', async () =>
      (
        await this.pool.query<{ id: string }>(
          'SELECT id FROM devices WHERE "user" = $1 ORDER BY created_at, id',
          [user],
        )
      ).rows.map((r) => r.id),
    );
  }

  touchDevice(id: string, lastSeen: number): Promise<void> {
    this.assertOpen();
    return this.acks.touch(id, lastSeen);
  }

  /**
   * Locks the device's row (so concurrent subscribes of one device count topics one at a time),
   * then sets the cursor at the topic's committed head: an append not yet committed gets a later
   * seq, so it is delivered, never skipped.
   */
  subscribe(deviceId: string, topic: string, limits?: { maxTopics?: number }): Promise<number> {
    const stream = topicStream(topic);
    return this.run('subscribe', async () => {
      const { cursor, existing } = await transaction(this.pool, (client) =>
        subscribeDevice(client, deviceId, topic, limits?.maxTopics),
      );
      // Acks not yet written count for a topic followed before (a new subscription starts at the head).
      return existing ? Math.max(cursor, this.acks.pendingCursor(deviceId, stream)) : cursor;
    });
  }

  /** Devices following the topic now. */
  subscriberCount(topic: string): Promise<number> {
    return this.run('subscriberCount', async () =>
      Number(
        (
          await this.pool.query<{ n: string }>('SELECT count(*) AS n FROM subscriptions WHERE topic = $1', [
            topic,
          ])
        ).rows[0]!.n,
      ),
    );
  }

  unsubscribe(deviceId: string, topic: string): Promise<void> {
    const stream = topicStream(topic);
    this.acks.forget(deviceId, stream);
    return this.run('unsubscribe', () =>
      transaction(this.pool, async (client) => {
        await client.query('DELETE FROM subscriptions WHERE device_id = $1 AND topic = $2', [
          deviceId,
          topic,
        ]);
        await client.query('DELETE FROM cursors WHERE device_id = $1 AND stream = $2', [deviceId, stream]);
      }),
    );
  }

  topicsOf(deviceId: string): Promise<string[]> {
    return this.run('topicsOf', async () =>
      (
        await this.pool.query<{ topic: string }>(
          'SELECT topic FROM subscriptions WHERE device_id = $1 ORDER BY topic COLLATE "C"',
          [deviceId],
        )
      ).rows.map((r) => r.topic),
    );
  }

  ack(deviceId: string, cursors: Record<string, number>): Promise<void> {
    this.assertOpen();
    const entries = Object.entries(cursors);
    for (const [stream, seq] of entries) {
      if (!Number.isSafeInteger(seq) || seq < 0) {
        return Promise.reject(
          new StoreError('STORE_INVALID', `ack of ${stream} is not a sequence number: ${seq}`),
        );
      }
    }
    if (entries.length === 0) return Promise.resolve();
    return this.acks.ack(deviceId, entries);
  }

  cursorsOf(deviceId: string): Promise<Record<string, number>> {
    return this.run('cursorsOf', async () => {
      const pending = this.acks.pendingCursors(deviceId);
      const rows = (
        await this.pool.query<{ stream: string; seq: number }>(
          'SELECT stream, seq FROM cursors WHERE device_id = $1',
          [deviceId],
        )
      ).rows;
      const cursors: Record<string, number> = {};
      for (const r of rows) cursors[r.stream] = r.seq;
      for (const [stream, seq] of pending) cursors[stream] = Math.max(cursors[stream] ?? 0, seq);
      return cursors;
    });
  }

  pendingCount(deviceId: string, now: number): Promise<number> {
    return this.run('pendingCount', async () => {
      const [cursors, topics] = await Promise.all([this.cursorsOf(deviceId), this.topicsOf(deviceId)]);
      const streams = [deviceStream(deviceId), ...topics.map(topicStream)];
      const after = streams.map((s) => cursors[s] ?? 0);
      const r = await this.pool.query<{ n: number }>(
        `SELECT count(*) AS n FROM unnest($1::text[], $2::bigint[]) AS c(stream, after)
         JOIN entries e ON e.stream = c.stream AND e.seq > c.after
         WHERE NOT e.collapsed AND e.exp > $3 AND e.exp > e.ts`,
        [streams, after, now],
      );
      return r.rows[0]!.n;
    });
  }

  /**
   * Queues the publish for the next batch, in call order: the batch looks its id up, caps the
   * expiry of entries to unfollowed topics, appends and commits (see postgres-batch.ts).
   */
  publish(item: PublishBatchItem): Promise<PublishResult> {
    return this.run('publish', async () => {
      const rows = item.entries.map(toEntryRow);
      return this.writer.publish({ item, rows, ts: item.entries[0]?.ts ?? this.clock() });
    });
  }

  getPublish(id: string): Promise<PublishRecord | undefined> {
    return this.run('getPublish', () => this.getPublishRow(id));
  }

  read(stream: string, after: number, limit: number, now: number): Promise<StoredEntry[]> {
    return this.run('read', async () => {
      if (limit <= 0) return [];
      const r = await this.pool.query<EntryRow>(
        `SELECT ${ENTRY_COLUMNS} FROM entries WHERE stream = $1 AND seq > $2 AND ${DELIVERABLE}
         ORDER BY seq LIMIT $4`,
        [stream, after, now, Math.floor(limit)],
      );
      return r.rows.map(fromEntryRow);
    });
  }

  head(stream: string): Promise<number> {
    return this.run('head', async () => {
      const r = await this.pool.query<{ head: number }>('SELECT head FROM streams WHERE name = $1', [stream]);
      return r.rows[0]?.head ?? 0;
    });
  }

  /** What became of one entry of a publish (delivery status). Writes pending acks first. */
  async entryFate(stream: string, seq: number): Promise<EntryFate> {
    await this.acks.flushed();
    const device = deviceOfStream(stream);
    const cursors = device === undefined ? {} : await this.cursorsOf(device);
    return this.run('entryFate', () => fateOf(this.pool, stream, seq, cursors));
  }

  /** Dashboard: the newest entries still stored in a stream, any state, newest first. */
  recentEntries(stream: string, limit: number): Promise<StoredEntry[]> {
    return this.run('recentEntries', async () => {
      const r = await this.pool.query<EntryRow>(
        `SELECT ${ENTRY_COLUMNS} FROM entries WHERE stream = $1 ORDER BY seq DESC LIMIT $2`,
        [stream, Math.max(0, Math.floor(limit))],
      );
      return r.rows.map(fromEntryRow);
    });
  }

  /**
   * Deletes expired and collapsed entries, device-stream entries the device has acknowledged, and
   * publish records and delivery times older than the retention, in one transaction. One node sweeps at a time (an
   * advisory lock); another node's call meanwhile returns 0. Heads stay in `streams`.
   */
  sweep(now: number): Promise<number> {
    return this.run('sweep', () =>
      transaction(this.pool, (client) => sweepEntries(client, this.schema, now, this.retentionMs)),
    );
  }

  /** Writes pending acks, waits for the operations in flight, then closes the pool. Later calls reject with `STORE_CLOSED`. */
  async close(): Promise<void> {
    if (this.runner.closed) return;
    await this.acks.flushed().catch(() => {});
    await this.runner.close();
    await this.pool.end().catch(() => {});
  }

  /** Runs one operation: refuses it after close, tracks it for close, maps errors, notes reachability. */
  private run<T>(what: string, op: () => Promise<T>): Promise<T> {
    return this.runner.run(what, op);
  }

  private async getPublishRow(id: string): Promise<PublishRecord | undefined> {
    const row = (
      await this.pool.query<PublishRow>('SELECT id, entries, ts, exp FROM publishes WHERE id = $1', [id])
    ).rows[0];
    return row && fromPublishRow(row);
  }

  private assertOpen(): void {
    if (this.runner.closed) throw new StoreError('STORE_CLOSED', 'store is closed');
  }
}
