import { performance } from 'node:perf_hooks';
import { QuotaError, StoreError } from './errors.js';
import type { HeadRollback } from './sqlite-cache.js';
import { type InFlight, type Queued, SoftWrites } from './sqlite-queue.js';
import type { OpResult, PublishWrites, WriteBatch, WriteReply } from './sqlite-writer.js';
import type { StoreStats } from './types.js';

/** Where batches go: the writer thread (or a fake in tests). It answers each with {@link GroupCommit.settle}. */
export interface BatchWriter {
  send(batch: WriteBatch): void;
}

/** Time for the group commit; {@link realCommitTimers} in production, fakes in tests. */
export interface CommitTimers {
  /** Wall-clock time stamped on a batch (acks' delivery log). */
  now(): number;
  /** Monotonic milliseconds (commit durations). */
  elapsed(): number;
  /** Runs `fn` after `ms`; returns its cancel. */
  after(ms: number, fn: () => void): () => void;
  /** Runs `fn` on the next macrotask; returns its cancel. */
  soon(fn: () => void): () => void;
}

/** Timers of the event loop; `now` is the store's clock. */
export function realCommitTimers(now: () => number): CommitTimers {
  return {
    now,
    elapsed: () => performance.now(),
    after: (ms, fn) => {
      const timer = setTimeout(fn, ms);
      return () => clearTimeout(timer);
    },
    soon: (fn) => {
      const immediate = setImmediate(fn);
      return () => clearImmediate(immediate);
    },
  };
}

/** The writes of one batch, formed by the store (seqs assigned, quotas checked). */
export interface FormedBatch {
  /** Results of its publishes, by item index, or why refused. */
  results: InFlight['results'];
  /** Heads its publishes started from. */
  rollback: HeadRollback;
  /** Publishes accepted (each appended). */
  publishes: number;
  /** Holds a write that needs an fsync (anything but soft writes and barriers). */
  durable: boolean;
  writes: PublishWrites;
  ops: WriteBatch['ops'];
}

/** What the group commit asks of its store around each batch. */
export interface GroupCommitHooks {
  /** Forms the batch of `items`, in queue order. */
  form(items: Queued[]): FormedBatch;
  /** The writer committed `batch`: update caches, before any caller's promise settles. */
  committed(batch: InFlight, results: OpResult[]): void;
  /** The writer refused `batch` (nothing of it was written): put its heads back. */
  refused(batch: InFlight, error: StoreError): void;
}

export interface GroupCommitOptions {
  /** Longest a durable write waits for companions; 0 = next macrotask. */
  maxDelayMs: number;
  /** Longest soft writes (acks, last-seen times) wait when nothing durable is queued. */
  softDelayMs: number;
  /** A batch is sent at once when the queue holds this many writes. */
  maxSize: number;
}

/**
 * Group commit: writes queue into a batch that the writer commits in one transaction (one
 * fsync), on the next macrotask, after `maxDelayMs`, or at once when `maxSize` are queued; soft
 * writes alone wait `softDelayMs`. One batch is in the writer at a time while the next gathers;
 * every promise of a batch settles after its commit, and the next batch is sent first.
 * @internal
 */
export class GroupCommit {
  private queue: Queued[] = [];
  private pendingSoft = new SoftWrites();
  private current: InFlight | undefined;
  private batchNo = 0;
  private cancelFlush: (() => void) | undefined;
  /** The pending flush waits for soft writes only (a durable write should not wait for it). */
  private softFlush = false;
  private closing = false;
  private idle: (() => void) | undefined;
  private dead: StoreError | undefined;
  private readonly counters: StoreStats = {
    batches: 0,
    publishes: 0,
    writes: 0,
    lastBatchSize: 0,
    lastBatchMs: 0,
    collapsed: 0,
    expired: 0,
  };
  /** Called after each commit that carried publishes: batch size and commit time. */
  onBatch: ((publishes: number, ms: number) => void) | undefined;

  constructor(
    private readonly writer: BatchWriter,
    private readonly hooks: GroupCommitHooks,
    private readonly opts: GroupCommitOptions,
    private readonly timers: CommitTimers,
  ) {}

  /** Soft writes not yet sent (read methods see them). */
  get soft(): SoftWrites {
    return this.pendingSoft;
  }

  /** The batch the writer is committing. */
  get inflight(): InFlight | undefined {
    return this.current;
  }

  /** Why nothing more can be written (the writer died), if so. */
  get broken(): StoreError | undefined {
    return this.dead;
  }

  /** Whether anything is queued or in flight. */
  get busy(): boolean {
    return this.current !== undefined || this.queue.length > 0;
  }

  stats(): StoreStats {
    return { ...this.counters };
  }

  /** Queues a write; its promise settles through `queued.resolve`/`reject` after its commit. */
  push(queued: Queued): void {
    this.queue.push(queued);
    if (this.dead) this.fail(this.dead);
    else if (this.queue.length >= this.opts.maxSize) this.flush();
    else this.schedule();
  }

  /**
   * Records acked cursors as soft writes (cumulative: a lower seq never moves one back); false
   * when there are none. Throws `STORE_INVALID` for a seq that is not a sequence number.
   */
  ack(deviceId: string, cursors: Record<string, number>): boolean {
    let acks: Map<string, number> | undefined;
    for (const stream in cursors) {
      const seq = cursors[stream]!;
      if (!Number.isSafeInteger(seq) || seq < 0) {
        throw new StoreError('STORE_INVALID', `ack of ${stream} is not a sequence number: ${seq}`);
      }
      if (acks === undefined) {
        acks = this.pendingSoft.acks.get(deviceId);
        if (acks === undefined) {
          acks = new Map();
          this.pendingSoft.acks.set(deviceId, acks);
        }
      }
      const prior = acks.get(stream);
      if (prior === undefined || seq > prior) acks.set(stream, seq);
    }
    return acks !== undefined;
  }

  /** A device's acked cursor on `stream` not yet written (queued or in flight); 0 when none. */
  pendingAck(deviceId: string, stream: string): number {
    return Math.max(
      this.pendingSoft.acks.get(deviceId)?.get(stream) ?? 0,
      this.current?.soft.acks.get(deviceId)?.get(stream) ?? 0,
    );
  }

  /** A device's acked cursors not yet written: those in flight, then those queued. */
  *pendingAcks(deviceId: string): Iterable<[string, number]> {
    for (const soft of [this.current?.soft, this.pendingSoft]) yield* soft?.acks.get(deviceId) ?? [];
  }

  /** A device's last-seen time not yet written. */
  pendingTouch(deviceId: string): number | undefined {
    return this.pendingSoft.touches.get(deviceId) ?? this.current?.soft.touches.get(deviceId);
  }

  /** Drops a pending ack of `stream` (the device unsubscribed), queued or in flight. */
  forgetAck(deviceId: string, stream: string): void {
    this.pendingSoft.acks.get(deviceId)?.delete(stream);
    this.current?.soft.acks.get(deviceId)?.delete(stream);
  }

  /** Drops a deleted device's queued soft writes. */
  forgetDevice(deviceId: string): void {
    this.pendingSoft.acks.delete(deviceId);
    this.pendingSoft.touches.delete(deviceId);
  }

  /** Resolves once the soft writes made so far are written. */
  softWritten(): Promise<void> {
    if (this.dead) return Promise.reject(this.dead);
    const written = this.pendingSoft.written();
    this.schedule();
    return written;
  }

  /** Sends what is queued at once and resolves once nothing is queued or in flight. */
  async drain(): Promise<void> {
    this.closing = true;
    this.flush();
    if (!this.busy) return;
    await new Promise<void>((resolve) => {
      this.idle = resolve;
    });
  }

  /**
   * Sends the next batch to the writer, unless one is being committed (its reply sends the next).
   */
  flush(): void {
    this.cancelFlush?.();
    this.cancelFlush = undefined;
    if (this.current || this.dead) return;
    const soft = this.pendingSoft;
    if (this.queue.length === 0 && soft.empty) {
      this.idle?.();
      return;
    }
    let items = this.queue;
    if (items.length > this.opts.maxSize) {
      items = this.queue.slice(0, this.opts.maxSize);
      this.queue = this.queue.slice(this.opts.maxSize);
    } else this.queue = [];
    this.pendingSoft = new SoftWrites();

    const formed = this.hooks.form(items);
    const acks: WriteBatch['acks'] = [];
    for (const [device, streams] of soft.acks) {
      for (const [stream, seq] of streams) acks.push([device, stream, seq]);
    }
    const batch: WriteBatch = {
      n: ++this.batchNo,
      durable: formed.durable,
      now: this.timers.now(),
      publishes: formed.writes,
      ops: formed.ops,
      acks,
      touches: [...soft.touches],
    };
    this.current = {
      items,
      results: formed.results,
      rollback: formed.rollback,
      soft,
      publishes: formed.publishes,
      started: this.timers.elapsed(),
    };
    this.counters.writes++;
    this.writer.send(batch);
  }

  /** The writer reported the batch in flight: settles its promises and sends the next one. */
  settle(reply: WriteReply): void {
    const batch = this.current;
    if (!batch) return;
    this.current = undefined;
    if (!reply.ok) {
      const error = new StoreError(reply.code, reply.message);
      this.hooks.refused(batch, error);
      for (const { publish, op } of batch.items) (publish ?? op).reject(error);
      batch.soft.reject(error);
      this.flush();
      return;
    }
    this.hooks.committed(batch, reply.results);
    this.counters.collapsed += reply.collapsed;
    this.counters.expired += reply.expired;
    if (batch.publishes > 0) {
      const ms = this.timers.elapsed() - batch.started;
      this.counters.batches++;
      this.counters.publishes += batch.publishes;
      this.counters.lastBatchSize = batch.publishes;
      this.counters.lastBatchMs = ms;
      this.onBatch?.(batch.publishes, ms);
    }
    // The next batch goes to the writer before the callers' continuations run; soft writes alone
    // wait for their delay, so that a stream of acks or touches does not keep the writer busy.
    if (this.queue.length > 0 || this.closing) this.flush();
    else if (!this.pendingSoft.empty) this.schedule();
    let next = 0;
    for (let i = 0; i < batch.items.length; i++) {
      const { publish, op } = batch.items[i]!;
      if (publish) {
        const result = batch.results[i]!;
        if (result instanceof QuotaError) publish.reject(result);
        else publish.resolve(result);
        continue;
      }
      const result = reply.results[next++]!;
      if (result.ok) op.resolve(result.value);
      else op.reject(errorOf(result));
    }
    batch.soft.resolve();
  }

  /** The writer died: whether the batch in flight was committed is unknown, so nothing more is written. */
  fail(error: StoreError): void {
    this.dead ??= error;
    const batch = this.current;
    this.current = undefined;
    const queue = this.queue;
    this.queue = [];
    const soft = this.pendingSoft;
    this.pendingSoft = new SoftWrites();
    for (const { publish, op } of [...(batch?.items ?? []), ...queue]) (publish ?? op).reject(this.dead);
    batch?.soft.reject(this.dead);
    soft.reject(this.dead);
    this.idle?.();
  }

  private schedule(): void {
    if (this.current) return;
    const soft = this.queue.length === 0;
    if (this.cancelFlush) {
      if (soft || !this.softFlush) return;
      this.cancelFlush(); // a durable write joins the soft ones: do not keep it waiting
    }
    this.softFlush = soft && this.opts.softDelayMs > this.opts.maxDelayMs;
    if (this.softFlush) this.cancelFlush = this.timers.after(this.opts.softDelayMs, () => this.flush());
    else if (this.opts.maxDelayMs > 0) {
      this.cancelFlush = this.timers.after(this.opts.maxDelayMs, () => this.flush());
    } else this.cancelFlush = this.timers.soon(() => this.flush());
  }
}

const errorOf = (result: Extract<OpResult, { ok: false }>): StoreError =>
  result.quota ? new QuotaError(result.quota, result.message) : new StoreError(result.code, result.message);
