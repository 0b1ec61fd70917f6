import { deviceOfStream } from '@pushwire/protocol';
import type pg from 'pg';
import type { Logger } from 'pino';
import type { StoredEntry } from '../store/types.js';
import { PgChannels, packEntries } from './postgres-codec.js';

/** Route jobs kept while PostgreSQL is unreachable, retried later (at most MAX_TRIES times). */
const MAX_BACKLOG = 10_000;
const MAX_TRIES = 5;
/** A failing job is retried this much later while the listener is connected. */
const RETRY_MS = 1000;
/**
 * Sends notifications in one statement, in order: to a given channel (`c`), or to the inbox of
 * the node holding device `d` (looked up in `presence`; none when offline or held by this node).
 * $1 channels, $2 devices, $3 payloads, $4 schema, $5 this node.
 */
const NOTIFY = `
SELECT pg_notify(coalesce(u.c, ${PgChannels.inboxSql('$4::text')}), u.p)
FROM unnest($1::text[], $2::text[], $3::text[]) WITH ORDINALITY AS u(c, d, p, i)
LEFT JOIN presence ON u.c IS NULL AND presence.device_id = u.d AND presence.expires_at > now()
WHERE u.c IS NOT NULL OR (presence.node IS NOT NULL AND presence.node <> $5)
ORDER BY u.i`;

/** Counters of the bus that sending moves. */
export interface SenderCounters {
  routed: number;
  dropped: number;
  byReference: number;
}

/** What the sender needs of the bus. */
export interface SenderConnection {
  pool: pg.Pool;
  channels: PgChannels;
  schema: string;
  nodeId: string;
  log: Logger | undefined;
}

/**
 * The PostgreSQL bus's outgoing side: notifications sent in one statement (topic channels,
 * holders' inboxes), and routing jobs kept in a bounded backlog while PostgreSQL is unreachable.
 * @internal
 */
export class PgSender {
  private readonly backlog: { job: () => Promise<void>; tries: number }[] = [];
  private flushTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly conn: SenderConnection,
    private readonly counters: SenderCounters,
    private readonly state: { closed(): boolean; listening(): boolean },
  ) {}

  /** Topic entries to their topics' channels, device entries to their holders' inboxes: one statement. */
  async sendOut(topics: StoredEntry[], remote: StoredEntry[]): Promise<void> {
    const out: [Target, string][] = [];
    for (const [stream, list] of groupBy(topics, (e) => e.stream)) {
      const channel = this.conn.channels.topic(stream);
      for (const p of packEntries(this.conn.nodeId, list)) out.push([{ channel }, p]);
    }
    for (const [device, list] of groupBy(remote, (e) => deviceOfStream(e.stream)!)) {
      for (const p of packEntries(this.conn.nodeId, list)) out.push([{ device }, p]);
    }
    await this.notify(out);
  }

  /** Sends notifications in one statement (one round trip), in order; see {@link NOTIFY}. */
  async notify(messages: [Target, string][]): Promise<void> {
    if (messages.length === 0) return;
    await this.conn.pool.query(NOTIFY, [
      messages.map(([t]) => ('channel' in t ? t.channel : null)),
      messages.map(([t]) => ('device' in t ? t.device : null)),
      messages.map(([, p]) => p),
      this.conn.schema,
      this.conn.nodeId,
    ]);
    // Counted once sent: notifications handed to PostgreSQL (sent on to the listeners at COMMIT).
    this.counters.routed += messages.length;
    for (const [, p] of messages) if (p.includes('"r":[')) this.counters.byReference++;
  }

  /**
   * Runs a routing job; when it fails (PostgreSQL unreachable), keeps it for when PostgreSQL is
   * back, a few times at most and within a bound: sessions it misses are caught up by the resync
   * that follows the listener's reconnect anyway.
   */
  attempt(job: () => Promise<void>, tries = 0): void {
    job().catch((err: unknown) => {
      if (this.state.closed()) return;
      this.conn.log?.debug({ err }, 'routing failed; retried shortly');
      if (tries >= MAX_TRIES || this.backlog.length >= MAX_BACKLOG) {
        this.counters.dropped++;
        return;
      }
      this.backlog.push({ job, tries: tries + 1 });
      // While the listener is down, jobs wait for its reconnect (which flushes them); connected
      // yet failing (a timeout), they are retried a little later, never in a tight loop.
      if (this.state.listening() && !this.flushTimer) {
        this.flushTimer = setTimeout(() => this.flushBacklog(), RETRY_MS);
        this.flushTimer.unref();
      }
    });
  }

  flushBacklog(): void {
    clearTimeout(this.flushTimer);
    this.flushTimer = undefined;
    for (const { job, tries } of this.backlog.splice(0)) this.attempt(job, tries);
  }

  /** Stops the retry timer (the bus closes). */
  stop(): void {
    clearTimeout(this.flushTimer);
  }
}

/** Where a notification goes: a channel, or the inbox of the node holding a device. */
export type Target = { channel: string } | { device: string };

function groupBy<T>(items: T[], key: (item: T) => string): Map<string, T[]> {
  const out = new Map<string, T[]>();
  for (const item of items) {
    const k = key(item);
    const list = out.get(k);
    if (list) list.push(item);
    else out.set(k, [item]);
  }
  return out;
}
