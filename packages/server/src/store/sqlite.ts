import { performance } from 'node:perf_hooks';
import Database from 'better-sqlite3';
import { StoreError, toStoreError } from './errors.js';
import { fromEntryRow, fromPublishRow, toDevice, toEntryRow } from './rows.js';
import { type EntryRow, migrate, prepareStatements, type Statements } from './schema.js';
import { SqliteDeliveryLog } from './sqlite-delivery.js';
import type {
  DeviceRecord,
  EntryFate,
  NewEntry,
  PublishBatchItem,
  PublishRecord,
  PublishResult,
  Store,
  StoredEntry,
} from './types.js';

export interface SqliteStoreOptions {
  /** Database file (created when missing); `:memory:` for a throwaway store. */
  path: string;
  /** Time source for publish records without entries; defaults to `Date.now`. */
  clock?: () => number;
  /** Longest a publish waits for companions before its batch commits; 0 = next macrotask. */
  batchMaxDelayMs?: number;
  /** A batch commits at once when it holds this many publishes (default 512). */
  batchMaxSize?: number;
  /** How long publish ids are remembered for idempotency (default 30 days). */
  retentionMs?: number;
  /** Streams whose head is kept in memory (default 100 000); others are read back on demand. */
  headCacheSize?: number;
}

/** Group-commit counters, for metrics. */
export interface SqliteStoreStats {
  /** Commits that carried at least one publish (each cost one fsync). */
  batches: number;
  /** Publishes committed, duplicates included. */
  publishes: number;
  lastBatchSize: number;
  lastBatchMs: number;
  /** Stream entries marked collapsed by a newer entry with the same key. */
  collapsed: number;
  /** Entries the sweep removed past their expiry (acknowledged device entries are not counted). */
  expired: number;
}

interface Waiter<T> {
  resolve(value: T): void;
  reject(err: unknown): void;
}

/** A publish waiting for its batch, payloads already serialised. */
interface QueuedPublish extends Waiter<PublishResult> {
  id: string;
  entries: NewEntry[];
  fresh: boolean;
  rows: Omit<EntryRow, 'seq' | 'prev_seq'>[];
}

/**
 * Writes that need no fsync of their own: acked cursors and last-seen times. They wait in memory
 * (read methods see them) and are written in the next group commit. A commit holding only these
 * runs with `synchronous = NORMAL`: it survives a kill -9 of the process but the last ones may be
 * lost on power loss, which only causes redelivery (the SDK dedupes by id).
 */
class SoftWrites {
  readonly acks = new Map<string, Map<string, number>>();
  readonly touches = new Map<string, number>();
  readonly waiters: Waiter<void>[] = [];
}

const DAY_MS = 24 * 60 * 60 * 1000;

/**
 * The embedded store: one SQLite file in WAL mode, `synchronous = FULL`.
 *
 * Group commit: `publish` calls queue into a batch that commits in one transaction (one fsync) on
 * the next macrotask, after `batchMaxDelayMs`, or at once when it holds `batchMaxSize` publishes;
 * every promise of the batch resolves after that commit. One writer process per file: stream heads
 * are cached in memory.
 *
 * @example
 * const store = SqliteStore.open({ path: 'data/pushwire.db' });
 * const { record } = await store.publish({ id, entries });
 * await store.close();
 */
export class SqliteStore implements Store {
  private readonly stmts: Statements;
  private readonly clock: () => number;
  private readonly maxDelayMs: number;
  private readonly maxSize: number;
  private readonly retentionMs: number;
  private readonly headCacheSize: number;
  private readonly heads = new Map<string, number>();
  private readonly commitBatch: (
    batch: QueuedPublish[],
    soft: SoftWrites,
    heads: Map<string, number>,
  ) => PublishResult[];
  private queue: QueuedPublish[] = [];
  private soft = new SoftWrites();
  private cancelFlush: (() => void) | undefined;
  private durable = true;
  private closed = false;
  private readonly counters: SqliteStoreStats = {
    batches: 0,
    publishes: 0,
    lastBatchSize: 0,
    lastBatchMs: 0,
    collapsed: 0,
    expired: 0,
  };
  private readonly deliveries: SqliteDeliveryLog;
  /** Called after each commit that carried publishes (for metrics): batch size and commit time. */
  onBatch: ((publishes: number, ms: number) => void) | undefined;

  private constructor(
    private readonly db: Database.Database,
    opts: SqliteStoreOptions,
  ) {
    this.clock = opts.clock ?? Date.now;
    this.maxDelayMs = opts.batchMaxDelayMs ?? 0;
    this.maxSize = Math.max(1, opts.batchMaxSize ?? 512);
    this.retentionMs = opts.retentionMs ?? 30 * DAY_MS;
    this.headCacheSize = Math.max(1, opts.headCacheSize ?? 100_000);
    this.stmts = prepareStatements(db);
    this.deliveries = new SqliteDeliveryLog(db);
    this.commitBatch = db.transaction(
      (batch: QueuedPublish[], soft: SoftWrites, heads: Map<string, number>) => {
        const seen = new Map<string, PublishRecord>();
        const results = batch.map((item) => this.append(item, heads, seen));
        // One head write per stream per batch, not per entry.
        for (const [stream, head] of heads) this.stmts.setHead.run(stream, head);
        this.writeSoft(soft);
        return results;
      },
    );
  }

  /** Opens (creating and migrating as needed) the database at `opts.path`. */
  static open(opts: SqliteStoreOptions): SqliteStore {
    let db: Database.Database | undefined;
    try {
      db = new Database(opts.path, { timeout: 5000 });
      db.pragma('journal_mode = WAL');
      db.pragma('synchronous = FULL');
      db.pragma('busy_timeout = 5000');
      db.pragma('foreign_keys = ON');
      migrate(db);
      return new SqliteStore(db, opts);
    } catch (err) {
      db?.close();
      throw toStoreError(err, `cannot open store ${opts.path}`);
    }
  }

  stats(): SqliteStoreStats {
    return { ...this.counters };
  }

  /** The open database, for modules that keep their own tables in this file (Web Push registry). */
  get database(): Database.Database {
    return this.db;
  }

  /** Runs `fn` (synchronous) in its own durable (fsync'd) transaction on {@link database}. */
  transact<T>(fn: () => T): T {
    return this.write(fn);
  }

  // ── devices ──────────────────────────────────────────────────────────────────────────────────

  async createDevice(device: DeviceRecord): Promise<void> {
    this.write(() =>
      this.stmts.insertDevice.run({
        id: device.id,
        token_hash: device.tokenHash,
        user: device.user ?? null,
        created_at: device.createdAt,
        last_seen: device.lastSeen,
      }),
    );
  }

  /** Registers many devices in one transaction: one fsync for the lot. */
  async createDevices(devices: DeviceRecord[]): Promise<void> {
    this.write(() => {
      for (const device of devices) {
        this.stmts.insertDevice.run({
          id: device.id,
          token_hash: device.tokenHash,
          user: device.user ?? null,
          created_at: device.createdAt,
          last_seen: device.lastSeen,
        });
      }
    });
  }

  async getDevice(id: string): Promise<DeviceRecord | undefined> {
    const row = this.readOp(() => this.stmts.getDevice.get(id));
    return row && toDevice(row, this.soft.touches.get(id));
  }

  async deleteDevice(id: string): Promise<void> {
    this.flush();
    this.write(() => {
      this.stmts.deleteStreamEntries.run(`d:${id}`);
      this.stmts.deleteDevice.run(id);
    });
    this.soft.acks.delete(id);
    this.soft.touches.delete(id);
  }

  async devicesOfUser(user: string): Promise<string[]> {
    return this.readOp(() => this.stmts.devicesOfUser.all(user));
  }

  async touchDevice(id: string, lastSeen: number): Promise<void> {
    this.assertOpen();
    this.soft.touches.set(id, lastSeen);
    return this.softWritten();
  }

  // ── subscriptions and cursors ────────────────────────────────────────────────────────────────

  async subscribe(deviceId: string, topic: string): Promise<number> {
    const stream = `t:${topic}`;
    return this.write(() => {
      if (!this.stmts.getDevice.get(deviceId)) {
        throw new StoreError('STORE_NOT_FOUND', `no device ${JSON.stringify(deviceId)}`);
      }
      if (this.stmts.isSubscribed.get(deviceId, topic)) {
        const pending = this.soft.acks.get(deviceId)?.get(stream) ?? 0;
        return Math.max(this.stmts.cursorOf.get(deviceId, stream) ?? 0, pending);
      }
      const head = this.headOf(stream);
      this.stmts.subscribe.run(deviceId, topic);
      this.stmts.setCursor.run(deviceId, stream, head);
      this.soft.acks.get(deviceId)?.delete(stream);
      return head;
    });
  }

  async unsubscribe(deviceId: string, topic: string): Promise<void> {
    const stream = `t:${topic}`;
    this.write(() => {
      this.stmts.unsubscribe.run(deviceId, topic);
      this.stmts.deleteCursor.run(deviceId, stream);
    });
    this.soft.acks.get(deviceId)?.delete(stream);
  }

  async topicsOf(deviceId: string): Promise<string[]> {
    return this.readOp(() => this.stmts.topicsOf.all(deviceId));
  }

  async ack(deviceId: string, cursors: Record<string, number>): Promise<void> {
    this.assertOpen();
    const entries = Object.entries(cursors);
    if (entries.length === 0) return;
    for (const [stream, seq] of entries) {
      if (!Number.isSafeInteger(seq) || seq < 0) {
        throw new StoreError('STORE_INVALID', `ack of ${stream} is not a sequence number: ${seq}`);
      }
    }
    const acks = this.soft.acks.get(deviceId) ?? new Map<string, number>();
    this.soft.acks.set(deviceId, acks);
    for (const [stream, seq] of entries) acks.set(stream, Math.max(acks.get(stream) ?? 0, seq));
    return this.softWritten();
  }

  async cursorsOf(deviceId: string): Promise<Record<string, number>> {
    const cursors: Record<string, number> = {};
    for (const row of this.readOp(() => this.stmts.cursorsOf.all(deviceId))) cursors[row.stream] = row.seq;
    for (const [stream, seq] of this.soft.acks.get(deviceId) ?? []) {
      cursors[stream] = Math.max(cursors[stream] ?? 0, seq);
    }
    return cursors;
  }

  async pendingCount(deviceId: string, now: number): Promise<number> {
    const [cursors, topics] = await Promise.all([this.cursorsOf(deviceId), this.topicsOf(deviceId)]);
    const streams = [`d:${deviceId}`, ...topics.map((topic) => `t:${topic}`)];
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
    return new Promise<PublishResult>((resolve, reject) => {
      this.queue.push({
        id: item.id,
        entries: item.entries,
        fresh: item.fresh === true,
        rows,
        resolve,
        reject,
      });
      if (this.queue.length >= this.maxSize) this.flush();
      else this.schedule();
    });
  }

  async getPublish(id: string): Promise<PublishRecord | undefined> {
    const row = this.readOp(() => this.stmts.getPublish.get(id));
    return row && fromPublishRow(row);
  }

  async read(stream: string, after: number, limit: number, now: number): Promise<StoredEntry[]> {
    if (limit <= 0) return [];
    return this.readOp(() => this.stmts.read.all({ stream, after, now, limit }).map(fromEntryRow));
  }

  async head(stream: string): Promise<number> {
    return this.readOp(() => this.headOf(stream));
  }

  /**
   * Deletes expired and collapsed entries, device-stream entries the device has acknowledged, and
   * publish records older than the retention (their ids may then be published again).
   */
  async sweep(now: number): Promise<number> {
    this.flush();
    return this.write(() => {
      let removed = 0;
      for (const { stream, seq } of this.stmts.deviceCursors.all()) {
        removed += this.stmts.sweepAcked.run(stream, seq).changes;
      }
      const expired = this.stmts.sweepExpired.run(now).changes;
      this.counters.expired += expired;
      removed += expired + this.stmts.sweepCollapsed.run().changes;
      this.stmts.sweepPublishes.run(now - this.retentionMs);
      this.deliveries.sweep(now - this.retentionMs);
      return removed;
    });
  }

  /** What became of one entry of a publish (delivery status). Commits pending acks first. */
  async entryFate(stream: string, seq: number): Promise<EntryFate> {
    this.flush();
    const device = stream.startsWith('d:') ? stream.slice(2) : undefined;
    const cursors = device === undefined ? {} : await this.cursorsOf(device);
    return this.readOp(() => this.deliveries.fate(stream, seq, cursors));
  }

  async recentEntries(stream: string, limit: number): Promise<StoredEntry[]> {
    return this.readOp(() => this.deliveries.recent(stream, Math.max(0, limit)));
  }

  /** Commits what is pending, then closes the database. Later calls reject with `STORE_CLOSED`. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.flush();
    this.closed = true;
    try {
      this.db.close();
    } catch (err) {
      throw toStoreError(err, 'close failed');
    }
  }

  // ── group commit ─────────────────────────────────────────────────────────────────────────────

  private schedule(): void {
    if (this.cancelFlush) return;
    if (this.maxDelayMs > 0) {
      const timer = setTimeout(() => this.flush(), this.maxDelayMs);
      this.cancelFlush = () => clearTimeout(timer);
    } else {
      const immediate = setImmediate(() => this.flush());
      this.cancelFlush = () => clearImmediate(immediate);
    }
  }

  private softWritten(): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.soft.waiters.push({ resolve, reject });
      this.schedule();
    });
  }

  /** Commits the queued publishes and soft writes in one transaction, then settles their promises. */
  private flush(): void {
    this.cancelFlush?.();
    this.cancelFlush = undefined;
    const batch = this.queue;
    const soft = this.soft;
    if (batch.length === 0 && soft.waiters.length === 0 && soft.acks.size === 0 && soft.touches.size === 0) {
      return;
    }
    this.queue = [];
    this.soft = new SoftWrites();
    const started = performance.now();
    const heads = new Map<string, number>();
    let results: PublishResult[];
    try {
      this.setDurable(batch.length > 0);
      results = this.commitBatch(batch, soft, heads);
    } catch (err) {
      const error = toStoreError(err, 'commit failed');
      for (const item of batch) item.reject(error);
      for (const waiter of soft.waiters) waiter.reject(error);
      return;
    }
    for (const [stream, head] of heads) this.cacheHead(stream, head);
    if (batch.length > 0) {
      this.counters.batches++;
      this.counters.publishes += batch.length;
      this.counters.lastBatchSize = batch.length;
      this.counters.lastBatchMs = performance.now() - started;
      this.onBatch?.(batch.length, this.counters.lastBatchMs);
    }
    for (const [i, item] of batch.entries()) item.resolve(results[i]!);
    for (const waiter of soft.waiters) waiter.resolve();
  }

  /** Appends one publish inside the batch transaction; `heads` holds the batch's uncommitted heads. */
  private append(
    item: QueuedPublish,
    heads: Map<string, number>,
    seen: Map<string, PublishRecord>,
  ): PublishResult {
    // A server-generated id is new by construction: skip the lookup (the common case).
    const prior = seen.get(item.id) ?? (item.fresh ? undefined : this.loadPublish(item.id));
    if (prior) return { record: prior, duplicate: true, appended: [] };
    const appended = item.entries.map((entry, i): StoredEntry => {
      const prevSeq = heads.get(entry.stream) ?? this.headOf(entry.stream);
      const seq = prevSeq + 1;
      if (entry.collapseKey !== undefined) {
        this.counters.collapsed += this.stmts.collapse.run(entry.stream, entry.collapseKey).changes;
      }
      this.stmts.insertEntry.run({ ...item.rows[i]!, seq, prev_seq: prevSeq });
      heads.set(entry.stream, seq);
      return { ...entry, seq, prevSeq };
    });
    const ts = item.entries[0]?.ts ?? this.clock();
    const exp = item.entries.reduce((max, e) => Math.max(max, e.exp), item.entries[0]?.exp ?? ts);
    const record: PublishRecord = {
      id: item.id,
      entries: appended.map(({ stream, seq }) => ({ stream, seq })),
      ts,
      exp,
    };
    this.stmts.insertPublish.run({ id: record.id, entries: JSON.stringify(record.entries), ts, exp });
    seen.set(item.id, record);
    return { record, duplicate: false, appended };
  }

  private loadPublish(id: string): PublishRecord | undefined {
    const row = this.stmts.getPublish.get(id);
    return row && fromPublishRow(row);
  }

  private writeSoft(soft: SoftWrites): void {
    const now = this.clock();
    for (const [device, acks] of soft.acks) {
      for (const [stream, seq] of acks) {
        this.deliveries.recordAck(device, stream, seq, now);
        this.stmts.ackCursor.run({ device, stream, seq });
      }
    }
    for (const [device, lastSeen] of soft.touches) this.stmts.touchDevice.run(lastSeen, device);
  }

  // ── helpers ──────────────────────────────────────────────────────────────────────────────────

  /** Committed head of a stream, from the cache or the database. */
  private headOf(stream: string): number {
    const cached = this.heads.get(stream);
    if (cached !== undefined) return cached;
    const head = this.stmts.headOf.get({ stream }) ?? 0;
    this.cacheHead(stream, head);
    return head;
  }

  private cacheHead(stream: string, head: number): void {
    this.heads.delete(stream);
    this.heads.set(stream, head);
    if (this.heads.size > this.headCacheSize) {
      const oldest = this.heads.keys().next().value;
      if (oldest !== undefined) this.heads.delete(oldest);
    }
  }

  /** Commit durability: FULL fsyncs the WAL on commit; NORMAL leaves it to the next fsync. */
  private setDurable(durable: boolean): void {
    if (this.durable === durable) return;
    this.db.pragma(`synchronous = ${durable ? 'FULL' : 'NORMAL'}`);
    this.durable = durable;
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

  /** Runs `fn` in its own durable (fsync'd) transaction. */
  private write<T>(fn: () => T): T {
    this.assertOpen();
    try {
      this.setDurable(true);
      return this.db.transaction(fn)();
    } catch (err) {
      throw toStoreError(err, 'write failed');
    }
  }
}
