import { isDeviceStream, isTopicStream } from '@pushwire/protocol';
import type pg from 'pg';
import { QuotaError } from './errors.js';
import { fromPublishRow, type toEntryRow } from './rows.js';
import type { PublishRow } from './schema.js';
import type { NewEntry, PublishBatchItem, PublishRecord, PublishResult, StoredEntry } from './types.js';

/**
 * Group commit of the PostgreSQL store: the body of one transaction appending a batch of
 * publishes, in a fixed number of statements whatever the batch size (one fsync for all): lock
 * the streams (and create new ones), read device backlogs when bounded, then one statement writes
 * everything. With BEGIN and COMMIT, 4 round trips for a batch of existing streams.
 * @internal
 */

/** A publish waiting for its batch, in call order. */
export interface PendingPublish {
  item: PublishBatchItem;
  /** Serialised entries, in the order of `item.entries`. */
  rows: ReturnType<typeof toEntryRow>[];
  /** Publish time: the first entry's, or the clock's for a publish without entries. */
  ts: number;
}

/** What became of one publish of a batch. */
export type BatchOutcome =
  | { ok: PublishResult }
  /** Its id was published before (the lookup at the start of the batch found its record). */
  | { seen: PublishRecord }
  | { refused: QuotaError }
  /** Its id was taken by a publish committed meanwhile (elsewhere): answer that record. */
  | { taken: true }
  /** The same id appears earlier in this batch: answer as a duplicate of that one. */
  | { sameAs: number };

/**
 * Creates missing stream rows (a concurrent creator's row is waited for), in name order. A
 * separate statement from {@link LOCK}, whose snapshot must see rows committed meanwhile.
 */
const CREATE = `
INSERT INTO streams (name, head) SELECT n, 0 FROM unnest($1::text[]) AS u(n) ORDER BY n
ON CONFLICT (name) DO NOTHING`;

/** Locks every stream of the batch in name order (no deadlock between batches), reading its head. */
const LOCK = 'SELECT name, head FROM streams WHERE name = ANY($1::text[]) ORDER BY name FOR UPDATE';

/** Backlogs of device streams: stored entries after the device's cursor, and their bytes. */
const BACKLOGS = `
SELECT u.s AS stream, count(e.seq) AS n,
  coalesce(sum(coalesce(octet_length(e.data), 0) + coalesce(octet_length(e.notification), 0)), 0)::bigint AS bytes
FROM unnest($1::text[]) AS u(s)
LEFT JOIN cursors c ON c.device_id = substr(u.s, 3) AND c.stream = u.s
LEFT JOIN entries e ON e.stream = u.s AND e.seq > coalesce(c.seq, 0)
GROUP BY u.s`;

/**
 * Every write of a batch in one statement: publish records (returns the ids inserted; a taken id
 * is missing), entries (those a later entry of the batch collapses are written collapsed), older
 * entries collapsed by the batch's collapse keys (the statement's snapshot sees only entries from
 * before it), and the new heads.
 */
const WRITE = `
WITH r AS (
  INSERT INTO publishes (id, entries, ts, exp)
  SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::bigint[])
  ON CONFLICT (id) DO NOTHING RETURNING id
), e AS (
  INSERT INTO entries (stream, seq, id, data, notification, urgency, collapse_key, ts, exp, collapsed)
  SELECT * FROM unnest($5::text[], $6::bigint[], $7::text[], $8::text[], $9::text[], $10::text[], $11::text[],
    $12::bigint[], $13::bigint[], $14::boolean[])
), c AS (
  UPDATE entries SET collapsed = true, data = NULL, notification = NULL
  FROM (SELECT DISTINCT s, k FROM unnest($15::text[], $16::text[]) AS u(s, k)) m
  WHERE entries.stream = m.s AND entries.collapse_key = m.k AND NOT entries.collapsed
), h AS (
  UPDATE streams SET head = u.h FROM unnest($17::text[], $18::bigint[]) AS u(n, h) WHERE streams.name = u.n
)
SELECT id FROM r`;

/** Columns of the entries written: stream, seq, id, data, notification, urgency, collapse key, ts, exp, collapsed. */
type EntryColumns = [
  string[],
  number[],
  string[],
  (string | null)[],
  (string | null)[],
  (string | null)[],
  (string | null)[],
  number[],
  number[],
  boolean[],
];

/** Payload bytes of an entry as stored (JSON text of data and notification). */
const bytesOf = (row: PendingPublish['rows'][number]): number =>
  (row.data === null ? 0 : Buffer.byteLength(row.data)) +
  (row.notification === null ? 0 : Buffer.byteLength(row.notification));

/**
 * Appends a batch in the caller's transaction. Every stream of the batch is locked first, so the
 * heads read are final until COMMIT: seqs are assigned here, in batch order, gap-free. Publishes
 * refused by a backlog bound get no seq. When a publish record's id turns out taken (a concurrent
 * transaction committed it), returns `retry` with those publishes marked `taken`: the caller rolls
 * back and runs the batch again without them (assigned seqs would otherwise leave a hole).
 */
export async function appendBatch(
  client: pg.PoolClient,
  batch: PendingPublish[],
): Promise<{ outcomes: BatchOutcome[]; retry: boolean }> {
  const outcomes: BatchOutcome[] = new Array(batch.length);
  await lookUpSeen(client, batch, outcomes);
  const entries = await capUnfollowed(client, batch);
  const firstOf = new Map<string, number>();
  const streams = new Set<string>();
  const bounded = new Set<string>();
  batch.forEach((p, i) => {
    if (outcomes[i]) return;
    const first = firstOf.get(p.item.id);
    if (first !== undefined) {
      outcomes[i] = { sameAs: first };
      return;
    }
    firstOf.set(p.item.id, i);
    const limits = p.item.limits;
    const bounds = limits?.maxPending !== undefined || limits?.maxPendingBytes !== undefined;
    for (const row of p.rows) {
      streams.add(row.stream);
      if (bounds && isDeviceStream(row.stream)) bounded.add(row.stream);
    }
  });
  const names = [...streams].sort();
  const heads = new Map<string, number>();
  if (names.length > 0) {
    const lock = async () => {
      for (const r of (await client.query<{ name: string; head: number }>(LOCK, [names])).rows) {
        heads.set(r.name, r.head);
      }
    };
    await lock();
    // New streams: create their rows, then lock the lot again (in name order, from the start).
    if (heads.size < names.length) {
      await client.query(CREATE, [names]);
      await lock();
    }
  }
  const backlogs = new Map<string, { n: number; bytes: number }>();
  if (bounded.size > 0) {
    const r = await client.query<{ stream: string; n: number; bytes: number }>(BACKLOGS, [[...bounded]]);
    for (const b of r.rows) backlogs.set(b.stream, { n: b.n, bytes: b.bytes });
  }

  const rec: [string[], string[], number[], number[]] = [[], [], [], []];
  const ent: EntryColumns = [[], [], [], [], [], [], [], [], [], []];
  /** Index in `ent` of the newest entry of the batch per stream and collapse key. */
  const newest = new Map<string, number>();
  const col: [string[], string[]] = [[], []];
  const accepted: number[] = [];
  for (let i = 0; i < batch.length; i++) {
    if (outcomes[i]) continue;
    const p = batch[i]!;
    const pe = entries[i]!;
    const refused = refusal(p, heads, backlogs);
    if (refused) {
      outcomes[i] = { refused };
      continue;
    }
    const seqs = pe.rows.map((row) => {
      const seq = (heads.get(row.stream) ?? 0) + 1;
      heads.set(row.stream, seq);
      const backlog = backlogs.get(row.stream);
      if (backlog) {
        backlog.n++;
        backlog.bytes += bytesOf(row);
      }
      ent[0].push(row.stream);
      ent[1].push(seq);
      ent[2].push(row.id);
      ent[3].push(row.data);
      ent[4].push(row.notification);
      ent[5].push(row.urgency);
      ent[6].push(row.collapse_key);
      ent[7].push(row.ts);
      ent[8].push(row.exp);
      ent[9].push(false);
      if (row.collapse_key !== null) {
        const key = `${row.stream}\u0000${row.collapse_key}`;
        const older = newest.get(key);
        if (older === undefined) {
          col[0].push(row.stream);
          col[1].push(row.collapse_key);
        } else {
          ent[3][older] = null;
          ent[4][older] = null;
          ent[9][older] = true;
        }
        newest.set(key, ent[0].length - 1);
      }
      return seq;
    });
    const exp = pe.entries.reduce((max, e) => Math.max(max, e.exp), pe.entries[0]?.exp ?? p.ts);
    const record: PublishRecord = {
      id: p.item.id,
      entries: pe.rows.map((row, k) => ({ stream: row.stream, seq: seqs[k]! })),
      ts: p.ts,
      exp,
    };
    rec[0].push(record.id);
    rec[1].push(JSON.stringify(record.entries));
    rec[2].push(record.ts);
    rec[3].push(record.exp);
    const appended = pe.entries.map((e, k): StoredEntry => ({ ...e, seq: seqs[k]!, prevSeq: seqs[k]! - 1 }));
    outcomes[i] = { ok: { record, duplicate: false, appended } };
    accepted.push(i);
  }
  if (accepted.length === 0) return { outcomes, retry: false };

  const moved = names.filter((n) => heads.has(n));
  const written = await client.query<{ id: string }>(WRITE, [
    ...rec,
    ...ent,
    ...col,
    moved,
    moved.map((n) => heads.get(n)!),
  ]);
  const inserted = new Set(written.rows.map((r) => r.id));
  if (inserted.size < accepted.length) {
    for (const i of accepted) if (!inserted.has(batch[i]!.item.id)) outcomes[i] = { taken: true };
    return { outcomes, retry: true };
  }
  return { outcomes, retry: false };
}

/** Marks publishes whose id has a record already (ids chosen by publishers only). */
async function lookUpSeen(
  client: pg.PoolClient,
  batch: PendingPublish[],
  outcomes: BatchOutcome[],
): Promise<void> {
  const ids = [...new Set(batch.filter((p) => p.item.fresh !== true).map((p) => p.item.id))];
  if (ids.length === 0) return;
  const r = await client.query<PublishRow>(
    'SELECT id, entries, ts, exp FROM publishes WHERE id = ANY($1::text[])',
    [ids],
  );
  const seen = new Map(r.rows.map((row) => [row.id, fromPublishRow(row)]));
  batch.forEach((p, i) => {
    const record = seen.get(p.item.id);
    if (record) outcomes[i] = { seen: record };
  });
}

/**
 * Each publish's entries and rows, with the expiry of entries to topics nobody follows capped at
 * `ts + unfollowedTopicTtlMs` (one lookup for the batch). The caller's objects are not changed.
 */
async function capUnfollowed(
  client: pg.PoolClient,
  batch: PendingPublish[],
): Promise<{ entries: NewEntry[]; rows: PendingPublish['rows'] }[]> {
  const capped = (e: NewEntry, ttl: number | undefined) =>
    ttl !== undefined && isTopicStream(e.stream) && e.exp > e.ts + ttl;
  const topics = new Set<string>();
  for (const p of batch) {
    const ttl = p.item.limits?.unfollowedTopicTtlMs;
    for (const e of p.item.entries) if (capped(e, ttl)) topics.add(e.stream.slice(2));
  }
  const followed = new Set<string>();
  if (topics.size > 0) {
    const r = await client.query<{ topic: string }>(
      'SELECT DISTINCT topic FROM subscriptions WHERE topic = ANY($1::text[])',
      [[...topics]],
    );
    for (const row of r.rows) followed.add(row.topic);
  }
  return batch.map((p) => {
    const ttl = p.item.limits?.unfollowedTopicTtlMs;
    const entries = p.item.entries.map((e) =>
      capped(e, ttl) && !followed.has(e.stream.slice(2)) ? { ...e, exp: e.ts + ttl! } : e,
    );
    const rows = p.rows.map((row, k) =>
      entries[k] === p.item.entries[k] ? row : { ...row, exp: entries[k]!.exp },
    );
    return { entries, rows };
  });
}

/** Why a publish would pass a device's backlog bound, given the batch so far; undefined when it fits. */
function refusal(
  p: PendingPublish,
  heads: Map<string, number>,
  backlogs: Map<string, { n: number; bytes: number }>,
): QuotaError | undefined {
  const limits = p.item.limits;
  if (!limits) return undefined;
  for (const row of p.rows) {
    const b = backlogs.get(row.stream);
    if (!b || !heads.get(row.stream)) continue;
    if (limits.maxPending !== undefined && b.n >= limits.maxPending) {
      return new QuotaError(
        'DEVICE_BACKLOG_FULL',
        `the device has ${b.n} undelivered messages; the limit is ${limits.maxPending}`,
      );
    }
    const bytes = b.bytes + bytesOf(row);
    if (limits.maxPendingBytes !== undefined && b.n > 0 && bytes > limits.maxPendingBytes) {
      return new QuotaError(
        'DEVICE_BACKLOG_FULL',
        `the device's undelivered messages would take ${bytes} bytes; the limit is ${limits.maxPendingBytes}`,
      );
    }
  }
  return undefined;
}
