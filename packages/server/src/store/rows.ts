import type { NotificationFields, Urgency } from '@pushwire/protocol';
import { StoreError } from './errors.js';
import type { DeviceRow, EntryRow, PublishRow } from './schema.js';
import type { DeviceRecord, NewEntry, PublishRecord, StoredEntry } from './types.js';
import type { WebPushSubscriptionRecord } from './webpush-registry.js';

/** Mapping between the store's records and SQLite rows (payloads are JSON in TEXT columns). */

export function toDevice(row: DeviceRow, pendingLastSeen: number | undefined): DeviceRecord {
  return {
    id: row.id,
    tokenHash: row.token_hash,
    ...(row.user !== null && { user: row.user }),
    createdAt: row.created_at,
    lastSeen: pendingLastSeen ?? row.last_seen,
    ...(row.subscribe != null && { subscribe: parsePatterns(row.subscribe) }),
  };
}

/** A device as a `devices` row. */
export function toDeviceRow(device: DeviceRecord): DeviceRow {
  return {
    id: device.id,
    token_hash: device.tokenHash,
    user: device.user ?? null,
    created_at: device.createdAt,
    last_seen: device.lastSeen,
    subscribe: device.subscribe === undefined ? null : JSON.stringify(device.subscribe),
    key_id: device.keyId ?? null,
  };
}

/** Serialises an entry's payload; data JSON cannot represent is refused now, not at commit. */
export function toEntryRow(entry: NewEntry): Omit<EntryRow, 'seq' | 'prev_seq'> {
  return {
    stream: entry.stream,
    id: entry.id,
    data: entry.data === undefined ? null : jsonField(entry.data, 'data', entry.id),
    notification:
      entry.notification === undefined ? null : jsonField(entry.notification, 'notification', entry.id),
    urgency: entry.urgency ?? null,
    collapse_key: entry.collapseKey ?? null,
    ts: entry.ts,
    exp: entry.exp,
  };
}

/** JSON of a payload field (no closure per entry: this runs once per published entry). */
function jsonField(value: unknown, field: string, id: string): string | null {
  try {
    return JSON.stringify(value) ?? null;
  } catch (err) {
    throw new StoreError('STORE_INVALID', `${field} of ${id} is not JSON-serialisable`, { cause: err });
  }
}

export function fromEntryRow(row: EntryRow): StoredEntry {
  return {
    id: row.id,
    stream: row.stream,
    seq: row.seq,
    prevSeq: row.prev_seq,
    ts: row.ts,
    exp: row.exp,
    ...(row.data !== null && { data: JSON.parse(row.data) as unknown }),
    ...(row.notification !== null && { notification: JSON.parse(row.notification) as NotificationFields }),
    ...(row.urgency !== null && { urgency: row.urgency as Urgency }),
    ...(row.collapse_key !== null && { collapseKey: row.collapse_key }),
  };
}

export function fromPublishRow(row: PublishRow): PublishRecord {
  return {
    id: row.id,
    entries: JSON.parse(row.entries) as PublishRecord['entries'],
    ts: row.ts,
    exp: row.exp,
  };
}

/** A stored pattern list; a corrupt one allows nothing (fails closed). */
export function parsePatterns(text: string): string[] {
  try {
    const v = JSON.parse(text) as unknown;
    return Array.isArray(v) ? v.filter((p): p is string => typeof p === 'string') : [];
  } catch {
    return [];
  }
}

/** A Web Push subscription as the SQL engines store it (table `webpush_subscriptions`). */
export interface WebPushRow {
  id: string;
  device_id: string;
  capability_hash: string;
  application_server_key: string | null;
  topic_key: string;
  created_at: number;
  revoked_at: number | null;
}

/** The registry's record of a stored subscription row. */
export const fromWebPushRow = (r: WebPushRow): WebPushSubscriptionRecord => ({
  id: r.id,
  deviceId: r.device_id,
  capabilityHash: r.capability_hash,
  topicKey: r.topic_key,
  createdAt: r.created_at,
  ...(r.application_server_key !== null && { applicationServerKey: r.application_server_key }),
  ...(r.revoked_at !== null && { revokedAt: r.revoked_at }),
});
