import type { StoreError } from './errors.js';
import type { Statements } from './schema.js';
import { SqliteBatchFormer } from './sqlite-batch.js';
import { type DeviceCache, HeadCache } from './sqlite-cache.js';
import { GroupCommit, realCommitTimers } from './sqlite-commit.js';
import type { SqlitePublishLimits } from './sqlite-limits.js';
import type { SqliteStoreOptions } from './sqlite-open.js';
import { type InFlight, type QueuedOp, type QueuedPublish, writeOutcome } from './sqlite-queue.js';
import { SqliteWriterThread } from './sqlite-thread.js';
import type { OpResult, OpValues, WriteOp } from './sqlite-writer.js';
import type { PublishBatchItem, PublishRecord, PublishResult } from './types.js';

/**
 * The SQLite store's write side, assembled: the writer thread, the group commit in front of it,
 * the batch former with the stream-head cache it assigns seqs from, and the write health that
 * readiness reports. The store facade hands it publishes and writes and gets typed results back.
 * @internal
 */
export class SqliteWritePipeline {
  /** Stream heads, including the seqs of the batch in flight. */
  readonly heads: HeadCache;
  readonly commit: GroupCommit;
  private readonly thread: SqliteWriterThread;
  /** Publishes with a caller-chosen id that are queued or committing: their duplicates wait for them. */
  private readonly publishing = new Map<string, Promise<PublishResult>>();
  /** The last write that failed, while no write has succeeded since (readiness). */
  private lastWriteError: StoreError | undefined;

  constructor(
    opts: SqliteStoreOptions,
    private readonly stmts: Statements,
    limits: SqlitePublishLimits,
    private readonly devices: DeviceCache,
    clock: () => number,
  ) {
    this.heads = new HeadCache(Math.max(1, opts.headCacheSize ?? 100_000), (stream) => {
      return stmts.headOf.get({ stream }) ?? 0;
    });
    const batches = new SqliteBatchFormer(this.heads, limits, clock, (stream) => this.cursorOn(stream));
    this.thread = new SqliteWriterThread(opts.path, {
      reply: (reply) => this.commit.settle(reply),
      died: (error, closing) => {
        if (!closing || this.commit.inflight) this.commit.fail(error);
      },
    });
    this.commit = new GroupCommit(
      this.thread,
      {
        form: (items) => batches.form(items),
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
      realCommitTimers(clock),
    );
  }

  /** Resolves once the writer thread has the database open, or has died trying. */
  get started(): Promise<void> {
    return this.thread.started;
  }

  /** The writer died: nothing more can be written in this process. */
  get broken(): StoreError | undefined {
    return this.commit.broken;
  }

  /** The last write error while no write carrying data has succeeded since, or the writer's death. */
  get writeError(): StoreError | undefined {
    return this.commit.broken ?? this.lastWriteError;
  }

  /** The last write that failed, while no write has succeeded since. */
  get failedWrite(): StoreError | undefined {
    return this.lastWriteError;
  }

  /** Queues a publish (payloads serialised); resolves with its result once durable. */
  publish(item: PublishBatchItem, rows: QueuedPublish['rows']): Promise<PublishResult> {
    return new Promise<PublishResult>((resolve, reject) => {
      this.commit.push({
        publish: { id: item.id, entries: item.entries, limits: item.limits, rows, resolve, reject },
      });
    });
  }

  /**
   * Publishes unless the id was published before (`prior` looks it up once committed): a duplicate
   * of a publish still queued or committing gets its record once it is durable, or is published
   * itself (`again`) if the first failed. A server-generated (`fresh`) id is new by construction:
   * no lookups (the common case).
   */
  publishOnce(
    item: PublishBatchItem,
    rows: QueuedPublish['rows'],
    prior: () => PublishRecord | undefined,
    again: () => Promise<PublishResult>,
  ): Promise<PublishResult> {
    if (item.fresh === true) return this.publish(item, rows);
    const first = this.publishing.get(item.id);
    if (first) {
      return first.then((result) => ({ record: result.record, duplicate: true, appended: [] }), again);
    }
    const record = prior();
    if (record) return Promise.resolve({ record, duplicate: true, appended: [] });
    const result = this.publish(item, rows);
    this.publishing.set(item.id, result);
    const forget = () => {
      if (this.publishing.get(item.id) === result) this.publishing.delete(item.id);
    };
    result.then(forget, forget);
    return result;
  }

  /** Committed head of a stream (not counting the batch being committed). */
  committedHead(stream: string): number {
    const inflight = this.commit.inflight;
    return inflight?.rollback.get(stream) ?? this.heads.get(stream, !inflight);
  }

  /** Queues a write other than a publish; resolves with its typed result once committed. */
  write<O extends WriteOp>(op: O): Promise<OpValues[O['k']]> {
    return new Promise<OpValues[O['k']]>((resolve, reject) => {
      // The writer answers each op with the value its kind declares (OpValues).
      this.commit.push({ op: { op, resolve: resolve as QueuedOp['resolve'], reject } });
    });
  }

  /** A device's acknowledged cursor on its own stream `d:ID`, pending acks included. */
  cursorOn(stream: string): number {
    const device = stream.slice(2);
    return Math.max(this.stmts.cursorOf.get(device, stream) ?? 0, this.commit.pendingAck(device, stream));
  }

  /** Commits what is pending, then stops the writer thread (unless it died). */
  async close(): Promise<void> {
    await this.commit.drain();
    if (!this.commit.broken) await this.thread.close();
  }

  /** The writer committed a batch: caches and readiness follow, before its callers hear of it. */
  private committed(batch: InFlight, results: OpResult[]): void {
    this.heads.trim();
    const outcome = writeOutcome(batch, results);
    if (outcome !== undefined) this.lastWriteError = outcome === 'wrote' ? undefined : outcome;
    for (const [device, lastSeen] of batch.soft.touches) this.devices.touched(device, lastSeen);
  }
}
