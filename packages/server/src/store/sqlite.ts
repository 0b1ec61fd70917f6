import { deviceOfStream, deviceStream, topicStream } from '@pushwire/protocol';
import type Database from 'better-sqlite3';
import { StoreError, toStoreError } from './errors.js';
import { fromEntryRow, fromPublishRow, toDevice, toEntryRow } from './rows.js';
import { prepareStatements, type Statements } from './schema.js';
import { SqliteBatchFormer } from './sqlite-batch.js';
import { DeviceCache, HeadCache } from './sqlite-cache.js';
import { GroupCommit, realCommitTimers } from './sqlite-commit.js';
import { SqliteDeliveryLog } from './sqlite-delivery.js';
import { SqliteApiKeys } from './sqlite-keys.js';
import { SqlitePublishLimits } from './sqlite-limits.js';
import { openDatabase, type SqliteStoreOptions } from './sqlite-open.js';
import { type InFlight, type QueuedOp, type QueuedPublish, writeOutcome } from './sqlite-queue.js';
import { SqliteWriterThread } from './sqlite-thread.js';
import { SqliteWakeTokens } from './sqlite-wake.js';
import { SqliteWebPushRegistry } from './sqlite-webpush.js';
import type { OpResult, OpValues, WriteOp } from './sqlite-writer.js';
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
 * Stream heads are owned here, in memory: seqs are assigned when a batch is formed, and only one
 * batch is in the writer at a time, so a failed batch just puts its streams' heads back (no later
 * seq was handed out). One writer process per file.
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
  /** Stream heads, including the seqs of the batch in flight. */
  private readonly heads: HeadCache;
  private readonly devices: DeviceCache;
  /** Publishes with a caller-chosen id that are queued or committing: their duplicates wait for them. */
  private readonly publishing = new Map<string, Promise<PublishResult>>();
  private readonly writer: SqliteWriterThread;
  private readonly commit: GroupCommit;
  private closed = false;
  private readonly deliveries: SqliteDeliveryLog;
  private readonly limits: SqlitePublishLimits;
  private readonly batches: SqliteBatchFormer;
  /** The last write that failed, while no write has succeeded since (readiness). */
  private lastWriteError: StoreError | undefined;
  readonly wakeTokens: SqliteWakeTokens;
  readonly apiKeys: SqliteApiKeys;
  private registry: SqliteWebPushRegistry | undefined;
  private constructor(
    private readonly db: Database.Database,
    opts: SqliteStoreOptions,
  ) {
    this.clock = opts.clock ?? Date.now;
    this.retentionMs = opts.retentionMs ?? 30 * DAY_MS;
    const headCacheSize = Math.max(1, opts.headCacheSize ?? 100_000);
    this.stmts = prepareStatements(db);
    this.heads = new HeadCache(headCacheSize, (stream) => this.stmts.headOf.get({ stream }) ?? 0);
    this.devices = new DeviceCache(Math.max(0, opts.deviceCacheSize ?? 100_000));
    this.deliveries = new SqliteDeliveryLog(db);
    this.limits = new SqlitePublishLimits(this.stmts, headCacheSize);
    this.batches = new SqliteBatchFormer(this.heads, this.limits, this.clock, (stream) =>
      this.cursorOn(stream),
    );
    this.wakeTokens = new SqliteWakeTokens(db, (fn) => this.transact(fn));
    this.apiKeys = new SqliteApiKeys(db, (fn) => this.transact(fn));
    this.setToken = db.prepare<[string, string]>('UPDATE devices SET token_hash = ? WHERE id = ?');
    this.writer = new SqliteWriterThread(opts.path, {
      reply: (reply) => this.commit.settle(reply),
      died: (error, closing) => {
        if (!closing || this.commit.inflight) this.commit.fail(error);
      },
    });
    this.commit = new GroupCommit(
      this.writer,
      {
        form: (items) => this.batches.form(items),
        committed: (batch, results) => this.committed(batch, results),
        refused: (batch, error) => {
          if (error.code === 'STORE_IO') this.lastWriteError = error;
          this.heads.restore(batch.rollback);
        },
      },
      {
        maxDelayMs: opts.batchMaxDelayMs ?? 0,
        softDelayMs: Math.max(0, opts.softWriteDelayMs ?? 25),
        maxSize: Math.max(1, opts.batchMaxSize ?? 512),
      },
      realCommitTimers(this.clock),
    );
  }

  /** Opens (creating and migrating as needed) the database at `opts.path`. */
  static open(opts: SqliteStoreOptions): SqliteStore {
    if (opts.path === ':memory:' || opts.path === '') {
      throw new StoreError('STORE_INVALID', 'the SQLite store needs a file: its writer thread opens it too');
    }
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
    await this.writer.started;
    if (this.commit.broken) throw this.commit.broken;
  }

  /**
   * False once the writer thread has died: nothing more can be written until the process
   * restarts (readiness, `GET /readyz`).
   */
  get connected(): boolean {
    return this.commit.broken === undefined;
  }

  /** Why the store can no longer write (the writer thread died), if it cannot; see {@link connected}. */
  get failure(): StoreError | undefined {
    return this.commit.broken;
  }

  /**
   * The last write error (disk full, I/O error) while no write carrying data has succeeded since:
   * readiness fails meanwhile (`GET /readyz` 503), and recovers with the next successful write; each
   * sweep meanwhile probes with a 4 KB write of its own.
   */
  get writeError(): StoreError | undefined {
    return this.commit.broken ?? this.lastWriteError;
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
    return this.commit.stats();
  }

  /** Called after each commit that carried publishes (for metrics): batch size and commit time. */
  get onBatch(): ((publishes: number, ms: number) => void) | undefined {
    return this.commit.onBatch;
  }

  set onBatch(fn: ((publishes: number, ms: number) => void) | undefined) {
    this.commit.onBatch = fn;
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
    try {
      return this.db.transaction(fn)();
    } catch (err) {
      throw toStoreError(err, 'write failed');
    }
  }

  // ── devices ──────────────────────────────────────────────────────────────────────────────────

  async createDevice(device: DeviceRecord, limits?: DeviceLimits): Promise<void> {
    await this.createDevices([device], limits);
  }

  /** Registers many devices in one transaction: one fsync for the lot. */
  async createDevices(devices: DeviceRecord[], limits?: DeviceLimits): Promise<void> {
    const rows = devices.map((device) => ({
      id: device.id,
      token_hash: device.tokenHash,
      user: device.user ?? null,
      created_at: device.createdAt,
      last_seen: device.lastSeen,
      subscribe: device.subscribe === undefined ? null : JSON.stringify(device.subscribe),
    }));
    await this.enqueue({
      k: 'devices',
      rows,
      ...(limits?.maxDevicesPerUser !== undefined && { maxPerUser: limits.maxDevicesPerUser }),
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
    const touched = this.commit.soft.touches.get(id) ?? this.commit.inflight?.soft.touches.get(id);
    return { ...device, lastSeen: touched ?? device.lastSeen };
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
    this.commit.soft.acks.delete(id);
    this.commit.soft.touches.delete(id);
  }

  async devicesOfUser(user: string): Promise<string[]> {
    return this.readOp(() => this.stmts.devicesOfUser.all(user));
  }

  async touchDevice(id: string, lastSeen: number): Promise<void> {
    this.assertOpen();
    this.commit.soft.touches.set(id, lastSeen);
    return this.commit.softWritten();
  }

  // ── subscriptions and cursors ────────────────────────────────────────────────────────────────

  async subscribe(deviceId: string, topic: string, limits?: { maxTopics?: number }): Promise<number> {
    const { cursor, existing } = await this.enqueue({
      k: 'subscribe',
      device: deviceId,
      topic,
      head: 0,
      ...(limits?.maxTopics !== undefined && { maxTopics: limits.maxTopics }),
    });
    return existing ? Math.max(cursor, this.pendingAck(deviceId, topicStream(topic))) : cursor;
  }

  async unsubscribe(deviceId: string, topic: string): Promise<void> {
    const stream = topicStream(topic);
    // Acks queued before this call are written before the unsubscribe, and so removed with it.
    const done = this.enqueue({ k: 'unsubscribe', device: deviceId, topic });
    this.commit.soft.acks.get(deviceId)?.delete(stream);
    this.commit.inflight?.soft.acks.get(deviceId)?.delete(stream);
    await done;
  }

  async topicsOf(deviceId: string): Promise<string[]> {
    return this.readOp(() => this.stmts.topicsOf.all(deviceId));
  }

  async subscriberCount(topic: string): Promise<number> {
    return this.readOp(() => this.stmts.subscriberCount.get(topic) ?? 0);
  }

  async ack(deviceId: string, cursors: Record<string, number>): Promise<void> {
    this.assertOpen();
    let acks: Map<string, number> | undefined;
    for (const stream in cursors) {
      const seq = cursors[stream]!;
      if (!Number.isSafeInteger(seq) || seq < 0) {
        throw new StoreError('STORE_INVALID', `ack of ${stream} is not a sequence number: ${seq}`);
      }
      if (acks === undefined) {
        acks = this.commit.soft.acks.get(deviceId);
        if (acks === undefined) {
          acks = new Map();
          this.commit.soft.acks.set(deviceId, acks);
        }
      }
      const prior = acks.get(stream);
      if (prior === undefined || seq > prior) acks.set(stream, seq);
    }
    if (acks === undefined) return;
    return this.commit.softWritten();
  }

  async cursorsOf(deviceId: string): Promise<Record<string, number>> {
    const cursors: Record<string, number> = {};
    for (const row of this.readOp(() => this.stmts.cursorsOf.all(deviceId))) cursors[row.stream] = row.seq;
    for (const soft of [this.commit.inflight?.soft, this.commit.soft]) {
      for (const [stream, seq] of soft?.acks.get(deviceId) ?? []) {
        cursors[stream] = Math.max(cursors[stream] ?? 0, seq);
      }
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

  // ── streams ──────────────────────────────────────────────────────────────────────────────────

  async publish(item: PublishBatchItem): Promise<PublishResult> {
    this.assertOpen();
    const rows = item.entries.map(toEntryRow);
    // A server-generated id is new by construction: skip the lookups (the common case).
    if (item.fresh === true) return this.queuePublish(item, rows);
    const first = this.publishing.get(item.id);
    if (first) {
      // Still queued or committing: the duplicate gets its record once it is durable, or is
      // published itself if the first failed.
      return first.then(
        (result) => ({ record: result.record, duplicate: true, appended: [] }),
        () => this.publish(item),
      );
    }
    const prior = this.readOp(() => this.stmts.getPublish.get(item.id));
    if (prior) return { record: fromPublishRow(prior), duplicate: true, appended: [] };
    const result = this.queuePublish(item, rows);
    this.publishing.set(item.id, result);
    const forget = () => {
      if (this.publishing.get(item.id) === result) this.publishing.delete(item.id);
    };
    result.then(forget, forget);
    return result;
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
    return this.readOp(
      () => this.commit.inflight?.rollback.get(stream) ?? this.heads.get(stream, !this.commit.inflight),
    );
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
    if (this.lastWriteError) await this.enqueue({ k: 'probe' }).catch(() => {});
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
    await this.commit.drain();
    if (!this.commit.broken) await this.writer.close();
    try {
      this.db.close();
    } catch (err) {
      throw toStoreError(err, 'close failed');
    }
  }

  // ── group commit ─────────────────────────────────────────────────────────────────────────────

  private queuePublish(item: PublishBatchItem, rows: QueuedPublish['rows']): Promise<PublishResult> {
    return new Promise<PublishResult>((resolve, reject) => {
      this.commit.push({
        publish: { id: item.id, entries: item.entries, limits: item.limits, rows, resolve, reject },
      });
    });
  }

  /** Queues a write other than a publish; resolves with its result once committed. */
  private enqueue<O extends WriteOp>(op: O): Promise<OpValues[O['k']]> {
    this.assertOpen();
    return new Promise<OpValues[O['k']]>((resolve, reject) => {
      // The writer answers each op with the value its kind declares (OpValues).
      this.commit.push({ op: { op, resolve: resolve as QueuedOp['resolve'], reject } });
    });
  }

  /** The writer committed a batch: caches and readiness follow, before its callers hear of it. */
  private committed(batch: InFlight, results: OpResult[]): void {
    this.heads.trim();
    const outcome = writeOutcome(batch, results);
    if (outcome !== undefined) this.lastWriteError = outcome === 'wrote' ? undefined : outcome;
    for (const [device, lastSeen] of batch.soft.touches) this.devices.touched(device, lastSeen);
  }

  // ── helpers ──────────────────────────────────────────────────────────────────────────────────

  /** A device's acknowledged cursor on its own stream `d:ID`, pending acks included. */
  private cursorOn(stream: string): number {
    const device = stream.slice(2);
    return Math.max(this.stmts.cursorOf.get(device, stream) ?? 0, this.pendingAck(device, stream));
  }

  /** A device's acknowledged cursor on a stream not yet written. */
  private pendingAck(deviceId: string, stream: string): number {
    return Math.max(
      this.commit.soft.acks.get(deviceId)?.get(stream) ?? 0,
      this.commit.inflight?.soft.acks.get(deviceId)?.get(stream) ?? 0,
    );
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
