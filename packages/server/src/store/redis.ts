import { deviceStream, topicStream } from '@pushwire/protocol';
import { Cluster } from 'ioredis';
import { QuotaError, StoreError } from './errors.js';
import {
  checkVersion,
  createClient,
  type DurabilityReport,
  durabilityOf,
  type RedisClient,
  toRedisStoreError,
} from './redis-client.js';
import { parseEntry, parseStored, recordOf, startAfter } from './redis-codec.js';
import { redact } from './redis-connection.js';
import { listFollowers } from './redis-followers.js';
import { RedisKeys } from './redis-keys.js';
import { RedisApiKeys } from './redis-keys-store.js';
import { publishOn } from './redis-publish.js';
import { publishInOneCall } from './redis-publish-script.js';
import { sweepRegistry } from './redis-sweep.js';
import { RedisWakeTokens } from './redis-wake.js';
import { RedisWebPushRegistry } from './redis-webpush.js';
import { parsePatterns } from './rows.js';
import type {
  DeviceLimits,
  DeviceRecord,
  PublishBatchItem,
  PublishRecord,
  PublishResult,
  Store,
  StoredEntry,
} from './types.js';

export type { DurabilityReport } from './redis-client.js';

export interface RedisStoreOptions {
  /** `redis://[user:password@]host:port[/db]` or `rediss://…` (TLS); a seed node when `cluster`. */
  url: string;
  /** Prefix of every key (default `pw:`), so several deployments can share one Redis. No braces. */
  keyPrefix?: string;
  /** Time source for publish records without entries; defaults to `Date.now`. */
  clock?: () => number;
  /** How long publish ids are remembered for idempotency (default 30 days, by Redis's own clock). */
  retentionMs?: number;
  /** A command without a reply after this long fails with `STORE_UNAVAILABLE` (default 2000). */
  commandTimeoutMs?: number;
  /** Connect (and reconnect) attempts give up after this long (default 2000). */
  connectTimeoutMs?: number;
  /** `url` names one node of a Redis Cluster. */
  cluster?: boolean;
}

const DAY_MS = 24 * 60 * 60 * 1000;

/** KEYS: device hash. ARGV: new token hash. 0 when the device does not exist. */
const SET_TOKEN = `
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], 'tokenHash', ARGV[1])
return 1`;

/**
 * The cluster store: every node of a Pushwire cluster shares one Redis (or Redis Cluster).
 *
 * Layout and hash slots: see redis-keys.ts. Each stream is a Redis Stream of entries with id
 * `<seq>-0` beside a meta hash (head, collapse counter), a collapse index and an expiry index, all
 * in the stream's slot; a device's hash, cursors and topics share the slot of its own stream.
 *
 * Atomicity. Appending to one stream (head, entry, collapse, idempotency marker) is one Lua script:
 * atomic. On one Redis server, a whole publish is one script too (`pwPublish`, see
 * redis-publish-script.ts): the id's record, every stream's entry, the sweep registry, all or
 * nothing; a node killed before Redis ran it wrote nothing, after it everything, so its retry is a
 * fresh publish or a duplicate. Concurrent publishes share round trips (ioredis auto-pipelining).
 * On Redis Cluster, a publish to several streams (a user's devices) touches several slots:
 * 1. claim the id: its record is created "pending", holding the entries (first writer wins);
 * 2. one append script per stream, each idempotent through a per-(id, stream) marker;
 * 3. the record is rewritten "done" with the seqs; only then does `publish` resolve.
 * A publish with an id whose record is pending (a concurrent publish, or one whose node died
 * mid-way) completes it with the first writer's entries, so retrying a failed publish finishes it:
 * every stream gets the message exactly once. Without a retry, a publish cut off by a crash may
 * have reached some of its streams only; it was never acknowledged to its publisher. (The one-call
 * path finishes such a pending record the same way, should a node of an older version leave one.)
 *
 * Durability: `publish` resolves once Redis has executed the writes. What survives a Redis crash
 * is the operator's choice: AOF with `appendfsync always` keeps every acknowledged publish,
 * `everysec` may lose the last second, RDB snapshots lose everything since the last one. See
 * {@link RedisStore.checkDurability}.
 *
 * Sweep: streams that hold entries are listed in a registry sharded over 16 keys. The append that
 * makes a stream non-empty lists it (in the same script on one server; on Cluster after the append,
 * before `publish` resolves); the sweep that empties it unlists it, guarded by a generation number
 * so a concurrent append is never unlisted. On Cluster, a node killed between the two leaves that
 * stream unswept (its expired entries are never read, they only take memory) until the publish is
 * retried. Collapsed and acknowledged entries are
 * removed lazily by the sweep, as in SQLite, so that it reports them.
 *
 * Failures: when Redis cannot be reached, operations reject within `commandTimeoutMs` (at once
 * when the connection is known to be down) with `STORE_UNAVAILABLE`; the client reconnects in the
 * background and operations succeed again once Redis is back. No command is queued or replayed.
 *
 * @example
 * const store = await RedisStore.connect({ url: 'redis://127.0.0.1:6379' });
 * console.log((await store.checkDurability()).note);
 * const { record } = await store.publish({ id, entries });
 * await store.close();
 */
export class RedisStore implements Store {
  private readonly keys: RedisKeys;
  private readonly clock: () => number;
  private readonly retentionMs: number;
  private readonly inflight = new Set<Promise<unknown>>();
  private closed = false;
  readonly wakeTokens: RedisWakeTokens;
  /** Web Push subscriptions, shared by every node of the cluster. */
  readonly webPushRegistry: RedisWebPushRegistry;
  readonly apiKeys: RedisApiKeys;

  private constructor(
    private readonly redis: RedisClient,
    opts: RedisStoreOptions,
  ) {
    this.keys = new RedisKeys(opts.keyPrefix ?? 'pw:');
    this.clock = opts.clock ?? Date.now;
    this.retentionMs = Math.max(1, Math.floor(opts.retentionMs ?? 30 * DAY_MS));
    this.wakeTokens = new RedisWakeTokens(redis, this.keys, (what, op) => this.run(what, op));
    this.webPushRegistry = new RedisWebPushRegistry(redis, this.keys, (what, op) => this.run(what, op));
    this.apiKeys = new RedisApiKeys(redis, opts.keyPrefix ?? 'pw:', (what, op) => this.run(what, op));
  }

  /** Connects and checks the server version; rejects with `STORE_UNAVAILABLE` when Redis is unreachable. */
  static async connect(opts: RedisStoreOptions): Promise<RedisStore> {
    const redis = createClient(opts);
    try {
      await redis.connect();
      await checkVersion(redis);
      await listFollowers(redis, new RedisKeys(opts.keyPrefix ?? 'pw:'));
    } catch (err) {
      redis.disconnect();
      throw toRedisStoreError(err, `cannot use Redis at ${redact(opts.url)}`);
    }
    return new RedisStore(redis, opts);
  }

  /** True while the connection to Redis is up (for readiness checks). */
  get connected(): boolean {
    return this.redis.status === 'ready';
  }

  /** What a Redis crash would lose, from `CONFIG GET` (or `INFO persistence` where CONFIG is disabled). */
  checkDurability(): Promise<DurabilityReport> {
    return this.run('durability check', () => durabilityOf(this.redis));
  }

  // ── devices ──────────────────────────────────────────────────────────────────────────────────

  /**
   * The devices-per-user bound is checked atomically as the device joins its user's list (one
   * script on the user's key), after the device itself is created; a refused device is deleted
   * again. A crash in between leaves a device no user lists (its credentials were never handed
   * out), never a listed id without a device.
   */
  createDevice(device: DeviceRecord, limits?: DeviceLimits): Promise<void> {
    return this.run('createDevice', async () => {
      const fields = [
        'tokenHash',
        device.tokenHash,
        'createdAt',
        device.createdAt,
        'lastSeen',
        device.lastSeen,
      ];
      if (device.user !== undefined) fields.push('user', device.user);
      if (device.subscribe !== undefined) fields.push('subscribe', JSON.stringify(device.subscribe));
      if (device.keyId !== undefined) fields.push('key', device.keyId);
      const key = this.keys.device(device.id).device;
      if (!(await this.redis.pwCreateDevice(key, ...fields))) {
        throw new StoreError('STORE_INVALID', `device ${JSON.stringify(device.id)} already exists`);
      }
      if (device.keyId !== undefined) {
        const max = limits?.maxDevicesPerKey ?? 0;
        const list = this.keys.registerKey(device.keyId);
        if (!(await this.redis.pwListDevice(list, max, device.createdAt, device.id))) {
          await this.redis.del(key);
          throw new QuotaError(
            'DEVICE_QUOTA_EXCEEDED',
            `register key ${JSON.stringify(device.keyId)} may have ${max} devices`,
          );
        }
      }
      if (device.user === undefined) return;
      const max = limits?.maxDevicesPerUser ?? 0;
      if (!(await this.redis.pwListDevice(this.keys.user(device.user), max, device.createdAt, device.id))) {
        if (device.keyId !== undefined) await this.redis.zrem(this.keys.registerKey(device.keyId), device.id);
        await this.redis.del(key);
        throw new QuotaError(
          'TOO_MANY_DEVICES',
          `user ${JSON.stringify(device.user)} may have ${max} devices`,
        );
      }
    });
  }

  getDevice(id: string): Promise<DeviceRecord | undefined> {
    return this.run('getDevice', async () => {
      const h = await this.redis.hgetall(this.keys.device(id).device);
      if (h.tokenHash === undefined) return undefined;
      return {
        id,
        tokenHash: h.tokenHash,
        ...(h.user !== undefined && { user: h.user }),
        createdAt: Number(h.createdAt),
        lastSeen: Number(h.lastSeen ?? 0),
        ...(h.subscribe !== undefined && { subscribe: parsePatterns(h.subscribe) }),
      };
    });
  }

  /** Token rotation: one HSET on the device hash, only while the device exists. */
  setDeviceToken(id: string, tokenHash: string): Promise<boolean> {
    return this.run('setDeviceToken', async () => {
      const key = this.keys.device(id).device;
      return Number(await this.redis.eval(SET_TOKEN, 1, key, tokenHash)) === 1;
    });
  }

  deleteDevice(id: string): Promise<void> {
    return this.run('deleteDevice', async () => {
      const dk = this.keys.device(id);
      const stream = deviceStream(id);
      const sk = this.keys.stream(stream);
      const [user, keyId] = await this.redis.hmget(dk.device, 'user', 'key');
      // The user's and key's lists first: a crash in between leaves a device no list counts, never
      // a dangling id.
      if (user) await this.redis.zrem(this.keys.user(user), id);
      if (keyId) await this.redis.zrem(this.keys.registerKey(keyId), id);
      // Its Web Push subscriptions (pointers in other slots) before the device: a crash leaves the
      // device, and DELETE again finishes.
      await this.webPushRegistry.deleteOfDevice(id);
      // Topic follower sets before the topics: a crash leaves a stale follower (its topic kept
      // longer), never a follower missing.
      const topics = await this.redis.zrange(dk.topics, 0, -1);
      await Promise.all(topics.map((t) => this.redis.srem(this.keys.stream(topicStream(t)).followers, id)));
      await this.redis.del(
        dk.device,
        dk.cursors,
        dk.topics,
        dk.wake,
        sk.meta,
        sk.entries,
        sk.collapse,
        sk.expiry,
      );
      await this.redis.zrem(this.keys.registryOf(stream), stream);
    });
  }

  devicesOfUser(user: string): Promise<string[]> {
    return this.run('devicesOfUser', () => this.redis.zrange(this.keys.user(user), 0, -1));
  }

  touchDevice(id: string, lastSeen: number): Promise<void> {
    return this.run('touchDevice', async () => {
      await this.redis.pwTouch(this.keys.device(id).device, lastSeen);
    });
  }

  // ── subscriptions and cursors ────────────────────────────────────────────────────────────────

  subscribe(deviceId: string, topic: string, limits?: { maxTopics?: number }): Promise<number> {
    return this.run('subscribe', async () => {
      const stream = topicStream(topic);
      const followers = this.keys.stream(stream).followers;
      // The follower set first (another slot): a crash leaves a stale follower, never one missing.
      const added = await this.redis.sadd(followers, deviceId);
      // The head is read first (another slot): a publish in between is replayed, not skipped.
      const head = await this.headOf(stream);
      const dk = this.keys.device(deviceId);
      const max = limits?.maxTopics ?? 0;
      const cursor = Number(
        await this.redis.pwSubscribe(dk.device, dk.topics, dk.cursors, topic, stream, head, max),
      );
      if (cursor < 0 && added === 1) await this.redis.srem(followers, deviceId);
      if (cursor === -1) throw new StoreError('STORE_NOT_FOUND', `no device ${JSON.stringify(deviceId)}`);
      if (cursor === -2) throw new QuotaError('TOO_MANY_TOPICS', `a device may follow ${max} topics`);
      return cursor;
    });
  }

  unsubscribe(deviceId: string, topic: string): Promise<void> {
    return this.run('unsubscribe', async () => {
      const dk = this.keys.device(deviceId);
      await this.redis.pwUnsubscribe(dk.topics, dk.cursors, topic, topicStream(topic));
      await this.redis.srem(this.keys.stream(topicStream(topic)).followers, deviceId);
    });
  }

  topicsOf(deviceId: string): Promise<string[]> {
    return this.run('topicsOf', () => this.redis.zrange(this.keys.device(deviceId).topics, 0, -1));
  }

  subscriberCount(topic: string): Promise<number> {
    return this.run('subscriberCount', () =>
      this.redis.scard(this.keys.stream(topicStream(topic)).followers),
    );
  }

  ack(deviceId: string, cursors: Record<string, number>): Promise<void> {
    return this.run('ack', async () => {
      const entries = Object.entries(cursors);
      if (entries.length === 0) return;
      for (const [stream, seq] of entries) {
        if (!Number.isSafeInteger(seq) || seq < 0) {
          throw new StoreError('STORE_INVALID', `ack of ${stream} is not a sequence number: ${seq}`);
        }
      }
      const dk = this.keys.device(deviceId);
      await this.redis.pwAck(dk.device, dk.cursors, ...entries.flat());
    });
  }

  cursorsOf(deviceId: string): Promise<Record<string, number>> {
    return this.run('cursorsOf', async () => {
      const raw = await this.redis.hgetall(this.keys.device(deviceId).cursors);
      return Object.fromEntries(Object.entries(raw).map(([stream, seq]) => [stream, Number(seq)]));
    });
  }

  pendingCount(deviceId: string, now: number): Promise<number> {
    return this.run('pendingCount', async () => {
      const dk = this.keys.device(deviceId);
      const [cursors, topics] = await Promise.all([
        this.redis.hgetall(dk.cursors),
        this.redis.zrange(dk.topics, 0, -1),
      ]);
      const streams = [deviceStream(deviceId), ...topics.map(topicStream)];
      const counts = await Promise.all(
        streams.map((stream) =>
          this.redis.pwCount(this.keys.stream(stream).entries, startAfter(Number(cursors[stream] ?? 0)), now),
        ),
      );
      return counts.reduce<number>((sum, n) => sum + Number(n), 0);
    });
  }

  // ── streams ──────────────────────────────────────────────────────────────────────────────────

  publish(item: PublishBatchItem): Promise<PublishResult> {
    const via = this.redis instanceof Cluster ? publishOn : publishInOneCall;
    return this.run('publish', () => via(this.redis, this.keys, this.retentionMs, this.clock, item));
  }

  getPublish(id: string): Promise<PublishRecord | undefined> {
    return this.run('getPublish', async () => {
      const raw = await this.redis.get(this.keys.publish(id));
      const stored = raw === null ? undefined : parseStored(raw);
      return stored?.s === 'd' ? recordOf(stored, stored.entries) : undefined;
    });
  }

  read(stream: string, after: number, limit: number, now: number): Promise<StoredEntry[]> {
    return this.run('read', async () => {
      if (limit <= 0) return [];
      const raw = (await this.redis.pwRead(
        this.keys.stream(stream).entries,
        startAfter(after),
        now,
        Math.floor(limit),
      )) as [string, string[]][];
      return raw.map(([id, fields]) => parseEntry(stream, id, fields));
    });
  }

  head(stream: string): Promise<number> {
    return this.run('head', () => this.headOf(stream));
  }

  /**
   * Deletes expired and collapsed entries and device-stream entries the device has acknowledged,
   * visiting the streams of the sweep registry (non-empty streams only). One node sweeps at a time
   * (a lock in Redis); another node's call meanwhile returns 0. Publish records expire by TTL.
   */
  sweep(now: number): Promise<number> {
    return this.run('sweep', () => sweepRegistry(this.redis, this.keys, now));
  }

  /** Waits for the operations in flight, then closes the connection. Later calls reject with `STORE_CLOSED`. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.all([...this.inflight]);
    try {
      await this.redis.quit();
    } catch {
      this.redis.disconnect();
    }
  }

  // ── internals ────────────────────────────────────────────────────────────────────────────────

  private async headOf(stream: string): Promise<number> {
    return Number((await this.redis.hget(this.keys.stream(stream).meta, 'h')) ?? 0);
  }

  /** Runs one operation: refuses it after close, tracks it for close, maps Redis errors. */
  private run<T>(what: string, op: () => Promise<T>): Promise<T> {
    if (this.closed) return Promise.reject(new StoreError('STORE_CLOSED', 'store is closed'));
    const result = op().catch((err: unknown) => {
      throw toRedisStoreError(err, `${what} failed`);
    });
    const settled = result.then(
      () => undefined,
      () => undefined,
    );
    this.inflight.add(settled);
    void settled.then(() => this.inflight.delete(settled));
    return result;
  }
}
