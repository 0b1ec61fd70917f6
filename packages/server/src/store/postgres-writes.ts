import { topicStream } from '@pushwire/protocol';
import type pg from 'pg';
import { QuotaError, StoreError } from './errors.js';
import type { DeviceLimits, DeviceRecord } from './types.js';

/*
 * The PostgreSQL store's multi-statement writes, each run in one transaction by the store:
 * registering devices under their per-user and per-register-key bounds, subscribing under the per-device topic bound,
 * and the sweep. Internal to postgres.ts.
 */

/** Columns of `devices`, in insert order. */
export const DEVICE_COLUMNS = 'id, token_hash, "user", created_at, last_seen, subscribe';

/** Advisory lock key of the sweep (one node sweeps a schema at a time). */
const SWEEP_LOCK = 'pushwire-sweep:';

/**
 * Inserts devices; the devices-per-user and devices-per-register-key bounds are checked under a
 * transaction-level advisory lock per user and per key, so concurrent registrations never pass them.
 */
export async function insertDevices(
  client: pg.PoolClient,
  devices: DeviceRecord[],
  limits: DeviceLimits | undefined,
): Promise<void> {
  const perUser = limits?.maxDevicesPerUser;
  if (perUser !== undefined) {
    await checkBound(
      client,
      devices,
      (d) => d.user,
      '"user"',
      perUser,
      (user) => {
        throw new QuotaError('TOO_MANY_DEVICES', `user ${JSON.stringify(user)} may have ${perUser} devices`);
      },
    );
  }
  const perKey = limits?.maxDevicesPerKey;
  if (perKey) {
    await checkBound(
      client,
      devices,
      (d) => d.keyId,
      'key_id',
      perKey,
      (key) => {
        throw new QuotaError(
          'DEVICE_QUOTA_EXCEEDED',
          `register key ${JSON.stringify(key)} may have ${perKey} devices`,
        );
      },
    );
  }
  for (const d of devices) {
    const r = await client.query(
      `INSERT INTO devices (${DEVICE_COLUMNS}, key_id) VALUES ($1, $2, $3, $4, $5, $6, $7)
        ON CONFLICT (id) DO NOTHING`,
      [
        d.id,
        d.tokenHash,
        d.user ?? null,
        d.createdAt,
        d.lastSeen,
        d.subscribe === undefined ? null : JSON.stringify(d.subscribe),
        d.keyId ?? null,
      ],
    );
    if (r.rowCount === 0)
      throw new StoreError('STORE_INVALID', `device ${JSON.stringify(d.id)} already exists`);
  }
}

/** Locks each group (user or key) of `devices` and calls `refuse` for one that would pass `max`. */
async function checkBound(
  client: pg.PoolClient,
  devices: DeviceRecord[],
  groupOf: (d: DeviceRecord) => string | undefined,
  column: '"user"' | 'key_id',
  max: number,
  refuse: (group: string) => never,
): Promise<void> {
  const groups = [...new Set(devices.flatMap((d) => groupOf(d) ?? []))].sort();
  for (const group of groups) {
    await client.query('SELECT pg_advisory_xact_lock(hashtextextended($1, 0))', [
      `pushwire-${column === 'key_id' ? 'key' : 'user'}:${group}`,
    ]);
    const count = (
      await client.query<{ n: number }>(`SELECT count(*)::int AS n FROM devices WHERE ${column} = $1`, [
        group,
      ])
    ).rows[0]!.n;
    const adding = devices.filter((d) => groupOf(d) === group).length;
    if (count + adding > max) refuse(group);
  }
}

/**
 * Subscribes a device (its row locked, so concurrent subscribes of one device count topics one at a
 * time); the cursor is set at the topic's committed head. `existing`: it followed the topic already.
 */
export async function subscribeDevice(
  client: pg.PoolClient,
  deviceId: string,
  topic: string,
  max: number | undefined,
): Promise<{ cursor: number; existing: boolean }> {
  const stream = topicStream(topic);
  const found = await client.query('SELECT 1 FROM devices WHERE id = $1 FOR UPDATE', [deviceId]);
  if (found.rowCount === 0) throw new StoreError('STORE_NOT_FOUND', `no device ${JSON.stringify(deviceId)}`);
  const existing = await client.query<{ seq: number | null }>(
    `SELECT (SELECT seq FROM cursors WHERE device_id = $1 AND stream = $3) AS seq
     FROM subscriptions WHERE device_id = $1 AND topic = $2`,
    [deviceId, topic, stream],
  );
  if (existing.rowCount! > 0) return { cursor: existing.rows[0]!.seq ?? 0, existing: true };
  if (max !== undefined) {
    const n = (
      await client.query<{ n: number }>('SELECT count(*) AS n FROM subscriptions WHERE device_id = $1', [
        deviceId,
      ])
    ).rows[0]!.n;
    if (n >= max) throw new QuotaError('TOO_MANY_TOPICS', `a device may follow ${max} topics`);
  }
  await client.query('INSERT INTO subscriptions (device_id, topic) VALUES ($1, $2)', [deviceId, topic]);
  const head = (
    await client.query<{ head: number }>(
      `INSERT INTO cursors (device_id, stream, seq)
       VALUES ($1, $2, coalesce((SELECT head FROM streams WHERE name = $2), 0))
       ON CONFLICT (device_id, stream) DO UPDATE SET seq = excluded.seq RETURNING seq AS head`,
      [deviceId, stream],
    )
  ).rows[0]!.head;
  return { cursor: head, existing: false };
}

/**
 * Deletes expired and collapsed entries, acknowledged device-stream entries, and publish records
 * and delivery times older than the retention; 0 when another node holds the sweep lock.
 */
export async function sweepEntries(
  client: pg.PoolClient,
  schema: string,
  now: number,
  retentionMs: number,
): Promise<number> {
  const locked = await client.query<{ ok: boolean }>(
    'SELECT pg_try_advisory_xact_lock(hashtextextended($1, 0)) AS ok',
    [SWEEP_LOCK + schema],
  );
  if (!locked.rows[0]?.ok) return 0;
  const expired = await client.query('DELETE FROM entries WHERE exp <= $1', [now]);
  const collapsed = await client.query('DELETE FROM entries WHERE collapsed');
  const acked = await client.query(
    `DELETE FROM entries e USING cursors c
     WHERE c.stream = 'd:' || c.device_id AND e.stream = c.stream AND e.seq <= c.seq`,
  );
  await client.query('DELETE FROM publishes WHERE ts < $1', [now - retentionMs]);
  await client.query('DELETE FROM deliveries WHERE acked_at < $1', [now - retentionMs]);
  return (expired.rowCount ?? 0) + (collapsed.rowCount ?? 0) + (acked.rowCount ?? 0);
}
