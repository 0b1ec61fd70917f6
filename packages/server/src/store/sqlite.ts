import { deviceOfStream, deviceStream, topicStream } from '@pushwire/protocol';
import type Database from 'better-sqlite3';
import { StoreError, toStoreError } from './errors.js';
import { fromEntryRow, fromPublishRow, toDevice, toDeviceRow, toEntryRow } from './rows.js';
import { prepareStatements, type Statements } from './schema.js';
import { DeviceCache } from './sqlite-cache.js';
import { SqliteDeliveryLog } from './sqlite-delivery.js';
import { SqliteApiKeys } from './sqlite-keys.js';
import { SqlitePublishLimits } from './sqlite-limits.js';
import { durably, openDatabase, type SqliteStoreOptions } from './sqlite-open.js';
import { SqliteWritePipeline } from './sqlite-pipeline.js';
import { SqliteWakeTokens } from './sqlite-wake.js';
import { SqliteWebPushRegistry } from './sqlite-webpush.js';
import type { OpValues, WriteOp } from './sqlite-writer.js';
import type {
  DeviceLimits,
  DeviceRecord,
  EntryFate,
  PublishBatchItem,
  PublishRecord,
  PublishResult,
  Store,
  StoredEntry,
  StoreStats,
} from './types.js';

const DONE: Promise<void> = Promise.resolve();

/** Group-commit counters, for metrics (see {@link StoreStats}). */
export type SqliteStoreStats = StoreStats;
export type { SqliteStoreOptions };

const DAY_MS = 24 * 60 * 60 * 1000;

/**
 * The embedded store: one SQLite file in WAL mode, `synchronous = FULL`.
 *
 * Writes run in a writer thread (`worker_threads`) with its own connection, so the WAL write and
 * its fsync never block the event loop; reads run here on a second connection (WAL lets readers
 * run beside the writer). Group commit: writes queue into a batch that the writer commits in one
 * transaction (one fsync), on the next macrotask, after `batchMaxDelayMs`, or at once when it holds
 * `batchMaxSize` publishes; while a batch commits, the next one gathers. Every promise of a batch
 * settles after its commit.
 *
 * Stream heads are owned in memory (`sqlite-cache.ts`): seqs are assigned when a batch is formed
 * (`sqlite-batch.ts`), and only one batch is in the writer at a time (`sqlite-commit.ts`), so a failed
 * batch just puts its streams' heads back. The writer thread: `sqlite-thread.ts`, `sqlite-writer.ts`.
 * One writer process per file.
 *
 * @example
 * const store = SqliteStore.open({ path: 'data/pushwire.db' });
 * const { record } = await store.publish({ id, entries });
 * await store.close();
 */
export class SqliteStore implements Store {
  private readonly stmts: Statements;
  private readonly setToken: Database.Statement<[string, string]>;
  private readonly clock: () => number;
  private readonly retentionMs: number;
  private readonly devices: DeviceCache;
  private readonly writes: SqliteWritePipeline;
  private closed = false;
  private readonly deliveries: SqliteDeliveryLog;
  private readonly limits: SqlitePublishLimits;
  readonly wakeTokens: SqliteWakeTokens;
  readonly apiKeys: SqliteApiKeys;
  private registry: SqliteWebPushRegistry | undefined;
  /** Called after each commit that carried publishes (for metrics): batch size and commit time. */
  onBatch: ((publishes: number, ms: number) => void) | undefined;

  private constructor(
    private readonly db: Database.Database,
    opts: SqliteStoreOptions,
  ) {
    this.clock = opts.clock ?? Date.now;
    this.retentionMs = opts.retentionMs ?? 30 * DAY_MS;
    this.stmts = prepareStatements(db);
    this.devices = new DeviceCache(Math.max(0, opts.deviceCacheSize ?? 100_000));
    this.deliveries = new SqliteDeliveryLog(db);
    this.limits = new SqlitePublishLimits(this.stmts, Math.max(1, opts.headCacheSize ?? 100_000));
    this.wakeTokens = new SqliteWakeTokens(db, (fn) => this.transact(fn));
    this.apiKeys = new SqliteApiKeys(db, (fn) => this.transact(fn));
    this.setToken = db.prepare<[string, string]>('UPDATE devices SET token_hash = ? WHERE id = ?');
    this.writes = new SqliteWritePipeline(opts, this.stmts, this.limits, this.devices, this.clock);
    this.writes.commit.onBatch = (publishes, ms) => this.onBatch?.(publishes, ms);
  }

  /** Opens (creating and migrating as needed) the database at `opts.path`. */
  static open(opts: SqliteStoreOptions): SqliteStore {
    const db = openDatabase(opts.path);
    try {
      return new SqliteStore(db, opts);
    } catch (err) {
      db.close();
      throw toStoreError(err, `cannot open store ${opts.path}`);
    }
  }

  /**
   * Resolves once the writer thread has the database open (writes queue meanwhile); rejects when
   * it could not start. The server awaits it before listening, so the first publishes wait for no
   * thread start-up.
   */
  async ready(): Promise<void> {
    await this.writes.started;
    if (this.writes.broken) throw this.writes.broken;
  }

  /**
   * False once the writer thread has died: nothing more can be written until the process
   * restarts (readiness, `GET /readyz`).
   */
  get connected(): boolean {
    return this.writes.broken === undefined;
  }

  /** Why the store can no longer write (the writer thread died), if it cannot; see {@link connected}. */
  get failure(): StoreError | undefined {
    return this.writes.broken;
  }

  /**
   * The last write error (disk full, I/O error) while no write carrying data has succeeded since:
   * readiness fails meanwhile (`GET /readyz` 503), and recovers with the next successful write; each
   * sweep meanwhile probes with a 4 KB write of its own.
   */
  get writeError(): StoreError | undefined {
    return this.writes.writeError;
  }

  /**
   * Test hook: sets `PRAGMA max_page_count` on the writer's connection (returns the value in
   * effect), so tests can fill the database for real (SQLite answers SQLITE_FULL) and free it again.
   * Not for production use: the limit lasts until the store is closed.
   */
  async setMaxPageCount(pages: number): Promise<number> {
    return this.enqueue({ k: 'maxPages', pages });
  }

  stats(): SqliteStoreStats {
    return this.writes.commit.stats();
  }

  /** Web Push subscriptions, in this file (their table is created on first use). */
  get webPushRegistry(): SqliteWebPushRegistry {
    this.registry ??= SqliteWebPushRegistry.onStore(this);
    return this.registry;
  }

  /** The open (read) connection, for modules that keep their own tables in this file (Web Push registry). */
  get database(): Database.Database {
    return this.db;
  }

  /**
   * Runs `fn` (synchronous) in its own durable (fsync'd) transaction on {@link database}, on this
   * thread: for tables of other modules only, never the store's own.
   */
  transact<T>(fn: () => T): T {
    this.assertOpen();
    return durably(this.db, fn);
  }

  async createDevice(device: DeviceRecord, limits?: DeviceLimits): Promise<void> {
    await this.createDevices([device], limits);
  }

  /** Registers many devices in one transaction: one fsync for the lot. */
  async createDevices(devices: DeviceRecord[], limits?: DeviceLimits): Promise<void> {
    await this.enqueue({
      k: 'devices',
      rows: devices.map(toDeviceRow),
      ...(limits?.maxDevicesPerUser !== undefined && { maxPerUser: limits.maxDevicesPerUser }),
      ...(limits?.maxDevicesPerKey && { maxPerKey: limits.maxDevicesPerKey }),
    });
  }

  async getDevice(id: string): Promise<DeviceRecord | undefined> {
    this.assertOpen();
    let device = this.devices.get(id);
    if (device === undefined) {
      const row = this.readOp(() => this.stmts.getDevice.get(id));
      if (!row) return undefined;
      device = toDevice(row, undefined);
      this.devices.remember(id, device);
    }
    return { ...device, lastSeen: this.writes.commit.pendingTouch(id) ?? device.lastSeen };
  }

  /** Token rotation: a durable write on this connection; the device cache forgets the old hash. */
  async setDeviceToken(id: string, tokenHash: string): Promise<boolean> {
    this.devices.forget(id);
    const changed = this.transact(() => this.setToken.run(tokenHash, id).changes > 0);
    this.devices.forget(id);
    return changed;
  }

  async deleteDevice(id: string): Promise<void> {
    this.devices.forget(id);
    await this.enqueue({ k: 'deleteDevice', id, head: 0 });
    this.devices.forget(id);
    this.limits.forget(deviceStream(id));
    this.writes.commit.forgetDevice(id);
  }

  async devicesOfUser(user: string): Promise<string[]> {
    return this.readOp(() => this.stmts.devicesOfUser.all(user));
  }

  async touchDevice(id: string, lastSeen: number): Promise<void> {
    this.assertOpen();
    this.writes.commit.soft.touches.set(id, lastSeen);
    return this.writes.commit.softWritten();
  }

  async subscribe(deviceId: string, topic: string, limits?: { maxTopics?: number }): Promise<number> {
    const { cursor, existing } = await this.enqueue({
      k: 'subscribe',
      device: deviceId,
      topic,
      head: 0,
      ...(limits?.maxTopics !== undefined && { maxTopics: limits.maxTopics }),
    });
    return existing ? Math.max(cursor, this.writes.commit.pendingAck(deviceId, topicStream(topic))) : cursor;
  }

  async unsubscribe(deviceId: string, topic: string): Promise<void> {
    const stream = topicStream(topic);
    // Acks queued before this call are written before the unsubscribe, and so removed with it.
    const done = this.enqueue({ k: 'unsubscribe', device: deviceId, topic });
    this.writes.commit.forgetAck(deviceId, stream);
    await done;
  }

  async topicsOf(deviceId: string): Promise<string[]> {
    return this.readOp(() => this.stmts.topicsOf.all(deviceId));
  }

  async subscriberCount(topic: string): Promise<number> {
    return this.readOp(() => this.stmts.subscriberCount.get(topic) ?? 0);
  }

  /** Not async: every ack of one batch gets the batch's one promise (no promise per ack). */
  ack(deviceId: string, cursors: Record<string, number>): Promise<void> {
    try {
      this.assertOpen();
      if (!this.writes.commit.ack(deviceId, cursors)) return DONE;
      return this.writes.commit.softWritten();
    } catch (err) {
      return Promise.reject(err);
    }
  }

  async cursorsOf(deviceId: string): Promise<Record<string, number>> {
    const cursors: Record<string, number> = {};
    for (const row of this.readOp(() => this.stmts.cursorsOf.all(deviceId))) cursors[row.stream] = row.seq;
    for (const [stream, seq] of this.writes.commit.pendingAcks(deviceId)) {
      cursors[stream] = Math.max(cursors[stream] ?? 0, seq);
    }
    return cursors;
  }

  async pendingCount(deviceId: string, now: number): Promise<number> {
    const [cursors, topics] = await Promise.all([this.cursorsOf(deviceId), this.topicsOf(deviceId)]);
    const streams = [deviceStream(deviceId), ...topics.map(topicStream)];
    return this.readOp(() =>
      streams.reduce(
        (sum, stream) => sum + this.stmts.countAfter.get({ stream, after: cursors[stream] ?? 0, now })!,
        0,
      ),
    );
  }

  async publish(item: PublishBatchItem): Promise<PublishResult> {
    this.assertOpen();
    const rows = item.entries.map(toEntryRow);
    const prior = () => {
      const row = this.readOp(() => this.stmts.getPublish.get(item.id));
      return row && fromPublishRow(row);
    };
    return this.writes.publishOnce(item, rows, prior, () => this.publish(item));
  }

  async getPublish(id: string): Promise<PublishRecord | undefined> {
    const row = this.readOp(() => this.stmts.getPublish.get(id));
    return row && fromPublishRow(row);
  }

  async read(stream: string, after: number, limit: number, now: number): Promise<StoredEntry[]> {
    if (limit <= 0) return [];
    return this.readOp(() => this.stmts.read.all({ stream, after, now, limit }).map(fromEntryRow));
  }

  /** Committed head of a stream (not counting the batch being committed). */
  async head(stream: string): Promise<number> {
    return this.readOp(() => this.writes.committedHead(stream));
  }

  /**
   * Deletes expired and collapsed entries, device-stream entries the device has acknowledged, and
   * publish records older than the retention (their ids may then be published again).
   */
  async sweep(now: number): Promise<number> {
    const removed = await this.enqueue({ k: 'sweep', now, before: now - this.retentionMs });
    this.limits.swept();
    // While writes fail, each sweep probes the disk, so readiness comes back once there is room
    // even if the load balancer sends no more publishes to an unready node.
    if (this.writes.failedWrite) await this.enqueue({ k: 'probe' }).catch(() => {});
    return removed;
  }

  /** What became of one entry of a publish (delivery status). Commits pending acks first. */
  async entryFate(stream: string, seq: number): Promise<EntryFate> {
    await this.enqueue({ k: 'barrier' });
    const device = deviceOfStream(stream);
    const cursors = device === undefined ? {} : await this.cursorsOf(device);
    return this.readOp(() => this.deliveries.fate(stream, seq, cursors));
  }

  async recentEntries(stream: string, limit: number): Promise<StoredEntry[]> {
    return this.readOp(() => this.deliveries.recent(stream, Math.max(0, limit)));
  }

  /** Commits what is pending, then closes the database. Later calls reject with `STORE_CLOSED`. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.writes.close();
    try {
      this.db.close();
    } catch (err) {
      throw toStoreError(err, 'close failed');
    }
  }

  /** Queues a write other than a publish; resolves with its typed result once committed. */
  private enqueue<O extends WriteOp>(op: O): Promise<OpValues[O['k']]> {
    this.assertOpen();
    return this.writes.write(op);
  }

  private assertOpen(): void {
    if (this.closed) throw new StoreError('STORE_CLOSED', 'store is closed');
  }

  private readOp<T>(fn: () => T): T {
    this.assertOpen();
    try {
      return fn();
    } catch (err) {
      throw toStoreError(err, 'read failed');
    }
  }
}
