import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { type RedisServer, startRedis } from '../../../../test/helpers/redis.js';
import { storeContract } from './contract.js';
import { storeQuotaContract } from './contract-quotas.js';
import { StoreError } from './errors.js';
import { RedisStore, type RedisStoreOptions } from './redis.js';
import { RedisKeys } from './redis-keys.js';
import { toEntryRow } from './rows.js';
import type { NewEntry, PublishBatchItem } from './types.js';

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
const one = (id: string, stream: string, extra: Partial<NewEntry> = {}): PublishBatchItem => ({
  id,
  entries: [entry(id, stream, extra)],
});
const many = (id: string, streams: string[]): PublishBatchItem => ({
  id,
  entries: streams.map((stream) => entry(id, stream)),
});

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
async function until<T>(check: () => Promise<T | undefined>, timeoutMs: number, what: string): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const value = await check().catch(() => undefined);
    if (value) return value;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

let shared: RedisServer;
let cluster: RedisServer;
let prefixes = 0;
const nextPrefix = () => `test${++prefixes}:`;

beforeAll(async () => {
  [shared, cluster] = await Promise.all([startRedis(), startRedis({ cluster: true })]);
});
afterAll(async () => {
  await Promise.all([shared?.stop(), cluster?.stop()]);
});

// A fresh key prefix per test store on one private redis-server.
storeContract('redis', async () => {
  const store = await RedisStore.connect({ url: shared.url, keyPrefix: nextPrefix() });
  return { store, cleanup: async () => {} };
});

storeQuotaContract('redis', async () => {
  const store = await RedisStore.connect({ url: shared.url, keyPrefix: nextPrefix() });
  return { store, cleanup: async () => {} };
});

// The same suite on a one-node Redis Cluster: any command touching two slots fails with CROSSSLOT.
storeContract('redis cluster', async () => {
  const store = await RedisStore.connect({ url: cluster.url, cluster: true, keyPrefix: nextPrefix() });
  return { store, cleanup: async () => {} };
});

storeQuotaContract('redis cluster', async () => {
  const store = await RedisStore.connect({ url: cluster.url, cluster: true, keyPrefix: nextPrefix() });
  return { store, cleanup: async () => {} };
});

describe('RedisStore', () => {
  const opened: RedisStore[] = [];
  const servers: RedisServer[] = [];
  const dirs: string[] = [];
  const open = async (opts: Partial<RedisStoreOptions> & { url: string }) => {
    const store = await RedisStore.connect(opts);
    opened.push(store);
    return store;
  };
  const server = async (opts: Parameters<typeof startRedis>[0] = {}) => {
    const started = await startRedis(opts);
    servers.push(started);
    return started;
  };

  afterEach(async () => {
    for (const store of opened.splice(0)) await store.close();
    for (const s of servers.splice(0)) await s.stop();
    for (const dir of dirs.splice(0)) await rm(dir, { recursive: true, force: true });
  });

  describe('topic followers (short retention of unfollowed topics)', () => {
    it('lists the followers of subscriptions made by an older version before treating a topic as unfollowed', async () => {
      for (const url of [shared.url, cluster.url]) {
        const keyPrefix = nextPrefix();
        const keys = new RedisKeys(keyPrefix);
        const isCluster = url === cluster.url;
        const old = await open({ url, keyPrefix, cluster: isCluster });
        await old.createDevice({ id: 'd{1}%', tokenHash: 'h', createdAt: T, lastSeen: 0 });
        await old.subscribe('d{1}%', 'news');
        // What a deployment of the older version holds: the subscription, no follower sets.
        const raw = new Redis(url);
        try {
          await raw.del(keys.stream('t:news').followers);
          await raw.del(keys.followersListed());
        } finally {
          raw.disconnect();
        }
        const upgraded = await open({ url, keyPrefix, cluster: isCluster });
        const limits = { unfollowedTopicTtlMs: 60_000 };
        const news = await upgraded.publish({ id: 'n1', entries: [entry('n1', 't:news')], limits });
        expect(news.record.exp).toBe(T + HOUR);
        const lonely = await upgraded.publish({ id: 'l1', entries: [entry('l1', 't:lonely')], limits });
        expect(lonely.record.exp).toBe(T + 60_000);
      }
    });
  });

  describe('several nodes on one Redis', () => {
    it('gives 200 publishes spread over two nodes contiguous seqs, each id once', async () => {
      const keyPrefix = nextPrefix();
      const [a, b] = [await open({ url: shared.url, keyPrefix }), await open({ url: shared.url, keyPrefix })];
      const n = 200;
      // Every id is published twice, once per node, concurrently.
      const results = await Promise.all(
        Array.from({ length: n }, (_, i) => [
          a.publish(one(`p${i}`, 's')),
          b.publish(one(`p${i}`, 's')),
        ]).flat(),
      );
      const fresh = results.filter((r) => !r.duplicate);
      expect(fresh).toHaveLength(n);
      for (let i = 0; i < n; i++) expect(results[2 * i]!.record).toEqual(results[2 * i + 1]!.record);
      const seqs = fresh.map((r) => r.record.entries[0]!.seq).sort((x, y) => x - y);
      expect(seqs).toEqual(Array.from({ length: n }, (_, i) => i + 1));
      const read = await b.read('s', 0, 1000, T);
      expect(read.map((e) => e.seq)).toEqual(seqs);
      expect(new Set(read.map((e) => e.id)).size).toBe(n);
    });

    it('publishes to a user’s streams once when two nodes race with the same id', async () => {
      const keyPrefix = nextPrefix();
      const [a, b] = [await open({ url: shared.url, keyPrefix }), await open({ url: shared.url, keyPrefix })];
      const streams = ['d:x', 'd:y', 'd:z'];
      const rounds = 50;
      for (let i = 0; i < rounds; i++) {
        const [ra, rb] = await Promise.all([
          a.publish(many(`u${i}`, streams)),
          b.publish(many(`u${i}`, streams)),
        ]);
        expect([ra.duplicate, rb.duplicate].sort()).toEqual([false, true]);
        expect(ra.record).toEqual(rb.record);
        // Whoever appended reports the entries for live delivery; together exactly one per stream.
        expect([...ra.appended, ...rb.appended].map((e) => e.stream).sort()).toEqual(streams);
      }
      for (const stream of streams) {
        const read = await a.read(stream, 0, 1000, T);
        expect(read.map((e) => e.seq)).toEqual(Array.from({ length: rounds }, (_, i) => i + 1));
      }
    });

    it('completes a publish whose node died after claiming it, when the publisher retries', async () => {
      const keyPrefix = nextPrefix();
      const store = await open({ url: shared.url, keyPrefix });
      const keys = new RedisKeys(keyPrefix);
      const raw = new Redis(shared.url);
      try {
        // What a node leaves behind when killed between the claim and the appends.
        const item = many('cut', ['d:a', 'd:b']);
        const pending = { s: 'p', id: 'cut', ts: T, exp: T + HOUR, rows: item.entries.map(toEntryRow) };
        await raw.set(keys.publish('cut'), JSON.stringify(pending), 'PX', HOUR);
        await store.publish(one('before', 'd:b'));
        expect(await store.getPublish('cut')).toBeUndefined();

        const retry = await store.publish(many('cut', ['d:other']));
        expect(retry.duplicate).toBe(true);
        // The first writer's entries, not the retry's.
        expect(retry.record.entries).toEqual([
          { stream: 'd:a', seq: 1 },
          { stream: 'd:b', seq: 2 },
        ]);
        expect(retry.appended.map((e) => [e.stream, e.seq, e.data])).toEqual([
          ['d:a', 1, { id: 'cut' }],
          ['d:b', 2, { id: 'cut' }],
        ]);
        expect(await store.getPublish('cut')).toEqual(retry.record);
        expect(await store.head('d:other')).toBe(0);
        const again = await store.publish(many('cut', ['d:a', 'd:b']));
        expect(again).toEqual({ record: retry.record, duplicate: true, appended: [] });
        expect(await store.head('d:b')).toBe(2);
      } finally {
        raw.disconnect();
      }
    });

    it('sweeps streams again after they were emptied and filled, one sweeper at a time', async () => {
      const keyPrefix = nextPrefix();
      const [a, b] = [await open({ url: shared.url, keyPrefix }), await open({ url: shared.url, keyPrefix })];
      for (let round = 1; round <= 3; round++) {
        const exp = T + round * 1000;
        await Promise.all(
          Array.from({ length: 40 }, (_, i) => a.publish(one(`r${round}-${i}`, `d:${i}`, { exp }))),
        );
        const removed = await Promise.all([a.sweep(exp), b.sweep(exp)]);
        // Both ran at once: one held the lock. Whatever was left is removed by the next sweep.
        expect(removed[0] + removed[1] + (await b.sweep(exp))).toBe(40);
        expect(await a.sweep(exp)).toBe(0);
        for (let i = 0; i < 40; i += 13) expect(await a.head(`d:${i}`)).toBe(round);
      }
      const raw = new Redis(shared.url);
      try {
        const keys = new RedisKeys(keyPrefix);
        const registered = await Promise.all(
          Array.from({ length: 16 }, (_, i) => raw.zcard(keys.registry(i))),
        );
        expect(registered.reduce((x, y) => x + y, 0)).toBe(0);
      } finally {
        raw.disconnect();
      }
    });
  });

  describe('durability', () => {
    it('keeps entries, heads, devices, cursors and publish ids across a Redis restart with AOF', async () => {
      const dir = await mkdtemp(join(tmpdir(), 'pushwire-redis-aof-'));
      dirs.push(dir);
      const redis = await server({ appendonly: true, dir });
      const first = await open({ url: redis.url });
      await first.createDevice({ id: 'd1', tokenHash: 'h', user: 'u', createdAt: T, lastSeen: 0 });
      await first.publish(one('t1', 't:news'));
      await first.subscribe('d1', 'news');
      const published = await Promise.all(
        Array.from({ length: 50 }, (_, i) => first.publish(one(`m${i}`, 'd:d1'))),
      );
      await first.publish(many('both', ['d:d1', 't:news']));
      await first.ack('d1', { 'd:d1': 10 });
      await first.touchDevice('d1', T + 9);

      await redis.restart();
      const second = await open({ url: redis.url });
      const read = await second.read('d:d1', 0, 1000, T);
      expect(read.map((e) => e.seq)).toEqual(Array.from({ length: 51 }, (_, i) => i + 1));
      for (const r of published) {
        expect(read[r.record.entries[0]!.seq - 1]?.id).toBe(r.record.id);
      }
      expect(await second.head('t:news')).toBe(2);
      expect(await second.getDevice('d1')).toEqual({
        id: 'd1',
        tokenHash: 'h',
        user: 'u',
        createdAt: T,
        lastSeen: T + 9,
      });
      expect(await second.devicesOfUser('u')).toEqual(['d1']);
      expect(await second.topicsOf('d1')).toEqual(['news']);
      expect(await second.cursorsOf('d1')).toEqual({ 'd:d1': 10, 't:news': 1 });
      expect((await second.publish(one('m7', 'd:d1'))).duplicate).toBe(true);
      expect((await second.publish(one('next', 'd:d1'))).appended[0]).toMatchObject({ seq: 52, prevSeq: 51 });

      // The store that was connected across the restart reconnects by itself.
      const after = await until(() => first.publish(one('after', 't:news')), 5000, 'reconnect');
      expect(after.record.entries).toEqual([{ stream: 't:news', seq: 3 }]);
    });

    it('reports the durability settings it finds', async () => {
      const aof = await server({ appendonly: true });
      expect(await (await open({ url: aof.url })).checkDurability()).toMatchObject({
        aof: true,
        appendfsync: 'always',
        rdb: '',
        note: expect.stringContaining('nothing acknowledged is lost'),
      });
      expect(await (await open({ url: shared.url })).checkDurability()).toMatchObject({
        aof: false,
        rdb: '',
        note: expect.stringContaining('loses every stored message'),
      });
      // A cluster reports what its masters have.
      expect(await (await open({ url: cluster.url, cluster: true })).checkDurability()).toMatchObject({
        aof: false,
        appendfsync: 'everysec',
      });
      const noConfig = await server({ appendonly: true, args: ['--rename-command', 'CONFIG', '""'] });
      expect(await (await open({ url: noConfig.url })).checkDurability()).toMatchObject({
        aof: true,
        appendfsync: 'unknown',
        rdb: 'unknown',
        note: expect.stringContaining('CONFIG is disabled'),
      });
    });
  });

  describe('Redis unavailable', () => {
    const expectUnavailable = async (op: Promise<unknown>, withinMs: number) => {
      const started = Date.now();
      const err = await op.then(
        () => undefined,
        (e: unknown) => e,
      );
      const took = Date.now() - started;
      expect(err).toBeInstanceOf(StoreError);
      expect(err).toMatchObject({ code: 'STORE_UNAVAILABLE' });
      expect(took).toBeLessThan(withinMs);
      return took;
    };

    it('refuses to connect to a port where nothing listens, quickly', async () => {
      const redis = await server();
      await redis.kill();
      await expectUnavailable(RedisStore.connect({ url: redis.url }), 2500);
    });

    it('rejects at once while Redis is down and recovers when it returns', async () => {
      const redis = await server();
      const store = await open({ url: redis.url });
      await store.publish(one('m1', 's'));

      await redis.kill();
      await expectUnavailable(store.publish(one('m2', 's')), 2000);
      await expectUnavailable(store.read('s', 0, 10, T), 2000);
      await expectUnavailable(store.getDevice('d1'), 2000);

      await redis.start();
      const back = await until(() => store.publish(one('m3', 's')), 5000, 'reconnect');
      // No AOF on this server: the restart emptied it; the store serves again all the same.
      expect(back.duplicate).toBe(false);
      expect((await store.publish(one('m3', 's'))).duplicate).toBe(true);
    });

    it('rejects within the command timeout when Redis hangs, and recovers', async () => {
      const redis = await server();
      const store = await open({ url: redis.url, commandTimeoutMs: 500 });
      await store.publish(one('m1', 's'));

      process.kill(redis.proc.pid!, 'SIGSTOP');
      try {
        await expectUnavailable(store.publish(one('m2', 's')), 2000);
      } finally {
        process.kill(redis.proc.pid!, 'SIGCONT');
      }
      // The timed-out publish may have been applied once Redis woke: a retry settles it either way.
      const retried = await until(() => store.publish(one('m2', 's')), 5000, 'recovery');
      expect(retried.record.entries).toEqual([{ stream: 's', seq: 2 }]);
      expect(await store.head('s')).toBe(2);
    });

    it('fails operations in flight when the connection drops', async () => {
      const redis = await server();
      const store = await open({ url: redis.url });
      const inFlight = Array.from({ length: 100 }, (_, i) => store.publish(one(`m${i}`, 's')));
      await redis.kill();
      const settled = await Promise.allSettled(inFlight);
      for (const s of settled) {
        if (s.status === 'rejected') expect(s.reason).toMatchObject({ code: 'STORE_UNAVAILABLE' });
      }
      await store.close();
      await expect(store.publish(one('x', 's'))).rejects.toMatchObject({ code: 'STORE_CLOSED' });
    });
  });
});
