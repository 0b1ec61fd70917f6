import { StoreError } from './errors.js';
import { fromEntryRow } from './rows.js';
import type { EntryRow } from './schema.js';
import type { PublishRecord, StoredEntry } from './types.js';

/**
 * How the Redis store encodes entries and publish records. An entry is a Redis Stream entry with id
 * `<seq>-0` and fields `p` prevSeq, `x` exp, `t` ts (written by the append script), `i` id, and,
 * when present, `d` data (JSON), `n` notification (JSON), `u` urgency, `c` collapse key.
 */

/** An entry serialised for appending (no seq yet). */
export type PendingRow = Omit<EntryRow, 'seq' | 'prev_seq'>;

/**
 * A publish record as stored: pending (holding its entries, so a retry can finish it) until every
 * stream has its entry, then done (the seqs only).
 */
export type StoredPublish =
  | { s: 'p'; id: string; ts: number; exp: number; rows: PendingRow[] }
  | { s: 'd'; id: string; ts: number; exp: number; entries: PublishRecord['entries'] };

/** Field/value pairs of an entry, after the ones the append script writes. */
export function entryFields(row: PendingRow): string[] {
  const fields = ['i', row.id];
  if (row.data !== null) fields.push('d', row.data);
  if (row.notification !== null) fields.push('n', row.notification);
  if (row.urgency !== null) fields.push('u', row.urgency);
  if (row.collapse_key !== null) fields.push('c', row.collapse_key);
  return fields;
}

/** Exclusive XRANGE start after a seq. */
export function startAfter(seq: number): string {
  const n = Number.isFinite(seq) ? Math.min(Math.max(0, Math.floor(seq)), Number.MAX_SAFE_INTEGER) : 0;
  return `(${n}-0`;
}

export function parseEntry(stream: string, id: string, fields: string[]): StoredEntry {
  const f = new Map<string, string>();
  for (let i = 0; i + 1 < fields.length; i += 2) f.set(fields[i]!, fields[i + 1]!);
  return fromEntryRow({
    stream,
    seq: Number(id.slice(0, id.indexOf('-'))),
    prev_seq: Number(f.get('p')),
    id: f.get('i') ?? '',
    data: f.get('d') ?? null,
    notification: f.get('n') ?? null,
    urgency: f.get('u') ?? null,
    collapse_key: f.get('c') ?? null,
    ts: Number(f.get('t')),
    exp: Number(f.get('x')),
  });
}

export function parseStored(raw: string): StoredPublish {
  try {
    return JSON.parse(raw) as StoredPublish;
  } catch (err) {
    throw new StoreError('STORE_IO', 'corrupt publish record in Redis', { cause: err });
  }
}

export function recordOf(stored: StoredPublish, entries: PublishRecord['entries']): PublishRecord {
  return {
    id: stored.id,
    entries: entries.map(({ stream, seq }) => ({ stream, seq })),
    ts: stored.ts,
    exp: stored.exp,
  };
}
