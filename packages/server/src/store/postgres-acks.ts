import type pg from 'pg';

/**
 * Acks and last-seen times of the PostgreSQL store, coalesced: calls made while a write is in
 * flight are gathered into the next one (one statement for all cursors and touches), so an ack
 * stream costs a few round trips instead of one per message. Every call resolves once its
 * value is committed. Until then, {@link pendingCursor} shows it to readers (cursorsOf), so an ack
 * is visible to reads issued right after it.
 * @internal
 */

/**
 * Acks of a message that arrive this long after its expiry still count as a delivery (the entry
 * was sent before it expired and the ack was in flight), as in SQLite's delivery log.
 */
const ACK_GRACE_MS = 10_000;

/**
 * Records the delivery of every deliverable entry an own-stream ack covers (past the stored
 * cursor: the statement's snapshot has the old one), moves cursors forward only (ignoring devices
 * that no longer exist) and sets last-seen times, in one statement. $1 devices, $2 streams, $3
 * seqs; $4 devices, $5 last-seen times; $6 now, $7 grace.
 */
const WRITE = `
WITH l AS (
  INSERT INTO deliveries (device_id, seq, acked_at)
  SELECT u.d, e.seq, $6::bigint FROM unnest($1::text[], $2::text[], $3::bigint[]) AS u(d, s, q)
  JOIN entries e ON e.stream = u.s AND e.seq <= u.q AND NOT e.collapsed AND (e.exp > $6::bigint - $7::bigint OR e.exp <= e.ts)
  WHERE u.s = 'd:' || u.d
    AND e.seq > coalesce((SELECT seq FROM cursors c WHERE c.device_id = u.d AND c.stream = u.s), 0)
  ON CONFLICT DO NOTHING
), a AS (
  INSERT INTO cursors (device_id, stream, seq)
  SELECT u.d, u.s, u.q FROM unnest($1::text[], $2::text[], $3::bigint[]) AS u(d, s, q)
  WHERE EXISTS (SELECT 1 FROM devices WHERE id = u.d)
  ON CONFLICT (device_id, stream) DO UPDATE SET seq = greatest(cursors.seq, excluded.seq)
), t AS (
  UPDATE devices SET last_seen = u.t FROM unnest($4::text[], $5::bigint[]) AS u(d, t) WHERE devices.id = u.d
)
SELECT 1`;

interface Pending {
  /** device → stream → seq (the highest asked). */
  acks: Map<string, Map<string, number>>;
  touches: Map<string, number>;
  waiters: { resolve: () => void; reject: (err: unknown) => void }[];
}

const empty = (): Pending => ({ acks: new Map(), touches: new Map(), waiters: [] });

export class PostgresAcks {
  private next = empty();
  private inflight: Pending | undefined;
  private scheduled = false;

  constructor(
    private readonly write: (fn: (client: pg.PoolClient) => Promise<void>) => Promise<void>,
    /** Time of the acks (delivery log). */
    private readonly clock: () => number,
  ) {}

  /** Queues cursor moves; resolves once written. */
  ack(deviceId: string, cursors: [string, number][]): Promise<void> {
    let acks = this.next.acks.get(deviceId);
    if (!acks) {
      acks = new Map();
      this.next.acks.set(deviceId, acks);
    }
    for (const [stream, seq] of cursors) acks.set(stream, Math.max(acks.get(stream) ?? 0, seq));
    return this.queued();
  }

  touch(deviceId: string, lastSeen: number): Promise<void> {
    this.next.touches.set(deviceId, lastSeen);
    return this.queued();
  }

  /** Highest cursor not yet written (queued or in flight) of a device on a stream; 0 when none. */
  pendingCursor(deviceId: string, stream: string): number {
    return Math.max(
      this.next.acks.get(deviceId)?.get(stream) ?? 0,
      this.inflight?.acks.get(deviceId)?.get(stream) ?? 0,
    );
  }

  /** Cursors not yet written of a device. */
  pendingCursors(deviceId: string): Map<string, number> {
    const out = new Map(this.inflight?.acks.get(deviceId));
    for (const [stream, seq] of this.next.acks.get(deviceId) ?? [])
      out.set(stream, Math.max(out.get(stream) ?? 0, seq));
    return out;
  }

  /** Drops queued (not yet sent) acks of a stream: an unsubscribe must not be undone by them. */
  forget(deviceId: string, stream?: string): void {
    if (stream === undefined) this.next.acks.delete(deviceId);
    else this.next.acks.get(deviceId)?.delete(stream);
    if (stream === undefined) this.next.touches.delete(deviceId);
  }

  /** Resolves once everything queued before the call is written (close). */
  async flushed(): Promise<void> {
    while (this.inflight || this.next.waiters.length > 0) {
      await new Promise<void>((resolve) => {
        const done = () => resolve();
        (this.inflight ?? this.next).waiters.push({ resolve: done, reject: done });
        this.schedule();
      });
    }
  }

  private queued(): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.next.waiters.push({ resolve, reject });
      this.schedule();
    });
  }

  private schedule(): void {
    if (this.scheduled || this.inflight) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      void this.flush();
    });
  }

  private async flush(): Promise<void> {
    if (this.inflight || this.next.waiters.length === 0) return;
    const batch = this.next;
    this.next = empty();
    this.inflight = batch;
    const devices: string[] = [];
    const streams: string[] = [];
    const seqs: number[] = [];
    for (const [device, acks] of batch.acks) {
      for (const [stream, seq] of acks) {
        devices.push(device);
        streams.push(stream);
        seqs.push(seq);
      }
    }
    try {
      await this.write(async (client) => {
        await client.query(WRITE, [
          devices,
          streams,
          seqs,
          [...batch.touches.keys()],
          [...batch.touches.values()],
          this.clock(),
          ACK_GRACE_MS,
        ]);
      });
      for (const w of batch.waiters) w.resolve();
    } catch (err) {
      for (const w of batch.waiters) w.reject(err);
    } finally {
      this.inflight = undefined;
      if (this.next.waiters.length > 0) this.schedule();
    }
  }
}
