import { deviceStream, topicStream } from '@pushwire/protocol';
import type pg from 'pg';
import { QuotaError, StoreError } from './errors.js';
import type { DeviceLimits, DeviceRecord } from './types.js';

/*
 * The PostgreSQL store's multi-statement writes, each run in one transaction by the store:
 * registering devices under their per-user and per-register-key bounds, deleting a device,
 * subscribing under the per-device topic bound, and the sweep. Internal to postgres.ts.
 */

/** Columns of `devices`, in insert order. */
export const DEVICE_COLUMNS = 'id, token_hash, "user", created_at, last_seen, subscribe';

/** Advisory lock key of the sweep (one node sweeps a schema at a time). */
const SWEEP_LOCK = 'pushwire-sweep:';

/**
 * Inserts devices; the devices-per-user bound is checked under a transaction-level advisory lock
 * per user, the devices-per-register-key bound on the key's `register_keys` row (locked by the
 * update until the transaction ends), so concurrent registrations never pass them.
 */
export async function insertDevices(
  client: pg.PoolClient,
  devices: DeviceRecord[],
  limits: DeviceLimits | undefined,
): Promise<void> {
  const max = limits?.maxDevicesPerUser;
  if (max !== undefined) {
    const users = [...new Set(devices.flatMap((d) => (d.user === undefined ? [] : [d.user])))].sort();
    for (const user of users) {
      await client.query('SELECT pg_advisory_xact_lock(hashtextextended($1, 0))', [`pushwire-user:${user}`]);
      const count = (
        await client.query<{ n: number }>('SELECT count(*) AS n FROM devices WHERE "user" = $1', [user])
      ).rows[0]!.n;
      const adding = devices.filter((d) => d.user === user).length;
      if (count + adding > max) {
        throw new QuotaError('TOO_MANY_DEVICES', `user ${JSON.stringify(user)} may have ${max} devices`);
      }
    }
  }
  await countKeyDevices(client, devices, limits?.maxDevicesPerKey);
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

/**
 * Counts the devices each `register` key creates on its `register_keys` row; with `max` (0: no
 * bound), refuses a key whose count would pass it (the transaction then rolls the count back).
 */
async function countKeyDevices(
  client: pg.PoolClient,
  devices: DeviceRecord[],
  max: number | undefined,
): Promise<void> {
  const adding = new Map<string, number>();
  for (const d of devices) if (d.keyId !== undefined) adding.set(d.keyId, (adding.get(d.keyId) ?? 0) + 1);
  for (const key of [...adding.keys()].sort()) {
    const count = (
      await client.query<{ devices: string }>(
        `INSERT INTO register_keys (key_id, devices) VALUES ($1, $2)
          ON CONFLICT (key_id) DO UPDATE SET devices = register_keys.devices + excluded.devices
          RETURNING devices`,
        [key, adding.get(key)],
      )
    ).rows[0]!.devices;
    if (max && Number(count) > max) {
      throw new QuotaError(
        'DEVICE_QUOTA_EXCEEDED',
        `register key ${JSON.stringify(key)} may have ${max} devices`,
      );
    }
  }
}

/**
 * Deletes a device's rows: its stream's entries, its Web Push subscriptions, the device (cursors,
 * topics and wake token go by cascade), and counts it off its register key. Run in one transaction.
 */
export async function deleteDeviceRows(client: pg.PoolClient, id: string): Promise<void> {
  await client.query('DELETE FROM entries WHERE stream = $1', [deviceStream(id)]);
  await client.query('DELETE FROM webpush_subscriptions WHERE device_id = $1', [id]);
  const gone = await client.query<{ key_id: string | null }>(
    'DELETE FROM devices WHERE id = $1 RETURNING key_id',
    [id],
  );
  const keyId = gone.rows[0]?.key_id;
  if (keyId) await client.query('UPDATE register_keys SET devices = devices - 1 WHERE key_id = $1', [keyId]);
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
