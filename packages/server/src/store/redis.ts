import { randomUUID } from 'node:crypto';
import { StoreError } from './errors.js';
import {
  checkVersion,
  createClient,
  type DurabilityReport,
  durabilityOf,
  type RedisClient,
  redact,
  toRedisStoreError,
} from './redis-client.js';
import {
  entryFields,
  type PendingRow,
  parseEntry,
  parseStored,
  recordOf,
  type StoredPublish,
  startAfter,
} from './redis-codec.js';
import { REGISTRY_SHARDS, RedisKeys } from './redis-keys.js';
import { RedisWakeTokens } from './redis-wake.js';
import { fromEntryRow, toEntryRow } from './rows.js';
import type {
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

interface Appended {
  stream: string;
  seq: number;
  appended: boolean;
}

const DAY_MS = 24 * 60 * 60 * 1000;
const SWEEP_LOCK_MS = 60_000;

/**
 * The cluster store: every node of a Pushwire cluster shares one Redis (or Redis Cluster).
 *
 * Layout and hash slots: see redis-keys.ts. Each stream is a Redis Stream of entries with id
 * `<seq>-0` beside a meta hash (head, collapse counter), a collapse index and an expiry index, all
 * in the stream's slot; a device's hash, cursors and topics share the slot of its own stream.
 *
 * Atomicity. Appending to one stream (head, entry, collapse, idempotency marker) is one Lua script:
 * atomic. A publish to several streams (a user's devices) touches several slots, so it runs as:
 * 1. claim the id: its record is created "pending", holding the entries (first writer wins);
 * 2. one append script per stream, each idempotent through a per-(id, stream) marker;
 * 3. the record is rewritten "done" with the seqs; only then does `publish` resolve.
 * A publish with an id whose record is pending (a concurrent publish, or one whose node died
 * mid-way) completes it with the first writer's entries, so retrying a failed publish finishes it:
 * every stream gets the message exactly once. Without a retry, a publish cut off by a crash may
 * have reached some of its streams only; it was never acknowledged to its publisher.
 *
 * Durability: `publish` resolves once Redis has executed the writes. What survives a Redis crash
 * is the operator's choice: AOF with `appendfsync always` keeps every acknowledged publish,
 * `everysec` may lose the last second, RDB snapshots lose everything since the last one. See
 * {@link RedisStore.checkDurability}.
 *
 * Sweep: streams that hold entries are listed in a registry sharded over 16 keys. The append that
 * makes a stream non-empty lists it (after the append, before `publish` resolves); the sweep that
 * empties it unlists it, guarded by a generation number so a concurrent append is never unlisted.
 * A node killed between the two leaves that stream unswept (its expired entries are never read,
 * they only take memory) until the publish is retried. Collapsed and acknowledged entries are
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

  private constructor(
    private readonly redis: RedisClient,
    opts: RedisStoreOptions,
  ) {
    this.keys = new RedisKeys(opts.keyPrefix ?? 'pw:');
    this.clock = opts.clock ?? Date.now;
    this.retentionMs = Math.max(1, Math.floor(opts.retentionMs ?? 30 * DAY_MS));
    this.wakeTokens = new RedisWakeTokens(redis, this.keys, (what, op) => this.run(what, op));
  }

  /** Connects and checks the server version; rejects with `STORE_UNAVAILABLE` when Redis is unreachable. */
  static async connect(opts: RedisStoreOptions): Promise<RedisStore> {
    const redis = createClient(opts);
    try {
      await redis.connect();
      await checkVersion(redis);
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

  createDevice(device: DeviceRecord): Promise<void> {
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
      if (!(await this.redis.pwCreateDevice(this.keys.device(device.id).device, ...fields))) {
        throw new StoreError('STORE_INVALID', `device ${JSON.stringify(device.id)} already exists`);
      }
      // After the device: a crash in between leaves a device its user does not list, never the reverse.
      if (device.user !== undefined)
        await this.redis.zadd(this.keys.user(device.user), device.createdAt, device.id);
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
      };
    });
  }

  deleteDevice(id: string): Promise<void> {
    return this.run('deleteDevice', async () => {
      const dk = this.keys.device(id);
      const stream = `d:${id}`;
      const sk = this.keys.stream(stream);
      const user = await this.redis.hget(dk.device, 'user');
      // The user's list first: a crash in between leaves a device no user reaches, never a dangling id.
      if (user !== null) await this.redis.zrem(this.keys.user(user), id);
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

  subscribe(deviceId: string, topic: string): Promise<number> {
    return this.run('subscribe', async () => {
      const stream = `t:${topic}`;
      // The head is read first (another slot): a publish in between is replayed, not skipped.
      const head = await this.headOf(stream);
      const dk = this.keys.device(deviceId);
      const cursor = Number(
        await this.redis.pwSubscribe(dk.device, dk.topics, dk.cursors, topic, stream, head),
      );
      if (cursor < 0) throw new StoreError('STORE_NOT_FOUND', `no device ${JSON.stringify(deviceId)}`);
      return cursor;
    });
  }

  unsubscribe(deviceId: string, topic: string): Promise<void> {
    return this.run('unsubscribe', async () => {
      const dk = this.keys.device(deviceId);
      await this.redis.pwUnsubscribe(dk.topics, dk.cursors, topic, `t:${topic}`);
    });
  }

  topicsOf(deviceId: string): Promise<string[]> {
    return this.run('topicsOf', () => this.redis.zrange(this.keys.device(deviceId).topics, 0, -1));
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
      const streams = [`d:${deviceId}`, ...topics.map((topic) => `t:${topic}`)];
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
    return this.run('publish', async () => {
      const rows = item.entries.map(toEntryRow);
      const ts = item.entries[0]?.ts ?? this.clock();
      const exp = item.entries.reduce((max, e) => Math.max(max, e.exp), item.entries[0]?.exp ?? ts);
      const pending: StoredPublish = { s: 'p', id: item.id, ts, exp, rows };
      const prior = await this.redis.pwClaim(
        this.keys.publish(item.id),
        JSON.stringify(pending),
        this.retentionMs,
      );
      if (prior === null) {
        const done = await this.complete(pending);
        // A concurrent retry on another node may have appended some of them first: it reports those.
        const appended = done.flatMap((a, i): StoredEntry[] =>
          a.appended ? [{ ...item.entries[i]!, seq: a.seq, prevSeq: a.seq - 1 }] : [],
        );
        return { record: recordOf(pending, done), duplicate: false, appended };
      }
      const stored = parseStored(String(prior));
      if (stored.s === 'd')
        return { record: recordOf(stored, stored.entries), duplicate: true, appended: [] };
      // The first writer is still at it, or died mid-way: finish its publish, idempotently.
      const done = await this.complete(stored);
      const appended = done.flatMap((a, i) =>
        a.appended ? [fromEntryRow({ ...stored.rows[i]!, seq: a.seq, prev_seq: a.seq - 1 })] : [],
      );
      return { record: recordOf(stored, done), duplicate: true, appended };
    });
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
    return this.run('sweep', async () => {
      const lock = this.keys.sweepLock();
      const token = randomUUID();
      if ((await this.redis.set(lock, token, 'PX', SWEEP_LOCK_MS, 'NX')) !== 'OK') return 0;
      try {
        let removed = 0;
        for (let shard = 0; shard < REGISTRY_SHARDS; shard++) removed += await this.sweepShard(shard, now);
        return removed;
      } finally {
        await this.redis.pwUnlock(lock, token).catch(() => {});
      }
    });
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

  /** Appends a claimed publish to each of its streams, then marks its record done. */
  private async complete(stored: Extract<StoredPublish, { s: 'p' }>): Promise<Appended[]> {
    const done = await Promise.all(stored.rows.map((row) => this.appendOne(stored.id, row)));
    const record: StoredPublish = {
      s: 'd',
      id: stored.id,
      ts: stored.ts,
      exp: stored.exp,
      entries: done.map(({ stream, seq }) => ({ stream, seq })),
    };
    await this.redis.set(this.keys.publish(stored.id), JSON.stringify(record), 'KEEPTTL', 'XX');
    return done;
  }

  private async appendOne(id: string, row: PendingRow): Promise<Appended> {
    const k = this.keys.stream(row.stream);
    const reply = (await this.redis.pwAppend(
      k.meta,
      k.entries,
      k.collapse,
      k.expiry,
      k.marker(id),
      this.retentionMs,
      row.exp,
      row.ts,
      row.collapse_key ?? '',
      ...entryFields(row),
    )) as [number, number, number, number];
    const [seq, appended, generation, fresh] = reply;
    // A stream that just became non-empty enters the sweep registry; a retry re-enters it too, in
    // case the first writer died before doing so.
    if (generation > 0 && (fresh === 1 || appended === 0)) {
      await this.redis.zadd(this.keys.registryOf(row.stream), generation, row.stream);
    }
    return { stream: row.stream, seq, appended: appended === 1 };
  }

  private async headOf(stream: string): Promise<number> {
    return Number((await this.redis.hget(this.keys.stream(stream).meta, 'h')) ?? 0);
  }

  private async sweepShard(shard: number, now: number): Promise<number> {
    const registry = this.keys.registry(shard);
    let cursor = '0';
    let removed = 0;
    do {
      const [next, flat] = await this.redis.zscan(registry, cursor, 'COUNT', 256);
      cursor = next;
      const visits: Promise<number>[] = [];
      for (let i = 0; i + 1 < flat.length; i += 2) {
        visits.push(this.sweepStream(registry, flat[i]!, Number(flat[i + 1]), now));
      }
      for (const n of await Promise.all(visits)) removed += n;
    } while (cursor !== '0');
    return removed;
  }

  private async sweepStream(registry: string, stream: string, score: number, now: number): Promise<number> {
    const k = this.keys.stream(stream);
    const own = stream.startsWith('d:') ? this.keys.device(stream.slice(2)).cursors : undefined;
    const reply = (await this.redis.pwSweep(
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
    if (emptied === 1) await this.redis.pwUnregister(registry, stream, generation || score);
    return removed;
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
