import type pg from 'pg';

/** Presence rows refreshed per statement. */
const CHUNK = 1000;

/** Takes a device's presence over; returns the previous holder while it had not expired. $1 device, $2 node, $3 session, $4 ttl ms. */
const ATTACH = `
WITH old AS (SELECT node, session FROM presence WHERE device_id = $1 AND expires_at > now())
INSERT INTO presence (device_id, node, session, expires_at)
VALUES ($1, $2, $3, now() + $4 * interval '1 millisecond')
ON CONFLICT (device_id) DO UPDATE
  SET node = excluded.node, session = excluded.session, expires_at = excluded.expires_at
RETURNING (SELECT node FROM old) AS node, (SELECT session FROM old) AS session`;

/**
 * Refreshes (or takes again, once expired) the presence of devices this node holds; returns the
 * ones another session holds now. $1 devices, $2 sessions, $3 node, $4 ttl ms.
 */
const REFRESH = `
WITH h AS (SELECT * FROM unnest($1::text[], $2::text[]) AS h(d, s)),
up AS (
  INSERT INTO presence (device_id, node, session, expires_at)
  SELECT d, $3, s, now() + $4 * interval '1 millisecond' FROM h
  ON CONFLICT (device_id) DO UPDATE
    SET node = excluded.node, session = excluded.session, expires_at = excluded.expires_at
    WHERE (presence.node = excluded.node AND presence.session = excluded.session) OR presence.expires_at <= now()
  RETURNING device_id
)
SELECT d, s FROM h WHERE d NOT IN (SELECT device_id FROM up)`;

/** Options of {@link PostgresPresence}. */
export interface PostgresPresenceOptions {
  pool: pg.Pool;
  nodeId: string;
  ttlMs: number;
  /** A session of this node was taken over: by a newer one elsewhere, or found so at a refresh. */
  replaced(deviceId: string, sessionId: string): void;
  /** An older session of the device is open on `node`: tell it to close it. */
  kick(node: string, deviceId: string, sessionId: string): Promise<void>;
}

/**
 * Which devices this node holds, mirrored in the `presence` table with an expiry the node
 * refreshes (by PostgreSQL's clock), so a dead node's devices count as offline within one TTL. A
 * node only refreshes or deletes rows that still name its own session.
 */
export class PostgresPresence {
  /** Devices held here → session id. */
  private readonly held = new Map<string, string>();
  private refreshing = false;

  constructor(private readonly o: PostgresPresenceOptions) {}

  /** Records a new session and takes the row over; resolves once written. */
  async attach(deviceId: string, sessionId: string): Promise<void> {
    this.held.set(deviceId, sessionId);
    const old = (
      await this.o.pool.query<{ node: string | null; session: string | null }>(ATTACH, [
        deviceId,
        this.o.nodeId,
        sessionId,
        this.o.ttlMs,
      ])
    ).rows[0];
    if (old?.node && old.session && old.node !== this.o.nodeId)
      await this.o.kick(old.node, deviceId, old.session);
  }

  /** The session closed: forget it, and delete the row if it is still ours (else it expires). */
  detach(deviceId: string, sessionId: string): void {
    if (this.held.get(deviceId) !== sessionId) return;
    this.held.delete(deviceId);
    this.o.pool
      .query('DELETE FROM presence WHERE device_id = $1 AND node = $2 AND session = $3', [
        deviceId,
        this.o.nodeId,
        sessionId,
      ])
      .catch(() => {});
  }

  /** Refreshes every row of this node, in chunks; also drops rows long expired. */
  async refresh(): Promise<void> {
    if (this.refreshing) return;
    this.refreshing = true;
    try {
      const all = [...this.held];
      for (let i = 0; i < all.length; i += CHUNK) {
        const chunk = all.slice(i, i + CHUNK);
        const lost = await this.o.pool.query<{ d: string; s: string }>(REFRESH, [
          chunk.map(([d]) => d),
          chunk.map(([, s]) => s),
          this.o.nodeId,
          this.o.ttlMs,
        ]);
        for (const { d, s } of lost.rows) if (this.held.get(d) === s) this.o.replaced(d, s);
      }
      await this.o.pool.query(
        "DELETE FROM presence WHERE expires_at < now() - $1 * interval '1 millisecond'",
        [this.o.ttlMs],
      );
    } finally {
      this.refreshing = false;
    }
  }

  /** Deletes every row of this node (graceful shutdown), best effort. */
  async clear(): Promise<void> {
    const held = [...this.held];
    this.held.clear();
    if (held.length === 0) return;
    await this.o.pool
      .query(
        `DELETE FROM presence p USING unnest($1::text[], $2::text[]) AS h(d, s)
         WHERE p.device_id = h.d AND p.session = h.s AND p.node = $3`,
        [held.map(([d]) => d), held.map(([, s]) => s), this.o.nodeId],
      )
      .catch(() => {});
  }

  async isOnline(deviceId: string): Promise<boolean> {
    const r = await this.o.pool.query('SELECT 1 FROM presence WHERE device_id = $1 AND expires_at > now()', [
      deviceId,
    ]);
    return (r.rowCount ?? 0) > 0;
  }
}
