import { type Appended, appendEntry, capUnfollowed } from './redis-append.js';
import type { RedisClient } from './redis-client.js';
import { parseStored, recordOf, type StoredPublish } from './redis-codec.js';
import type { RedisKeys } from './redis-keys.js';
import { fromEntryRow, toEntryRow } from './rows.js';
import type { PublishBatchItem, PublishLimits, PublishResult, StoredEntry } from './types.js';

/**
 * A publish on Redis Cluster, across slots (see the atomicity notes in redis.ts): claims the id,
 * appends to each stream idempotently, then marks the record done; a duplicate gets the first
 * record, or completes the first writer's publish when it is still pending.
 */
export async function publishOn(
  redis: RedisClient,
  keys: RedisKeys,
  retentionMs: number,
  clock: () => number,
  item: PublishBatchItem,
): Promise<PublishResult> {
  const ttl = item.limits?.unfollowedTopicTtlMs;
  const entries = ttl === undefined ? item.entries : await capUnfollowed(redis, keys, item.entries, ttl);
  const rows = entries.map(toEntryRow);
  const ts = entries[0]?.ts ?? clock();
  const exp = entries.reduce((max, e) => Math.max(max, e.exp), entries[0]?.exp ?? ts);
  const pending: StoredPublish = { s: 'p', id: item.id, ts, exp, rows };
  const prior = await redis.pwClaim(keys.publish(item.id), JSON.stringify(pending), retentionMs);
  if (prior === null) {
    const done = await complete(redis, keys, retentionMs, pending, item.limits);
    // A concurrent retry on another node may have appended some of them first: it reports those.
    const appended = done.flatMap((a, i): StoredEntry[] =>
      a.appended ? [{ ...entries[i]!, seq: a.seq, prevSeq: a.seq - 1 }] : [],
    );
    return { record: recordOf(pending, done), duplicate: false, appended };
  }
  const stored = parseStored(String(prior));
  if (stored.s === 'd') return { record: recordOf(stored, stored.entries), duplicate: true, appended: [] };
  return completePending(redis, keys, retentionMs, stored, item.limits);
}

/** Finishes a pending publish (the first writer is still at it, or died mid-way), idempotently. */
export async function completePending(
  redis: RedisClient,
  keys: RedisKeys,
  retentionMs: number,
  stored: Extract<StoredPublish, { s: 'p' }>,
  limits?: PublishLimits,
): Promise<PublishResult> {
  const done = await complete(redis, keys, retentionMs, stored, limits);
  const appended = done.flatMap((a, i) =>
    a.appended ? [fromEntryRow({ ...stored.rows[i]!, seq: a.seq, prev_seq: a.seq - 1 })] : [],
  );
  return { record: recordOf(stored, done), duplicate: true, appended };
}

/**
 * Appends a claimed publish to each of its streams, then marks its record done. A stream whose
 * backlog bound refuses the entry fails the publish with `DEVICE_BACKLOG_FULL`; entries already
 * appended to other streams stay (like a publish cut off by a crash), and its claim is released
 * when nothing was appended, so it can be retried with its id later.
 */
async function complete(
  redis: RedisClient,
  keys: RedisKeys,
  retentionMs: number,
  stored: Extract<StoredPublish, { s: 'p' }>,
  limits?: PublishLimits,
): Promise<Appended[]> {
  const results = await Promise.allSettled(
    stored.rows.map((row) => appendEntry(redis, keys, retentionMs, stored.id, row, limits)),
  );
  const refused = results.find((r) => r.status === 'rejected');
  if (refused) {
    if (results.every((r) => r.status === 'rejected' || !r.value.appended)) {
      await redis.del(keys.publish(stored.id));
    }
    throw refused.reason;
  }
  const done = results.map((r) => (r as PromiseFulfilledResult<Appended>).value);
  const record: StoredPublish = {
    s: 'd',
    id: stored.id,
    ts: stored.ts,
    exp: stored.exp,
    entries: done.map(({ stream, seq }) => ({ stream, seq })),
  };
  await redis.set(keys.publish(stored.id), JSON.stringify(record), 'KEEPTTL', 'XX');
  return done;
}
