import type pg from 'pg';
import { QuotaError } from './errors.js';
import { toEntryRow } from './rows.js';
import type { NewEntry, PublishBatchItem, PublishLimits, PublishRecord, StoredEntry } from './types.js';

/**
 * The publish transaction of the PostgreSQL store (one call = one transaction's body).
 * @internal
 */

/**
 * Appends one entry: takes the next seq from the stream's row (its lock is held until COMMIT, so
 * appends to one stream are serialised and seqs are gap-free, committed in order), marks older
 * entries with its collapse key collapsed, and inserts it. One round trip.
 * $1 stream, $2 id, $3 data, $4 notification, $5 urgency, $6 collapse key, $7 ts, $8 exp.
 */
const APPEND = `
WITH h AS (
  INSERT INTO streams (name, head) VALUES ($1, 1)
  ON CONFLICT (name) DO UPDATE SET head = streams.head + 1
  RETURNING head
), c AS (
  UPDATE entries SET collapsed = true, data = NULL, notification = NULL
  WHERE $6::text IS NOT NULL AND stream = $1 AND collapse_key = $6 AND NOT collapsed
)
INSERT INTO entries (stream, seq, id, data, notification, urgency, collapse_key, ts, exp)
SELECT $1, head, $2, $3, $4, $5, $6, $7, $8 FROM h
RETURNING seq`;

/**
 * A device stream's backlog, its row locked first (so no append to it can run in between):
 * entries stored after the device's acknowledged cursor, and their payload bytes. $1 stream, $2 device.
 */
const BACKLOG = `
WITH h AS (SELECT head FROM streams WHERE name = $1 FOR UPDATE),
cur AS (SELECT coalesce((SELECT seq FROM cursors WHERE device_id = $2 AND stream = $1), 0) AS seq)
SELECT (SELECT head FROM h) AS head, count(e.seq) AS n,
  coalesce(sum(coalesce(octet_length(e.data), 0) + coalesce(octet_length(e.notification), 0)), 0)::bigint AS bytes
FROM cur LEFT JOIN entries e ON e.stream = $1 AND e.seq > cur.seq`;

/** Inserts the publish record; nothing when the id is taken (the caller then rolls back). */
const RECORD = `INSERT INTO publishes (id, entries, ts, exp) VALUES ($1, $2, $3, $4)
ON CONFLICT (id) DO NOTHING RETURNING id`;

/** Whether anyone follows a topic. */
export const FOLLOWED = 'SELECT EXISTS (SELECT 1 FROM subscriptions WHERE topic = $1) AS followed';

/** Payload bytes of an entry as stored (JSON text of data and notification). */
const bytesOf = (row: ReturnType<typeof toEntryRow>): number =>
  (row.data === null ? 0 : Buffer.byteLength(row.data)) +
  (row.notification === null ? 0 : Buffer.byteLength(row.notification));

/** Checks a device stream's backlog bounds before an entry of `bytes` joins it; throws QuotaError. */
async function checkBacklog(
  client: pg.PoolClient,
  stream: string,
  limits: PublishLimits,
  bytes: number,
): Promise<void> {
  const r = (
    await client.query<{ head: number | null; n: number; bytes: number }>(BACKLOG, [stream, stream.slice(2)])
  ).rows[0]!;
  if (!r.head) return;
  if (limits.maxPending !== undefined && r.n >= limits.maxPending) {
    throw new QuotaError(
      'DEVICE_BACKLOG_FULL',
      `the device has ${r.n} undelivered messages; the limit is ${limits.maxPending}`,
    );
  }
  if (limits.maxPendingBytes !== undefined && r.n > 0 && r.bytes + bytes > limits.maxPendingBytes) {
    throw new QuotaError(
      'DEVICE_BACKLOG_FULL',
      `the device's undelivered messages would take ${r.bytes + bytes} bytes; the limit is ${limits.maxPendingBytes}`,
    );
  }
}

/** Outcome of {@link appendPublish}: the record and appended entries, or `taken` when the id exists. */
export type AppendOutcome =
  | { taken: false; record: PublishRecord; appended: StoredEntry[] }
  | { taken: true };

/**
 * Appends every entry of a publish and inserts its record, in the caller's transaction. Streams are
 * locked in name order, so concurrent publishes to overlapping streams cannot deadlock. When the
 * id's record exists (a concurrent publish committed it first), returns `taken`: the caller rolls
 * back, and nothing of this attempt remains.
 */
export async function appendPublish(
  client: pg.PoolClient,
  item: PublishBatchItem,
  entries: NewEntry[],
  ts: number,
): Promise<AppendOutcome> {
  const rows = entries.map(toEntryRow);
  const exp = entries.reduce((max, e) => Math.max(max, e.exp), entries[0]?.exp ?? ts);
  const order = rows.map((_, i) => i).sort((a, b) => (rows[a]!.stream < rows[b]!.stream ? -1 : 1));
  const seqs: number[] = new Array(rows.length);
  const limits = item.limits;
  const bounded = limits?.maxPending !== undefined || limits?.maxPendingBytes !== undefined;
  for (const i of order) {
    const row = rows[i]!;
    if (bounded && row.stream.startsWith('d:')) await checkBacklog(client, row.stream, limits!, bytesOf(row));
    const r = await client.query<{ seq: number }>(APPEND, [
      row.stream,
      row.id,
      row.data,
      row.notification,
      row.urgency,
      row.collapse_key,
      row.ts,
      row.exp,
    ]);
    seqs[i] = r.rows[0]!.seq;
  }
  const record: PublishRecord = {
    id: item.id,
    entries: rows.map((row, i) => ({ stream: row.stream, seq: seqs[i]! })),
    ts,
    exp,
  };
  const inserted = await client.query(RECORD, [item.id, JSON.stringify(record.entries), ts, exp]);
  if (inserted.rowCount === 0) return { taken: true };
  const appended = entries.map((e, i): StoredEntry => ({ ...e, seq: seqs[i]!, prevSeq: seqs[i]! - 1 }));
  return { taken: false, record, appended };
}
