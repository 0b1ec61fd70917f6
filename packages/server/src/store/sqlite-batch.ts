import { deviceStream, topicStream } from '@pushwire/protocol';
import type { HeadCache, HeadRollback } from './sqlite-cache.js';
import type { FormedBatch } from './sqlite-commit.js';
import type { SqlitePublishLimits } from './sqlite-limits.js';
import type { InFlight, Queued, QueuedPublish } from './sqlite-queue.js';
import type { PublishWrites, WriteBatch } from './sqlite-writer.js';
import type { NewEntry, PublishRecord, PublishResult, StoredEntry } from './types.js';

/**
 * Forms the SQLite store's batches for the group commit: checks each publish against its quotas,
 * gives its entries their seqs (one past each stream's head, in queue order) and flattens it for
 * the writer thread; other writes get the heads they need. Internal to sqlite.ts.
 */
export class SqliteBatchFormer {
  constructor(
    private readonly heads: HeadCache,
    private readonly limits: SqlitePublishLimits,
    private readonly clock: () => number,
    /** A device's acknowledged cursor on its own stream, pending acks included. */
    private readonly cursorOn: (stream: string) => number,
  ) {}

  /** Forms the batch of `items` for the group commit: quotas checked, seqs assigned in queue order. */
  form(items: Queued[]): FormedBatch {
    const rollback: HeadRollback = new Map();
    const results: InFlight['results'] = new Array(items.length);
    const writes: PublishWrites = [];
    const ops: WriteBatch['ops'] = [];
    let publishes = 0;
    let durable = false;
    for (let i = 0; i < items.length; i++) {
      const { publish, op } = items[i]!;
      if (publish) {
        const refused = this.limits.refusal(publish, (stream) => this.heads.peek(stream), this.cursorOn);
        if (refused) {
          results[i] = refused;
          continue;
        }
        this.limits.capUnfollowed(publish);
        results[i] = this.assign(publish, rollback, writes);
        this.limits.appended(publish);
        publishes++;
        durable = true;
        continue;
      }
      const write = op.op;
      if (write.k === 'subscribe') write.head = this.heads.next(topicStream(write.topic), rollback, false);
      else if (write.k === 'deleteDevice')
        write.head = this.heads.next(deviceStream(write.id), rollback, false);
      if (write.k !== 'barrier') durable = true;
      ops.push([publishes, write]);
    }
    return { results, rollback, publishes, durable, writes, ops };
  }

  /** Gives a publish its seqs (one past each stream's head), adds it to `writes`, returns its result. */
  private assign(item: QueuedPublish, rollback: HeadRollback, writes: PublishWrites): PublishResult {
    const count = item.entries.length;
    const appended: StoredEntry[] = new Array(count);
    const entries: PublishRecord['entries'] = new Array(count);
    const ts = item.entries[0]?.ts ?? this.clock();
    let exp = item.entries[0]?.exp ?? ts;
    for (const entry of item.entries) if (entry.exp > exp) exp = entry.exp;
    writes.push(item.id, ts, exp, count);
    for (let i = 0; i < count; i++) {
      const entry = item.entries[i]!;
      const row = item.rows[i]!;
      const prevSeq = this.heads.next(entry.stream, rollback, true);
      const seq = prevSeq + 1;
      writes.push(
        row.stream,
        seq,
        row.id,
        row.data,
        row.notification,
        row.urgency,
        row.collapse_key,
        row.ts,
        row.exp,
      );
      appended[i] = storedEntry(entry, seq, prevSeq);
      entries[i] = { stream: entry.stream, seq };
    }
    return { record: { id: item.id, entries, ts, exp }, duplicate: false, appended };
  }
}

/** The stored form of an entry, its fields copied one by one (a spread of it costs more). */
function storedEntry(e: NewEntry, seq: number, prevSeq: number): StoredEntry {
  const s: StoredEntry = { id: e.id, stream: e.stream, ts: e.ts, exp: e.exp, seq, prevSeq };
  if (e.hold !== undefined) s.hold = e.hold;
  if (e.data !== undefined) s.data = e.data;
  if (e.notification !== undefined) s.notification = e.notification;
  if (e.urgency !== undefined) s.urgency = e.urgency;
  if (e.collapseKey !== undefined) s.collapseKey = e.collapseKey;
  return s;
}
