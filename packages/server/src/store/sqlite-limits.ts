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
 * The SQLite store's publish bounds ({@link PublishLimits}), checked on the main thread as a batch
 * is formed, where stream heads are known.
 *
 * Backlog of a device stream = head − base, base = the higher of the device's acknowledged cursor
 * and the seq before the oldest entry still stored: one cached head, one primary-key lookup each
 * for the cursor and the oldest entry. Bytes after the base are summed once by SQL and cached per
 * stream while the base stays put (an offline device: the case this bound exists for); each
 * accepted entry adds its bytes. Entries of the batch being committed when the sum was taken are
 * missed, so the bound can be passed by at most one batch.
 */
export class SqlitePublishLimits {
  /** Per device stream: the base the byte sum was taken at, and the bytes after it. */
  private readonly bytes = new Map<string, { base: number; bytes: number }>();

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
      const stream = item.rows[i]!.stream;
      if (!stream.startsWith('d:')) continue;
      const h = head(stream);
      if (h === 0) continue;
      const base = this.baseOf(stream, h, cursor(stream));
      if (limits.maxPending !== undefined && h - base >= limits.maxPending) {
        return new QuotaError(
          'DEVICE_BACKLOG_FULL',
          `the device has ${h - base} undelivered messages; the limit is ${limits.maxPending}`,
        );
      }
      if (limits.maxPendingBytes !== undefined) {
        const pending = this.bytesAfter(stream, base) + rowBytes(item.rows[i]!);
        if (pending > limits.maxPendingBytes) {
          return new QuotaError(
            'DEVICE_BACKLOG_FULL',
            `the device's undelivered messages would take ${pending} bytes; the limit is ${limits.maxPendingBytes}`,
          );
        }
      }
    }
    return undefined;
  }

  /** Counts an appended publish's bytes into the cached sums of its device streams. */
  appended(item: Pending): void {
    if (item.limits?.maxPendingBytes === undefined) return;
    for (const row of item.rows) {
      const cached = this.bytes.get(row.stream);
      if (cached) cached.bytes += rowBytes(row);
    }
  }

  /** Forgets a stream's byte sum (its device was deleted). */
  forget(stream: string): void {
    this.bytes.delete(stream);
  }

  private baseOf(stream: string, head: number, cursor: number): number {
    if (head - cursor <= 0) return head;
    const floor = this.stmts.floorOf.get(stream);
    const stored =
      floor === null || floor === undefined ? (this.stmts.savedHead.get(stream) ?? 0) : floor - 1;
    return Math.max(cursor, Math.min(stored, head));
  }

  private bytesAfter(stream: string, base: number): number {
    const cached = this.bytes.get(stream);
    if (cached?.base === base) return cached.bytes;
    const bytes = this.stmts.bytesAfter.get(stream, base) ?? 0;
    this.bytes.delete(stream);
    if (this.bytes.size >= this.cacheSize) this.bytes.delete(this.bytes.keys().next().value!);
    this.bytes.set(stream, { base, bytes });
    return bytes;
  }
}
