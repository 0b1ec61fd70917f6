import { isDeviceStream, isTopicStream } from '@pushwire/protocol';
import { QuotaError } from './errors.js';
import type { EntryRow, Statements } from './schema.js';
import type { PublishLimits } from './types.js';

/** A publish's entries as the SQLite store queues them: the entry and its serialised row. */
interface Pending {
  entries: { stream: string; ts: number; exp: number }[];
  rows: Pick<EntryRow, 'stream' | 'data' | 'notification' | 'exp'>[];
  limits?: PublishLimits;
}

/** Payload bytes of a row as stored (JSON text of data and notification). */
const rowBytes = (row: Pending['rows'][number]): number =>
  (row.data === null ? 0 : Buffer.byteLength(row.data)) +
  (row.notification === null ? 0 : Buffer.byteLength(row.notification));

/**
 * What is known of a device stream's backlog: the cursor it was read after, the entries and bytes
 * stored after it, and the sweep generation it was read in.
 */
interface Backlog {
  base: number;
  count: number;
  bytes: number;
  sweeps: number;
}

/**
 * The SQLite store's publish bounds ({@link PublishLimits}), checked on the main thread as a batch
 * is formed.
 *
 * A device's backlog is what its stream stores after its acknowledged cursor: the entries (expired
 * or collapsed ones included until the sweep removes them) and their payload bytes. Both are
 * cached per stream and grow with each accepted entry; the cursor only moves forward and the sweep
 * only removes entries, so the cache can only over-count, and a check that passes on it passes on
 * the truth. Only a check that fails on the cache reads the database again (an index-only count
 * and a sum of the entries after the cursor), and only when the cursor moved or a sweep ran since
 * the last read: refusing publishes to a full device costs one primary-key lookup each. Entries of
 * the batch being committed during a read are not in it, so a bound can be passed by at most one
 * batch.
 */
export class SqlitePublishLimits {
  private readonly backlogs = new Map<string, Backlog>();
  private sweeps = 0;

  constructor(
    private readonly stmts: Statements,
    private readonly cacheSize: number,
  ) {}

  /** A sweep removed entries: cached backlogs may be read again. */
  swept(): void {
    this.sweeps++;
  }

  /**
   * Caps the expiry of entries to topics nobody follows (rows and entries alike), before the
   * publish is assigned seqs.
   */
  capUnfollowed(item: Pending): void {
    const ttl = item.limits?.unfollowedTopicTtlMs;
    if (ttl === undefined) return;
    for (let i = 0; i < item.entries.length; i++) {
      const entry = item.entries[i]!;
      if (!isTopicStream(entry.stream) || entry.exp <= entry.ts + ttl) continue;
      if (this.stmts.isFollowed.get(entry.stream.slice(2)) !== undefined) continue;
      entry.exp = entry.ts + ttl;
      item.rows[i]!.exp = entry.exp;
    }
  }

  /**
   * Why the publish may not be appended, or undefined. `head` is a stream's head before this
   * publish; `cursor` a device's acknowledged cursor on its stream (pending acks included).
   */
  refusal(
    item: Pending,
    head: (stream: string) => number,
    cursor: (stream: string) => number,
  ): QuotaError | undefined {
    const limits = item.limits;
    if (limits?.maxPending === undefined && limits?.maxPendingBytes === undefined) return undefined;
    for (let i = 0; i < item.rows.length; i++) {
      const row = item.rows[i]!;
      if (!isDeviceStream(row.stream)) continue;
      const bytes = rowBytes(row);
      let backlog = this.backlogs.get(row.stream);
      if (backlog && this.excess(limits, backlog, bytes) === undefined) continue;
      if (head(row.stream) === 0) continue;
      backlog = this.read(row.stream, cursor(row.stream), backlog);
      const excess = this.excess(limits, backlog, bytes);
      if (excess !== undefined) return new QuotaError('DEVICE_BACKLOG_FULL', excess);
    }
    return undefined;
  }

  /** Counts an appended publish into the cached backlogs of its device streams. */
  appended(item: Pending): void {
    for (const row of item.rows) {
      const backlog = this.backlogs.get(row.stream);
      if (!backlog) continue;
      backlog.count++;
      backlog.bytes += rowBytes(row);
    }
  }

  /** Forgets a stream's backlog (its device was deleted). */
  forget(stream: string): void {
    this.backlogs.delete(stream);
  }

  /** Why one more entry of `bytes` would pass a bound, or undefined. */
  private excess(limits: PublishLimits, backlog: Backlog, bytes: number): string | undefined {
    if (limits.maxPending !== undefined && backlog.count >= limits.maxPending) {
      return `the device has ${backlog.count} undelivered messages; the limit is ${limits.maxPending}`;
    }
    if (
      limits.maxPendingBytes !== undefined &&
      backlog.count > 0 &&
      backlog.bytes + bytes > limits.maxPendingBytes
    ) {
      return `the device's undelivered messages would take ${backlog.bytes + bytes} bytes; the limit is ${limits.maxPendingBytes}`;
    }
    return undefined;
  }

  /** Reads a stream's backlog after `cursor` from the database, unless `cached` is still exact. */
  private read(stream: string, cursor: number, cached: Backlog | undefined): Backlog {
    if (cached?.base === cursor && cached.sweeps === this.sweeps) return cached;
    const backlog = {
      base: cursor,
      count: this.stmts.storedAfter.get(stream, cursor) ?? 0,
      bytes: this.stmts.bytesAfter.get(stream, cursor) ?? 0,
      sweeps: this.sweeps,
    };
    this.backlogs.delete(stream);
    if (this.backlogs.size >= this.cacheSize) this.backlogs.delete(this.backlogs.keys().next().value!);
    this.backlogs.set(stream, backlog);
    return backlog;
  }
}
