import { isDeviceStream, isTopicStream } from '@pushwire/protocol';
import { backlogError } from './redis-append.js';
import type { RedisClient } from './redis-client.js';
import { entryFields, parseStored, recordOf } from './redis-codec.js';
import type { RedisKeys } from './redis-keys.js';
import { completePending } from './redis-publish.js';
import { toEntryRow } from './rows.js';
import type { PublishBatchItem, PublishResult, StoredEntry } from './types.js';

/**
 * A publish on one Redis server (not Cluster) as one script call, `pwPublish` (redis-lua-append.ts):
 * claim, backlog checks, appends, sweep registry and the done record, atomically. Concurrent
 * publishes share round trips through the client's auto-pipelining: a batch of messages published
 * at once goes out as one write and comes back as one read. An id whose record is still pending
 * (left by a node on the cross-slot path, see redis-publish.ts) is finished on that path.
 */
export async function publishInOneCall(
  redis: RedisClient,
  keys: RedisKeys,
  retentionMs: number,
  clock: () => number,
  item: PublishBatchItem,
): Promise<PublishResult> {
  const { entries, limits } = item;
  const ttl = limits?.unfollowedTopicTtlMs;
  const bounded = limits?.maxPending !== undefined || limits?.maxPendingBytes !== undefined;
  const ts = entries[0]?.ts ?? clock();
  const keyArgs: string[] = [keys.publish(item.id)];
  const args: (string | number)[] = [
    retentionMs,
    item.id,
    ts,
    limits?.maxPending ?? 0,
    limits?.maxPendingBytes ?? 0,
  ];
  const capped: number[] = [];
  for (const entry of entries) {
    const row = toEntryRow(entry);
    const k = keys.stream(row.stream);
    const own = bounded && isDeviceStream(row.stream);
    const cap = ttl !== undefined && isTopicStream(row.stream) && row.exp > row.ts + ttl ? row.ts + ttl : -1;
    capped.push(cap);
    keyArgs.push(
      k.meta,
      k.entries,
      k.collapse,
      k.expiry,
      k.marker(item.id),
      own ? keys.device(row.stream.slice(2)).cursors : k.meta,
      cap >= 0 ? k.followers : k.meta,
      keys.registryOf(row.stream),
    );
    const fields = entryFields(row);
    const bytes =
      (row.data === null ? 0 : Buffer.byteLength(row.data)) +
      (row.notification === null ? 0 : Buffer.byteLength(row.notification));
    args.push(
      row.stream,
      row.exp,
      cap >= 0 ? cap : '',
      row.ts,
      row.collapse_key ?? '',
      own ? row.stream : '',
      bytes,
      fields.length,
      ...fields,
    );
  }
  const reply = (await redis.pwPublish(keyArgs.length, ...keyArgs, ...args)) as (number | string)[];
  const status = Number(reply[0]);
  if (status < 0) throw backlogError(status, Number(reply[1]), limits);
  if (status === 1) {
    const stored = parseStored(String(reply[1]));
    if (stored.s === 'd') return { record: recordOf(stored, stored.entries), duplicate: true, appended: [] };
    return completePending(redis, keys, retentionMs, stored, limits);
  }
  const written = entries.map((e, i) => ({
    entry: capped[i]! >= 0 && reply[3 + 3 * i] === 1 ? { ...e, exp: capped[i]! } : e,
    seq: Number(reply[1 + 3 * i]),
    appended: reply[2 + 3 * i] === 1,
  }));
  const exp = written.reduce((max, w, i) => (i === 0 ? w.entry.exp : Math.max(max, w.entry.exp)), ts);
  const record = {
    id: item.id,
    entries: written.map((w) => ({ stream: w.entry.stream, seq: w.seq })),
    ts,
    exp,
  };
  const appended = written.flatMap((w): StoredEntry[] =>
    w.appended ? [{ ...w.entry, seq: w.seq, prevSeq: w.seq - 1 }] : [],
  );
  return { record, duplicate: false, appended };
}
