import { randomUUID } from 'node:crypto';
import { deviceOfStream } from '@pushwire/protocol';
import type { RedisClient } from './redis-client.js';
import { REGISTRY_SHARDS, type RedisKeys } from './redis-keys.js';

const SWEEP_LOCK_MS = 60_000;

/**
 * The Redis store's sweep: visits the streams of the sweep registry (non-empty streams only) and
 * runs the `pwSweep` script on each. One node sweeps at a time (a lock in Redis); another node's
 * call meanwhile returns 0.
 */
export async function sweepRegistry(redis: RedisClient, keys: RedisKeys, now: number): Promise<number> {
  const lock = keys.sweepLock();
  const token = randomUUID();
  if ((await redis.set(lock, token, 'PX', SWEEP_LOCK_MS, 'NX')) !== 'OK') return 0;
  try {
    let removed = 0;
    for (let shard = 0; shard < REGISTRY_SHARDS; shard++)
      removed += await sweepShard(redis, keys, shard, now);
    return removed;
  } finally {
    await redis.pwUnlock(lock, token).catch(() => {});
  }
}

async function sweepShard(redis: RedisClient, keys: RedisKeys, shard: number, now: number): Promise<number> {
  const registry = keys.registry(shard);
  let cursor = '0';
  let removed = 0;
  do {
    const [next, flat] = await redis.zscan(registry, cursor, 'COUNT', 256);
    cursor = next;
    const visits: Promise<number>[] = [];
    for (let i = 0; i + 1 < flat.length; i += 2) {
      visits.push(sweepStream(redis, keys, registry, flat[i]!, Number(flat[i + 1]), now));
    }
    for (const n of await Promise.all(visits)) removed += n;
  } while (cursor !== '0');
  return removed;
}

async function sweepStream(
  redis: RedisClient,
  keys: RedisKeys,
  registry: string,
  stream: string,
  score: number,
  now: number,
): Promise<number> {
  const k = keys.stream(stream);
  const device = deviceOfStream(stream);
  const own = device === undefined ? undefined : keys.device(device).cursors;
  const reply = (await redis.pwSweep(
    k.meta,
    k.entries,
    k.collapse,
    k.expiry,
    own ?? k.meta,
    now,
    own ? stream : '',
  )) as [number, number, number];
  const [removed, emptied, generation] = reply;
  // Only if no append re-registered the stream meanwhile (it would carry a newer generation).
  if (emptied === 1) await redis.pwUnregister(registry, stream, generation || score);
  return removed;
}
