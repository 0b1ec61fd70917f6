import type pg from 'pg';
import type { EntryFate } from './types.js';

/**
 * What the PostgreSQL store knows of one entry, for publishers' delivery status: its row (stored,
 * collapsed, or gone), the message that replaced it, the device's ack time (table `deliveries`,
 * written with the acks) and cursor, or a topic's subscribers at or past it and behind it.
 * `cursors`: the device's cursors (acks not yet written included), for a device stream.
 */
export async function fateOf(
  pool: pg.Pool,
  stream: string,
  seq: number,
  cursors: Record<string, number>,
): Promise<EntryFate> {
  const row = (
    await pool.query<{ id: string; collapsed: boolean; collapse_key: string | null }>(
      'SELECT id, collapsed, collapse_key FROM entries WHERE stream = $1 AND seq = $2',
      [stream, seq],
    )
  ).rows[0];
  const fate: EntryFate = { entry: row === undefined ? 'gone' : row.collapsed ? 'collapsed' : 'stored' };
  if (row?.collapsed && row.collapse_key !== null) {
    const by = (
      await pool.query<{ id: string; seq: number; ts: number }>(
        `SELECT id, seq, ts FROM entries WHERE stream = $1 AND collapse_key = $2 AND seq > $3
         ORDER BY seq LIMIT 1`,
        [stream, row.collapse_key, seq],
      )
    ).rows[0];
    if (by) fate.collapsedBy = by;
  }
  if (stream.startsWith('d:')) {
    const device = stream.slice(2);
    const r = await pool.query<{ exists: boolean; acked_at: number | null }>(
      `SELECT EXISTS (SELECT 1 FROM devices WHERE id = $1) AS exists,
        (SELECT acked_at FROM deliveries WHERE device_id = $1 AND seq = $2) AS acked_at`,
      [device, seq],
    );
    if (r.rows[0]?.exists) fate.cursor = cursors[stream] ?? 0;
    const ackedAt = r.rows[0]?.acked_at;
    if (ackedAt !== null && ackedAt !== undefined) fate.ackedAt = ackedAt;
  } else if (stream.startsWith('t:')) {
    const r = await pool.query<{ at_or_past: number; behind: number }>(
      `SELECT count(*) FILTER (WHERE c.seq >= $3) AS at_or_past,
        count(*) FILTER (WHERE coalesce(c.seq, 0) < $3) AS behind
       FROM subscriptions s LEFT JOIN cursors c ON c.device_id = s.device_id AND c.stream = $2
       WHERE s.topic = $1`,
      [stream.slice(2), stream, seq],
    );
    fate.subscribers = { atOrPast: r.rows[0]?.at_or_past ?? 0, behind: r.rows[0]?.behind ?? 0 };
  }
  return fate;
}
