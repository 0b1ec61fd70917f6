import { randomBytes } from 'node:crypto';
import { deviceOfStream, isDeviceStream } from '@pushwire/protocol';
import pg from 'pg';
import type { Logger } from 'pino';
import {
  clientConfig,
  createPool,
  type PostgresConnectionOptions,
  redactUrl,
  schemaOf,
  toPostgresStoreError,
} from '../store/postgres-conn.js';
import { migratePostgres } from '../store/postgres-schema.js';
import type { StoredEntry } from '../store/types.js';
import { CatchUp } from './catch-up.js';
import { PgChannels, packCommand, parsePgMessage } from './postgres-codec.js';
import { PostgresPresence } from './postgres-presence.js';
import { PgSender } from './postgres-sender.js';
import type { Bus, BusSink, DeviceCommand } from './types.js';

export interface PostgresBusOptions extends PostgresConnectionOptions {
  /** This node's id, unique in the cluster (default: random). */
  nodeId?: string;
  /** Presence expiry: a dead node's devices count as offline this long after it died. Default 60 000. */
  presenceTtlMs?: number;
  /** Every session re-reads its streams from the store this often, as a backstop. Default 60 000. */
  resyncIntervalMs?: number;
  logger?: Logger;
}

/** After a resync that could not read the store, try again this much later, this many times. */
const NODE_ID = /^[A-Za-z0-9._-]{1,64}$/;
/** Interval of the listening connection's liveness check. */
const PING_MS = 5000;
/** Reconnect delays of the listening connection. */
const BACKOFF_MS = [100, 200, 500, 1000];

/**
 * The bus of a cluster on PostgreSQL: nodes share the store's database, presence is a table, and
 * notifications travel by `NOTIFY` to the nodes that `LISTEN`.
 *
 * Presence: the node holding a device's session keeps its row in `presence` (node, session,
 * expiry by the server's clock), refreshed every third of the TTL; a new session takes the row over
 * and, if an older one was on another node, tells that node to close it (`replaced`).
 *
 * Routing: an entry of a device stream goes to the inbox channel of the node holding the device
 * (nowhere when offline: it replays on connect); an entry of a topic stream goes to the topic's
 * channel, which exactly the nodes with followers of that topic listen to. Entries for local
 * sessions are handed over in-process. Payloads stay under PostgreSQL's 8000-byte limit: entries
 * too large are sent by reference (the stream name) and read from the store by the receiver.
 *
 * A notification is at most once (a node that is not listening at the time misses it); the store
 * holds the message. The listening connection is one dedicated client: after it reconnects, the
 * bus listens again, reasserts presence, then catches every local session up from the store; it
 * also does that every `resyncIntervalMs`.
 *
 * @example
 * const bus = await PostgresBus.connect({ url: 'postgres://pushwire@db/pushwire', nodeId: 'node-a' });
 * const server = createPushwireServer({ store, bus, apiKeys });
 */
export class PostgresBus implements Bus {
  readonly nodeId: string;
  private readonly channels: PgChannels;
  private readonly schema: string;
  private readonly inbox: string;
  private readonly ttl: number;
  private readonly log: Logger | undefined;
  private sink: BusSink | undefined;
  /** Topic streams with local followers. */
  private readonly topics = new Set<string>();
  private readonly presence: PostgresPresence;
  private readonly sender: PgSender;
  private readonly timers: NodeJS.Timeout[] = [];
  private listener: pg.Client | undefined;
  private listening = false;
  private reconnecting = false;
  private readonly catchUp = new CatchUp(
    () => this.sink,
    () => this.closed,
    () => this.counters.resyncs++,
  );
  private closed = false;
  private closing: Promise<void> | undefined;
  private up = true;
  /** Counters (metrics, tests). */
  readonly counters = { routed: 0, received: 0, resyncs: 0, dropped: 0, byReference: 0 };

  private constructor(
    private readonly pool: pg.Pool,
    private readonly opts: PostgresBusOptions,
  ) {
    this.nodeId = opts.nodeId ?? randomBytes(6).toString('hex');
    this.schema = schemaOf(opts);
    this.channels = new PgChannels(this.schema);
    this.inbox = this.channels.inbox(this.nodeId);
    this.ttl = Math.max(1000, opts.presenceTtlMs ?? 60_000);
    this.log = opts.logger;
    this.sender = new PgSender(
      { pool, channels: this.channels, schema: this.schema, nodeId: this.nodeId, log: this.log },
      this.counters,
      { closed: () => this.closed, listening: () => this.listening },
    );
    this.presence = new PostgresPresence({
      pool,
      nodeId: this.nodeId,
      ttlMs: this.ttl,
      replaced: (device, session) => this.sink?.command(device, { t: 'replaced', session }),
      kick: (node, device, session) =>
        this.sender.notify([
          [
            { channel: this.channels.inbox(node) },
            packCommand(this.nodeId, device, { t: 'replaced', session }),
          ],
        ]),
    });
    const every = (ms: number, fn: () => void) => {
      const t = setInterval(fn, ms);
      t.unref();
      this.timers.push(t);
    };
    every(Math.floor(this.ttl / 3), () => void this.refreshPresence());
    every(Math.max(1000, opts.resyncIntervalMs ?? 60_000), () => this.resync());
    every(PING_MS, () => this.checkListener());
  }

  /** Connects, creates the schema when missing, and listens on this node's inbox; rejects with `STORE_UNAVAILABLE`. */
  static async connect(opts: PostgresBusOptions): Promise<PostgresBus> {
    if (opts.nodeId !== undefined && !NODE_ID.test(opts.nodeId)) {
      throw new Error(`node id ${JSON.stringify(opts.nodeId)}: use 1 to 64 of A-Z a-z 0-9 . _ -`);
    }
    const pool = createPool({ ...opts, poolSize: opts.poolSize ?? 4 });
    try {
      await migratePostgres(pool, schemaOf(opts));
      const bus = new PostgresBus(pool, opts);
      await bus.listen();
      return bus;
    } catch (err) {
      await pool.end().catch(() => {});
      throw toPostgresStoreError(err, `cannot use PostgreSQL at ${redactUrl(opts.url)}`);
    }
  }

  get healthy(): boolean {
    return !this.closed && this.listening;
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
    if (topics.length > 0 || remote.length > 0)
      this.sender.attempt(() => this.sender.sendOut(topics, remote));
  }

  send(deviceId: string, cmd: DeviceCommand): void {
    if (this.sink?.holds(deviceId)) return this.sink.command(deviceId, cmd);
    this.sender.attempt(() =>
      this.sender.notify([[{ device: deviceId }, packCommand(this.nodeId, deviceId, cmd)]]),
    );
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
    const listener = this.listener;
    if (!listener || !this.listening) return; // listened to again on reconnect
    listener
      .query(`LISTEN ${pg.escapeIdentifier(this.channels.topic(stream))}`)
      .then(() => this.sink?.resync({ stream }))
      .catch((err: unknown) => this.log?.debug({ err, stream }, 'LISTEN failed; retried on reconnect'));
  }

  unfollowed(stream: string): void {
    if (!this.topics.delete(stream) || !this.listener || !this.listening) return;
    this.listener.query(`UNLISTEN ${pg.escapeIdentifier(this.channels.topic(stream))}`).catch(() => {});
  }

  async isOnline(deviceId: string): Promise<boolean> {
    try {
      return await this.presence.isOnline(deviceId);
    } catch (err) {
      throw toPostgresStoreError(err, 'presence lookup failed');
    }
  }

  /** Stops timers, removes this node's presence (best effort), closes the connections. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      this.closed = true;
      for (const t of this.timers) clearInterval(t);
      this.sender.stop();
      await Promise.race([this.presence.clear(), sleep(1000)]);
      await Promise.race([this.listener?.end().catch(() => {}), sleep(1000)]);
      await Promise.race([this.pool.end().catch(() => {}), sleep(1000)]);
    })();
    return this.closing;
  }

  // ── internals ──────────────────────────────────────────────────────────────────────────────────

  /** Opens the listening connection and listens on the inbox and every followed topic. */
  private async listen(): Promise<void> {
    const client = new pg.Client(clientConfig(this.opts));
    client.on('error', () => this.onLost(client));
    client.on('end', () => this.onLost(client));
    client.on('notification', (n) => {
      if (n.payload !== undefined) this.onMessage(n.payload);
    });
    try {
      await client.connect();
      const channels = [this.inbox, ...[...this.topics].map((s) => this.channels.topic(s))];
      // One round trip: LISTEN statements in one simple query.
      for (let i = 0; i < channels.length; i += 500) {
        await client.query(
          channels
            .slice(i, i + 500)
            .map((c) => `LISTEN ${pg.escapeIdentifier(c)};`)
            .join(''),
        );
      }
    } catch (err) {
      client.removeAllListeners('end');
      client.on('error', () => {});
      await client.end().catch(() => {});
      throw err;
    }
    this.listener = client;
    this.listening = true;
  }

  private onMessage(text: string): void {
    const m = parsePgMessage(text);
    // Our own topic messages were handed over locally already.
    if (!m || !this.sink || m.o === this.nodeId) return;
    this.counters.received++;
    if (m.e && m.e.length > 0) this.sink.dispatch(m.e);
    for (const [device, cmd] of m.c ?? []) this.sink.command(device, cmd);
    for (const stream of m.r ?? []) {
      const device = deviceOfStream(stream);
      void this.sink.resync(device === undefined ? { stream } : { device }).catch(() => {});
    }
  }

  /** The listening connection failed or ended: reconnect in the background. */
  private onLost(client: pg.Client): void {
    if (client !== this.listener) return;
    this.listening = false;
    this.listener = undefined;
    client.removeAllListeners('notification');
    client.end().catch(() => {});
    if (this.closed) return;
    if (this.up) {
      this.up = false;
      this.log?.warn(
        { node: this.nodeId },
        'lost PostgreSQL: publishes answer 503 until it is back; sockets stay open',
      );
    }
    void this.reconnect();
  }

  /** Reconnects the listener until it succeeds; then presence back, then catch-up. */
  private async reconnect(): Promise<void> {
    if (this.reconnecting) return;
    this.reconnecting = true;
    try {
      for (let attempt = 0; !this.closed; attempt++) {
        await sleep(BACKOFF_MS[Math.min(attempt, BACKOFF_MS.length - 1)]!);
        if (this.closed) return;
        try {
          await this.listen();
        } catch (err) {
          this.log?.debug({ err }, 'listener reconnect failed');
          continue;
        }
        this.up = true;
        this.log?.info({ node: this.nodeId }, 'bus reconnected to PostgreSQL; catching sessions up');
        await this.refreshPresence();
        this.sender.flushBacklog();
        this.resync();
        return;
      }
    } finally {
      this.reconnecting = false;
    }
  }

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

  /** A listener that stopped answering is dropped and reconnected (and so listens again, resyncs). */
  private checkListener(): void {
    const client = this.listener;
    if (this.closed || !client || !this.listening) return;
    const timeout = setTimeout(() => this.onLost(client), PING_MS);
    client
      .query('SELECT 1')
      .then(() => clearTimeout(timeout))
      .catch(() => {
        clearTimeout(timeout);
        this.onLost(client);
      });
  }
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms).unref());
