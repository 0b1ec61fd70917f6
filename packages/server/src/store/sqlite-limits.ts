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

/** What is known of a device stream's backlog: a lower bound of its base, and the bytes after it. */
interface Backlog {
  base: number;
  bytes: number;
}

/**
 * The SQLite store's publish bounds ({@link PublishLimits}), checked on the main thread as a batch
 * is formed, where stream heads are known.
 *
 * Backlog of a device stream = head − base, base = the higher of the device's acknowledged cursor
 * and the seq before the oldest entry still stored; its bytes are those of the entries after the
 * base. Both are cached per stream: the base only moves forward (cursors never go back, the sweep
 * only removes the oldest), so a cached base is a lower bound and a check that passes with it
 * passes with the true one; each accepted entry adds its bytes. Only a check that fails on the
 * cache reads the truth (a primary-key lookup each for the cursor and the oldest entry, one
 * indexed sum of the bytes after the base): once per stream, then about once per bound's worth
 * of traffic. Entries of the batch being committed when the sum is taken are not in it, so the
 * bytes bound can be passed by at most one batch.
 */
export class SqlitePublishLimits {
  private readonly backlogs = new Map<string, Backlog>();

  constructor(
    private readonly stmts: Statements,
    private readonly cacheSize: number,
  ) {}

  /**
   * Caps the expiry of entries to topics nobody follows (rows and entries alike), before the
   * publish is assigned seqs.
   */
  capUnfollowed(item: Pending): void {
    const ttl = item.limits?.unfollowedTopicTtlMs;
    if (ttl === undefined) return;
    for (let i = 0; i < item.entries.length; i++) {
      const entry = item.entries[i]!;
      if (!entry.stream.startsWith('t:') || entry.exp <= entry.ts + ttl) continue;
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
      if (!row.stream.startsWith('d:')) continue;
      const h = head(row.stream);
      const bytes = rowBytes(row);
      let backlog = this.backlogs.get(row.stream);
      if (backlog && this.excess(limits, backlog, h, bytes) === undefined) continue;
      backlog = this.read(row.stream, h, cursor(row.stream));
      const excess = this.excess(limits, backlog, h, bytes);
      if (excess !== undefined) return new QuotaError('DEVICE_BACKLOG_FULL', excess);
    }
    return undefined;
  }

  /** Counts an appended publish's bytes into the cached backlogs of its device streams. */
  appended(item: Pending): void {
    for (const row of item.rows) {
      const backlog = this.backlogs.get(row.stream);
      if (backlog) backlog.bytes += rowBytes(row);
    }
  }

  /** Forgets a stream's backlog (its device was deleted). */
  forget(stream: string): void {
    this.backlogs.delete(stream);
  }

  /** Why one more entry of `bytes` would pass a bound, or undefined. */
  private excess(limits: PublishLimits, backlog: Backlog, head: number, bytes: number): string | undefined {
    const pending = head - backlog.base;
    if (limits.maxPending !== undefined && pending >= limits.maxPending) {
      return `the device has ${pending} undelivered messages; the limit is ${limits.maxPending}`;
    }
    if (
      limits.maxPendingBytes !== undefined &&
      pending > 0 &&
      backlog.bytes + bytes > limits.maxPendingBytes
    ) {
      return `the device's undelivered messages would take ${backlog.bytes + bytes} bytes; the limit is ${limits.maxPendingBytes}`;
    }
    return undefined;
  }

  /** Reads a stream's backlog from the database and caches it. */
  private read(stream: string, head: number, cursor: number): Backlog {
    let base = head;
    if (cursor < head) {
      const floor = this.stmts.floorOf.get(stream);
      const stored =
        floor === null || floor === undefined ? (this.stmts.savedHead.get(stream) ?? 0) : floor - 1;
      base = Math.max(cursor, Math.min(stored, head));
    }
    const backlog = { base, bytes: base < head ? (this.stmts.bytesAfter.get(stream, base) ?? 0) : 0 };
    this.backlogs.delete(stream);
    if (this.backlogs.size >= this.cacheSize) this.backlogs.delete(this.backlogs.keys().next().value!);
    this.backlogs.set(stream, backlog);
    return backlog;
  }
}
