import { deviceStream } from '@pushwire/protocol';
import type Database from 'better-sqlite3';
import { fromEntryRow } from './rows.js';
import type { EntryRow } from './schema.js';
import type { EntryFate, StoredEntry } from './types.js';

/**
 * Acks of a message that arrive this long after its expiry still count as a delivery: the entry
 * was sent before it expired and the ack was in flight. Past it, an ack covering the entry is a
 * cursor moving over an entry that was skipped.
 */
const ACK_GRACE_MS = 10_000;

/**
 * The SQLite store's delivery log (the `deliveries` table, schema version 2): when each device
 * acknowledged each message of its own stream, and the queries behind the publishers' delivery
 * status. Writes run inside the store's group commit; reads are single indexed lookups.
 * @internal
 */
export class SqliteDeliveryLog {
  private readonly stmts;

  constructor(db: Database.Database) {
    const s = <P extends unknown[] | object = unknown[], R = unknown>(sql: string) => db.prepare<P, R>(sql);
    this.stmts = {
      /**
       * Every deliverable entry a cursor advance covers (past the stored cursor, up to the ack):
       * not collapsed, not long expired. One statement per ack, the cursor read included.
       */
      record: s<[{ device: string; stream: string; to: number; now: number; grace: number }]>(
        `INSERT OR IGNORE INTO deliveries (device_id, seq, acked_at)
          SELECT @device, seq, @now FROM entries
          WHERE stream = @stream AND seq <= @to AND collapsed = 0 AND (exp > @now - @grace OR exp <= ts)
            AND seq > coalesce((SELECT seq FROM cursors WHERE device_id = @device AND stream = @stream), 0)`,
      ),
      ackedAt: s<[string, number], number>(
        'SELECT acked_at FROM deliveries WHERE device_id = ? AND seq = ?',
      ).pluck(),
      entry: s<[string, number], { id: string; collapsed: number; collapse_key: string | null }>(
        'SELECT id, collapsed, collapse_key FROM entries WHERE stream = ? AND seq = ?',
      ),
      replacement: s<[string, string, number], { id: string; seq: number; ts: number }>(
        `SELECT id, seq, ts FROM entries WHERE stream = ? AND collapse_key = ? AND seq > ?
          ORDER BY seq LIMIT 1`,
      ),
      deviceExists: s<[string], number>('SELECT 1 FROM devices WHERE id = ?').pluck(),
      topicProgress: s<
        [{ topic: string; stream: string; seq: number }],
        { atOrPast: number; behind: number }
      >(
        `SELECT coalesce(sum(c.seq >= @seq), 0) AS atOrPast, coalesce(sum(coalesce(c.seq, 0) < @seq), 0) AS behind
          FROM subscriptions s LEFT JOIN cursors c ON c.device_id = s.device_id AND c.stream = @stream
          WHERE s.topic = @topic`,
      ),
      recent: s<[string, number], EntryRow>(
        `SELECT stream, seq, prev_seq, id, data, notification, urgency, collapse_key, ts, exp
          FROM entries WHERE stream = ? ORDER BY seq DESC LIMIT ?`,
      ),
      /** Rows are appended in time order: delete the prefix acknowledged before the cut-off. */
      sweep: s<[number]>(
        `DELETE FROM deliveries WHERE rowid < coalesce(
          (SELECT rowid FROM deliveries WHERE acked_at >= ? ORDER BY rowid LIMIT 1),
          (SELECT max(rowid) + 1 FROM deliveries))`,
      ),
    };
  }

  /**
   * Records the messages a device's own-stream cursor advance acknowledges. Call inside the
   * transaction, before the cursor itself is moved.
   */
  recordAck(device: string, stream: string, seq: number, now: number): void {
    if (stream !== deviceStream(device)) return;
    this.stmts.record.run({ device, stream, to: seq, now, grace: ACK_GRACE_MS });
  }

  /** What is known of entry `seq` of `stream`. */
  fate(stream: string, seq: number, cursors: Record<string, number>): EntryFate {
    const row = this.stmts.entry.get(stream, seq);
    const fate: EntryFate = { entry: row === undefined ? 'gone' : row.collapsed ? 'collapsed' : 'stored' };
    if (row?.collapsed && row.collapse_key !== null) {
      const by = this.stmts.replacement.get(stream, row.collapse_key, seq);
      if (by) fate.collapsedBy = by;
    }
    if (stream.startsWith('d:')) {
      const device = stream.slice(2);
      if (this.stmts.deviceExists.get(device)) fate.cursor = cursors[stream] ?? 0;
      const ackedAt = this.stmts.ackedAt.get(device, seq);
      if (ackedAt !== undefined) fate.ackedAt = ackedAt;
    } else if (stream.startsWith('t:')) {
      fate.subscribers = this.stmts.topicProgress.get({ topic: stream.slice(2), stream, seq })!;
    }
    return fate;
  }

  /** The newest entries still stored in a stream, newest first. */
  recent(stream: string, limit: number): StoredEntry[] {
    return this.stmts.recent.all(stream, limit).map(fromEntryRow);
  }

  /** Forgets deliveries acknowledged before `before`; returns how many. */
  sweep(before: number): number {
    return this.stmts.sweep.run(before).changes;
  }
}
