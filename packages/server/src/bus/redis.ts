import { randomBytes } from 'node:crypto';
import { deviceOfStream, isDeviceStream } from '@pushwire/protocol';
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import { toRedisStoreError } from '../store/redis-client.js';
import { redact, serverVersion, subscriberConnection } from '../store/redis-connection.js';
import type { StoredEntry } from '../store/types.js';
import { CatchUp } from './catch-up.js';
import { holderOf, Presence } from './presence.js';
import { BusKeys, type BusMessage, type BusRedis, busConnection, parseMessage } from './redis-conn.js';
import type { Bus, BusSink, DeviceCommand } from './types.js';

export interface RedisBusOptions {
  /** `redis://[user:password@]host:port[/db]` or `rediss://…`; a seed node when `cluster`. */
  url: string;
  /** `url` names one node of a Redis Cluster. */
  cluster?: boolean;
  /** Prefix of every key and channel; the same as the store's (default `pw:`). */
  keyPrefix?: string;
  /** This node's id, unique in the cluster (default: random). */
  nodeId?: string;
  /** Presence expiry: a dead node's devices count as offline this long after it died. Default 60 000. */
  presenceTtlMs?: number;
  /** Every session re-reads its streams from the store this often, as a backstop. Default 60 000. */
  resyncIntervalMs?: number;
  /** A command without a reply after this long fails (default 2000). */
  commandTimeoutMs?: number;
  /** Connect (and reconnect) attempts give up after this long (default 2000). */
  connectTimeoutMs?: number;
  logger?: Logger;
}

/** Route jobs kept while Redis is unreachable, retried once it is back (at most MAX_TRIES times). */
const MAX_BACKLOG = 10_000;
const MAX_TRIES = 5;
/** Channels subscribed per round trip when subscriptions are restored. */
const CHUNK = 500;
/** A routing job that failed while Redis was reachable (a timeout) is retried this much later. */
const RETRY_MS = 1000;
const NODE_ID = /^[A-Za-z0-9._-]{1,64}$/;
/** Interval of the subscriber connection's liveness ping. */
const PING_MS = 5000;

/**
 * The bus of a cluster: nodes share one Redis (or Redis Cluster) with the store.
 *
 * Presence: the node holding a device's session keeps `{d:<id>}:at` = "<node> <session>" with a
 * TTL, refreshed every third of it, so a node that dies takes its presence with it within one
 * TTL. A new session overwrites the key (`SET … GET`); if an older one was on another node, that
 * node is told to close it (`replaced`), as a single node replaces an older session.
 *
 * Routing: an entry of a device stream goes to the inbox channel of the node named by the
 * device's presence (nowhere when the device is offline: it replays on connect). An entry of a
 * topic stream goes to the topic's channel, which exactly the nodes with followers of that topic
 * subscribe to. Entries for local sessions are handed over in-process, without Redis.
 *
 * Why plain pub/sub and not sharded (SSUBSCRIBE): on one Redis both cost the same; on Redis
 * Cluster sharded pub/sub keeps traffic inside the owning shard, but ioredis's sharded subscriber
 * group reconnects shards internally without telling the application, and a reconnect is exactly
 * when notifications are lost and sessions must be caught up. With plain pub/sub the bus has one
 * subscriber connection whose reconnects it sees; in a cluster every PUBLISH is forwarded to all
 * shards, a cost worth it at a handful of shards. The channel names already carry hash tags.
 *
 * No message is lost by losing a notification (pub/sub is at most once): the store holds it.
 * After the subscriber reconnects, the bus resubscribes, reasserts presence, then catches every
 * local session up from the store; it also does that every `resyncIntervalMs`. A session that
 * opens or starts following a topic is caught up once its presence or subscription is confirmed,
 * which closes the race with a publish that looked before it was there.
 *
 * @example
 * const bus = await RedisBus.connect({ url: 'redis://127.0.0.1:6379', nodeId: 'node-a' });
 * const server = createPushwireServer({ store, bus, apiKeys });
 */
export class RedisBus implements Bus {
  readonly nodeId: string;
  /** The Redis server's version (`redis_version`). */
  readonly version: string;
  private readonly keys: BusKeys;
  private readonly inbox: string;
  private readonly ttl: number;
  private readonly log: Logger | undefined;
  private sink: BusSink | undefined;
  /** Topic streams with local followers. */
  private readonly topics = new Set<string>();
  private readonly presence: Presence;
  private readonly backlog: { job: () => Promise<void>; tries: number }[] = [];
  private flushTimer: NodeJS.Timeout | undefined;
  private readonly timers: NodeJS.Timeout[] = [];
  private readonly catchUp = new CatchUp(
    () => this.sink,
    () => this.closed,
    () => this.counters.resyncs++,
  );
  private closed = false;
  private closing: Promise<void> | undefined;
  /** The subscriber was up since the last time a loss was logged. */
  private up = true;
  /** Counters (metrics, tests). */
  readonly counters = { routed: 0, received: 0, resyncs: 0, dropped: 0 };

  private constructor(
    private readonly cmd: BusRedis,
    private readonly sub: Redis,
    opts: RedisBusOptions,
    version: string,
  ) {
    this.nodeId = opts.nodeId ?? randomBytes(6).toString('hex');
    this.version = version;
    this.keys = new BusKeys(opts.keyPrefix ?? 'pw:');
    this.inbox = this.keys.inbox(this.nodeId);
    this.ttl = Math.max(1000, opts.presenceTtlMs ?? 60_000);
    this.log = opts.logger;
    this.presence = new Presence({
      cmd,
      keys: this.keys,
      nodeId: this.nodeId,
      ttlMs: this.ttl,
      replaced: (device, session) => this.sink?.command(device, { t: 'replaced', session }),
      kick: (node, device, session) =>
        this.post(this.keys.inbox(node), { c: [[device, { t: 'replaced', session }]] }),
    });
    sub.on('message', (_channel: string, text: string) => this.onMessage(text));
    sub.on('ready', () => void this.restore());
    sub.on('close', () => this.onLost());
    cmd.on('ready', () => this.flushBacklog());
    const every = (ms: number, fn: () => void) => {
      const t = setInterval(fn, ms);
      t.unref();
      this.timers.push(t);
    };
    every(Math.floor(this.ttl / 3), () => void this.refreshPresence());
    every(Math.max(1000, opts.resyncIntervalMs ?? 60_000), () => this.resync());
    every(PING_MS, () => this.checkSubscriber());
  }

  /** Connects both connections and subscribes this node's inbox; rejects with `STORE_UNAVAILABLE`. */
  static async connect(opts: RedisBusOptions): Promise<RedisBus> {
    if (opts.nodeId !== undefined && !NODE_ID.test(opts.nodeId)) {
      throw new Error(`node id ${JSON.stringify(opts.nodeId)}: use 1 to 64 of A-Z a-z 0-9 . _ -`);
    }
    const conn = {
      url: opts.url,
      cluster: opts.cluster ?? false,
      commandTimeoutMs: opts.commandTimeoutMs ?? 2000,
      connectTimeoutMs: opts.connectTimeoutMs ?? 2000,
    };
    const cmd = busConnection(conn);
    const sub = subscriberConnection(conn);
    try {
      await Promise.all([cmd.connect(), sub.connect()]);
      const bus = new RedisBus(cmd, sub, opts, await serverVersion(cmd));
      await sub.subscribe(bus.inbox);
      return bus;
    } catch (err) {
      cmd.disconnect();
      sub.disconnect();
      throw toRedisStoreError(err, `cannot use Redis at ${redact(opts.url)}`);
    }
  }

  get healthy(): boolean {
    return !this.closed && this.cmd.status === 'ready' && this.sub.status === 'ready';
  }

  bind(sink: BusSink): void {
    this.sink = sink;
  }

  route(entries: StoredEntry[]): void {
    const sink = this.sink;
    if (!sink || entries.length === 0) return;
    const local: StoredEntry[] = [];
    const topics: StoredEntry[] = [];
    const remote: StoredEntry[] = [];
    for (const e of entries) {
      const device = deviceOfStream(e.stream);
      if (device === undefined) {
        local.push(e);
        topics.push(e);
      } else if (sink.holds(device)) {
        local.push(e);
      } else {
        remote.push(e);
      }
    }
    if (local.length > 0) sink.dispatch(local);
    if (topics.length > 0 || remote.length > 0) this.attempt(() => this.sendOut(topics, remote));
  }

  send(deviceId: string, cmd: DeviceCommand): void {
    if (this.sink?.holds(deviceId)) return this.sink.command(deviceId, cmd);
    this.attempt(async () => {
      const node = holderOf(await this.cmd.get(this.keys.presence(deviceId)));
      if (node !== undefined && node !== this.nodeId)
        await this.post(this.keys.inbox(node), { c: [[deviceId, cmd]] });
    });
  }

  attached(deviceId: string, sessionId: string): void {
    this.presence
      .attach(deviceId, sessionId)
      // A publish that looked for the device before this presence existed found nobody: read now.
      .then(() => this.sink?.resync({ device: deviceId }))
      .catch((err: unknown) => this.log?.debug({ err, deviceId }, 'presence not set; set on reconnect'));
  }

  detached(deviceId: string, sessionId: string): void {
    this.presence.detach(deviceId, sessionId);
  }

  followed(stream: string): void {
    if (isDeviceStream(stream) || this.topics.has(stream)) return;
    this.topics.add(stream);
    if (this.sub.status !== 'ready') return; // subscribed again on reconnect
    this.sub
      .subscribe(this.keys.topic(stream))
      .then(() => this.sink?.resync({ stream }))
      .catch((err: unknown) => this.log?.debug({ err, stream }, 'subscribe failed; retried on reconnect'));
  }

  unfollowed(stream: string): void {
    if (!this.topics.delete(stream) || this.sub.status !== 'ready') return;
    this.sub.unsubscribe(this.keys.topic(stream)).catch(() => {});
  }

  async isOnline(deviceId: string): Promise<boolean> {
    try {
      return await this.presence.isOnline(deviceId);
    } catch (err) {
      throw toRedisStoreError(err, 'presence lookup failed');
    }
  }

  /** Stops timers, removes this node's presence (best effort), closes both connections. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      this.closed = true;
      for (const t of this.timers) clearInterval(t);
      clearTimeout(this.flushTimer);
      await Promise.race([this.presence.clear(), sleep(1000)]);
      await Promise.all([quit(this.cmd), quit(this.sub)]);
    })();
    return this.closing;
  }

  // ── internals ──────────────────────────────────────────────────────────────────────────────────

  private onMessage(text: string): void {
    const m = parseMessage(text);
    // Our own topic messages were handed over locally already.
    if (!m || !this.sink || m.o === this.nodeId) return;
    this.counters.received++;
    if (m.e && m.e.length > 0) this.sink.dispatch(m.e);
    for (const [device, cmd] of m.c ?? []) this.sink.command(device, cmd);
  }

  private async sendOut(topics: StoredEntry[], remote: StoredEntry[]): Promise<void> {
    const sends = topics.map((e) => this.post(this.keys.topic(e.stream), { e: [e] }));
    const holders = await Promise.all(
      remote.map((e) => this.cmd.get(this.keys.presence(deviceOfStream(e.stream)!))),
    );
    const byNode = new Map<string, StoredEntry[]>();
    remote.forEach((e, i) => {
      const node = holderOf(holders[i] ?? null);
      if (node === undefined || node === this.nodeId) return; // offline: it replays on connect
      const list = byNode.get(node) ?? [];
      list.push(e);
      byNode.set(node, list);
    });
    for (const [node, list] of byNode) sends.push(this.post(this.keys.inbox(node), { e: list }));
    await Promise.all(sends);
  }

  private async post(channel: string, body: Omit<BusMessage, 'o'>): Promise<void> {
    this.counters.routed++;
    await this.cmd.publish(channel, JSON.stringify({ o: this.nodeId, ...body }));
  }

  /**
   * Runs a routing job; when it fails (Redis unreachable), keeps it for when Redis is back, a few
   * times at most and within a bound: sessions it misses are caught up by the next resync anyway.
   */
  private attempt(job: () => Promise<void>, tries = 0): void {
    job().catch((err: unknown) => {
      if (this.closed) return;
      this.log?.debug({ err }, 'routing failed; retried when Redis is back');
      if (tries >= MAX_TRIES || this.backlog.length >= MAX_BACKLOG) {
        this.counters.dropped++;
        return;
      }
      this.backlog.push({ job, tries: tries + 1 });
      // Connected yet failing (a timeout): retry a little later, never in a tight loop.
      if (this.cmd.status === 'ready' && !this.flushTimer) {
        this.flushTimer = setTimeout(() => this.flushBacklog(), RETRY_MS);
        this.flushTimer.unref();
      }
    });
  }

  private flushBacklog(): void {
    clearTimeout(this.flushTimer);
    this.flushTimer = undefined;
    for (const { job, tries } of this.backlog.splice(0)) this.attempt(job, tries);
  }

  private onLost(): void {
    if (this.closed || !this.up) return;
    this.up = false;
    this.log?.warn(
      { node: this.nodeId },
      'lost Redis: publishes answer 503 until it is back; sockets stay open',
    );
  }

  /** After the subscriber (re)connected: subscriptions back first, then presence, then catch-up. */
  private async restore(): Promise<void> {
    if (this.closed) return;
    this.up = true;
    try {
      const channels = [this.inbox, ...[...this.topics].map((s) => this.keys.topic(s))];
      for (let i = 0; i < channels.length; i += CHUNK)
        await this.sub.subscribe(...channels.slice(i, i + CHUNK));
      this.log?.info({ node: this.nodeId }, 'bus reconnected to Redis; catching sessions up');
      await this.refreshPresence();
      this.resync();
    } catch (err) {
      this.log?.warn({ err }, 'bus restore failed; retried on the next reconnect');
    }
  }

  /** Sets or refreshes this node's presence keys; a device taken over elsewhere is closed here. */
  private async refreshPresence(): Promise<void> {
    if (this.closed) return;
    await this.presence
      .refresh()
      .catch((err: unknown) => this.log?.debug({ err }, 'presence refresh failed'));
  }

  /** Catches every local session up from the store; while the store cannot be read, retries shortly. */
  private resync(): void {
    this.catchUp.request();
  }

  /** A subscriber connection that stopped answering is reconnected (and so resubscribed, resynced). */
  private checkSubscriber(): void {
    if (this.closed || this.sub.status !== 'ready') return;
    this.sub.ping().catch(() => {
      if (!this.closed && this.sub.status === 'ready') this.sub.disconnect(true);
    });
  }
}

async function quit(redis: { quit(): Promise<unknown>; disconnect(): void }): Promise<void> {
  try {
    await Promise.race([redis.quit(), sleep(1000)]);
  } catch {}
  redis.disconnect();
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms).unref());
