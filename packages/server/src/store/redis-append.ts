import { isDeviceStream, isTopicStream } from '@pushwire/protocol';
import { QuotaError } from './errors.js';
import type { RedisClient } from './redis-client.js';
import { entryFields, type PendingRow } from './redis-codec.js';
import type { RedisKeys } from './redis-keys.js';
import type { PublishBatchItem, PublishLimits } from './types.js';

/** One stream's part of a publish: its seq, and whether this call appended it. */
export interface Appended {
  stream: string;
  seq: number;
  appended: boolean;
}

/** Entries with the expiry of those to topics nobody follows capped at `ts + ttl`. */
export async function capUnfollowed(
  redis: RedisClient,
  keys: RedisKeys,
  entries: PublishBatchItem['entries'],
  ttl: number,
): Promise<PublishBatchItem['entries']> {
  return Promise.all(
    entries.map(async (e) =>
      isTopicStream(e.stream) &&
      e.exp > e.ts + ttl &&
      (await redis.scard(keys.stream(e.stream).followers)) === 0
        ? { ...e, exp: e.ts + ttl }
        : e,
    ),
  );
}

/**
 * Appends one entry to its stream (the `pwAppend` script), once per publish id; refuses it with
 * `DEVICE_BACKLOG_FULL` when a device stream's backlog bound is met (nothing written).
 */
export async function appendEntry(
  redis: RedisClient,
  keys: RedisKeys,
  retentionMs: number,
  id: string,
  row: PendingRow,
  limits?: PublishLimits,
): Promise<Appended> {
  const k = keys.stream(row.stream);
  const own =
    isDeviceStream(row.stream) && (limits?.maxPending !== undefined || limits?.maxPendingBytes !== undefined);
  const bytes =
    (row.data === null ? 0 : Buffer.byteLength(row.data)) +
    (row.notification === null ? 0 : Buffer.byteLength(row.notification));
  const reply = (await redis.pwAppend(
    k.meta,
    k.entries,
    k.collapse,
    k.expiry,
    k.marker(id),
    own ? keys.device(row.stream.slice(2)).cursors : k.meta,
    retentionMs,
    row.exp,
    row.ts,
    row.collapse_key ?? '',
    own ? row.stream : '',
    limits?.maxPending ?? 0,
    limits?.maxPendingBytes ?? 0,
    bytes,
    ...entryFields(row),
  )) as [number, number, number, number];
  const [seq, appended, generation, fresh] = reply;
  if (seq < 0) throw backlogError(seq, appended, limits);
  // A stream that just became non-empty enters the sweep registry; a retry re-enters it too, in
  // case the first writer died before doing so.
  if (generation > 0 && (fresh === 1 || appended === 0)) {
    await redis.zadd(keys.registryOf(row.stream), generation, row.stream);
  }
  return { stream: row.stream, seq, appended: appended === 1 };
}

/** The error of a refused append: `status` -1 (entries, `n` pending) or -2 (bytes, `n` bytes). */
export function backlogError(status: number, n: number, limits?: PublishLimits): QuotaError {
  return status === -1
    ? new QuotaError(
        'DEVICE_BACKLOG_FULL',
        `the device has ${n} undelivered messages; the limit is ${limits?.maxPending}`,
      )
    : new QuotaError(
        'DEVICE_BACKLOG_FULL',
        `the device's undelivered messages would take ${n} bytes; the limit is ${limits?.maxPendingBytes}`,
      );
}
