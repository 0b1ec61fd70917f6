import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type RedisServer, startRedis } from '../../../../test/helpers/redis.js';
import { QuotaError } from './errors.js';
import { RedisStore } from './redis.js';
import { RedisKeys } from './redis-keys.js';
import type { NewEntry, PublishBatchItem } from './types.js';

/** The publish path on one Redis server: one script call per publish, pipelined across publishes. */

const T = 1_700_000_000_000;
const HOUR = 60 * 60 * 1000;

const entry = (id: string, stream: string, extra: Partial<NewEntry> = {}): NewEntry => ({
  id,
  stream,
  ts: T,
  exp: T + HOUR,
  data: { id },
  ...extra,
});
const to = (id: string, streams: string[], limits?: PublishBatchItem['limits']): PublishBatchItem => ({
  id,
  entries: streams.map((s) => entry(id, s)),
  ...(limits && { limits }),
});

/** Commands Redis ran at top level (scripts counted once, not their inner calls) and reads it served. */
async function counters(raw: Redis): Promise<{ scripts: number; commands: number; reads: number }> {
  const info = await raw.info('all');
  const calls = (name: string) => Number(new RegExp(`cmdstat_${name}:calls=(\\d+)`).exec(info)?.[1] ?? 0);
  return {
    scripts: calls('evalsha') + calls('eval'),
    // Every command, script-internal ones included (Redis 7 counts those too).
    commands: Number(/total_commands_processed:(\d+)/.exec(info)![1]),
    reads: Number(/total_reads_processed:(\d+)/.exec(info)![1]),
  };
}

describe('RedisStore publish on one Redis server', () => {
  let server: RedisServer;
  let raw: Redis;
  let prefixes = 0;
  const open = () => RedisStore.connect({ url: server.url, keyPrefix: `one${++prefixes}:` });

  beforeAll(async () => {
    server = await startRedis();
    raw = new Redis(server.url);
  });
  afterAll(async () => {
    raw?.disconnect();
    await server?.stop();
  });

  it('costs one script call and one round trip per publish, whatever it touches', async () => {
    const store = await open();
    try {
      await store.publish(to('warm', ['d:w'])); // loads the script
      const n = 30;
      const before = await counters(raw);
      for (let i = 0; i < n; i++) {
        // Fresh streams (registry), a user's three devices, a capped unfollowed topic, a bound.
        await store.publish(to(`a${i}`, [`d:x${i}`, `d:y${i}`, `d:z${i}`], { maxPending: 100 }));
        await store.publish(to(`b${i}`, [`t:lonely${i % 3}`], { unfollowedTopicTtlMs: 60_000 }));
      }
      const after = await counters(raw);
      expect(after.scripts - before.scripts).toBe(2 * n);
      // One read per publish, plus the INFO that took the second snapshot.
      expect(after.reads - before.reads).toBe(2 * n + 1);
      expect((await store.read('d:y7', 0, 10, T)).map((e) => e.id)).toEqual(['a7']);
    } finally {
      await store.close();
    }
  });

  it('sends a batch of 500 concurrent publishes as pipelined script calls, not a round trip each', async () => {
    const store = await open();
    try {
      await store.publish(to('warm', ['d:w']));
      const n = 500;
      const before = await counters(raw);
      const results = await Promise.all(
        Array.from({ length: n }, (_, i) => store.publish(to(`m${i}`, ['s']))),
      );
      const after = await counters(raw);
      expect(after.scripts - before.scripts).toBe(n);
      // Redis reads a pipeline in 16 KB chunks: a few dozen reads, far from one per publish.
      expect(after.reads - before.reads).toBeLessThan(n / 10);
      const seqs = results.map((r) => r.record.entries[0]!.seq).sort((x, y) => x - y);
      expect(seqs).toEqual(Array.from({ length: n }, (_, i) => i + 1));
      expect(results.every((r) => !r.duplicate && r.appended.length === 1)).toBe(true);
    } finally {
      await store.close();
    }
  });

  it('refuses a publish whole when one of its devices is full: no stream gets it, the id stays free', async () => {
    const store = await open();
    try {
      for (const d of ['a', 'b', 'c']) {
        await store.createDevice({ id: d, tokenHash: 'h', createdAt: T, lastSeen: 0 });
      }
      const limits = { maxPending: 2 };
      for (let i = 0; i < 2; i++) await store.publish(to(`fill${i}`, ['d:b'], limits));
      const err = await store.publish(to('u1', ['d:a', 'd:b', 'd:c'], limits)).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(QuotaError);
      expect(err).toMatchObject({ quota: 'DEVICE_BACKLOG_FULL' });
      expect([await store.head('d:a'), await store.head('d:b'), await store.head('d:c')]).toEqual([0, 2, 0]);
      expect(await store.getPublish('u1')).toBeUndefined();

      await store.ack('b', { 'd:b': 2 });
      const ok = await store.publish(to('u1', ['d:a', 'd:b', 'd:c'], limits));
      expect(ok.record.entries).toEqual([
        { stream: 'd:a', seq: 1 },
        { stream: 'd:b', seq: 3 },
        { stream: 'd:c', seq: 1 },
      ]);
      expect(ok.appended.map((e) => e.stream)).toEqual(['d:a', 'd:b', 'd:c']);
    } finally {
      await store.close();
    }
  });

  it('keeps an entry a cut cross-slot publish left (its marker), appending the rest once', async () => {
    const keyPrefix = `one${++prefixes}:`;
    const store = await RedisStore.connect({ url: server.url, keyPrefix });
    try {
      // A node on the cross-slot path appended to d:a and died; its pending record expired (it is
      // claimed just before the marker is set, so it may expire first): the marker is what is left.
      const first = await store.publish(to('seed', ['d:a']));
      const keys = new RedisKeys(keyPrefix);
      await raw.set(keys.stream('d:a').marker('cut'), '1', 'PX', HOUR);
      await raw.del(keys.publish('cut'));
      expect(first.record.entries).toEqual([{ stream: 'd:a', seq: 1 }]);
      const retry = await store.publish(to('cut', ['d:a', 'd:b']));
      expect(retry.record.entries).toEqual([
        { stream: 'd:a', seq: 1 },
        { stream: 'd:b', seq: 1 },
      ]);
      expect(retry.appended.map((e) => e.stream)).toEqual(['d:b']);
      expect(await store.head('d:a')).toBe(1);
      // The record is stored done, as JSON the cross-slot path reads too.
      expect(JSON.parse((await raw.get(keys.publish('cut')))!)).toEqual({
        s: 'd',
        id: 'cut',
        ts: T,
        exp: T + HOUR,
        entries: retry.record.entries,
      });
    } finally {
      await store.close();
    }
  });

  it('stores ids and stream names that need escaping in the record as JSON', async () => {
    const store = await open();
    try {
      const id = 'q"\\/\u0001é{}';
      const { record } = await store.publish({ id, entries: [entry(id, 'd:x"\\é{}')] });
      expect(record.entries).toEqual([{ stream: 'd:x"\\é{}', seq: 1 }]);
      expect(await store.getPublish(id)).toEqual(record);
      const again = await store.publish({ id, entries: [entry(id, 'd:x"\\é{}')] });
      expect(again).toEqual({ record, duplicate: true, appended: [] });
    } finally {
      await store.close();
    }
  });
});
