import type { NotificationFields, Urgency } from '@pushwire/protocol';

/** A registered device. The token itself is never stored, only its SHA-256 hash. */
export interface DeviceRecord {
  id: string;
  tokenHash: string;
  user?: string;
  createdAt: number;
  /** Last time the device had an open session (ms since epoch); 0 when never. */
  lastSeen: number;
}

/** A message to append to one stream. */
export interface NewEntry {
  /** Message id: the publisher's idempotency key, shared by every stream entry of one publish. */
  id: string;
  stream: string;
  data?: unknown;
  notification?: NotificationFields;
  urgency?: Urgency;
  collapseKey?: string;
  /** Publish time, ms since epoch. */
  ts: number;
  /** Expiry, ms since epoch. `exp <= ts` means "deliver only to sessions online now". */
  exp: number;
}

/** An entry as stored, with its place in the stream. */
export interface StoredEntry extends NewEntry {
  seq: number;
  /** Seq of the entry before this one in the same stream (0 for the first). */
  prevSeq: number;
}

/** The outcome of one publish: what the publisher is told. */
export interface PublishRecord {
  id: string;
  /** Streams and seqs the publish appended to (empty when a user had no devices). */
  entries: { stream: string; seq: number }[];
  ts: number;
  exp: number;
}

/** One publish: its id and the entries (one per target stream) to append atomically. */
export interface PublishBatchItem {
  id: string;
  entries: NewEntry[];
}

/** Result of {@link Store.publish}: `duplicate` is true when the id had been published before. */
export interface PublishResult {
  record: PublishRecord;
  duplicate: boolean;
  /** Entries newly appended (empty for a duplicate), for live delivery. */
  appended: StoredEntry[];
}

/**
 * What a store knows of one entry of a publish, for publishers' delivery status
 * ({@link Store.entryFate}).
 */
export interface EntryFate {
  /**
   * `stored`: the entry is still there; `collapsed`: a newer message with its collapse key replaced
   * it; `gone`: removed (by the sweep once expired, collapsed or acknowledged, or with its device).
   */
  entry: 'stored' | 'collapsed' | 'gone';
  /** The message that replaced a collapsed entry, while the store still has it. */
  collapsedBy?: { id: string; seq: number; ts: number };
  /** Device stream: when the device acknowledged this message while it was deliverable. */
  ackedAt?: number;
  /** Device stream: the device's acknowledged cursor; absent when the device no longer exists. */
  cursor?: number;
  /** Topic stream: current subscribers whose cursor is at or past the entry, and those behind it. */
  subscribers?: { atOrPast: number; behind: number };
}

/**
 * Durable state of a Pushwire node. Every method is async so that networked engines (Redis) fit;
 * the embedded SQLite engine batches writes so one fsync covers many publishes.
 *
 * Semantics every engine keeps (tested by the shared store contract tests):
 * - `publish` resolves only once its entries are durable; a publish whose id was seen before
 *   appends nothing and returns the first record (idempotency).
 * - seqs of a stream start at 1 and increase by one per appended entry;
 * - appending an entry with a collapse key marks older entries of its stream with the same key as
 *   collapsed: `read` never returns them again;
 * - `read` never returns an entry whose `exp <= now`.
 */
export interface Store {
  createDevice(device: DeviceRecord): Promise<void>;
  getDevice(id: string): Promise<DeviceRecord | undefined>;
  deleteDevice(id: string): Promise<void>;
  devicesOfUser(user: string): Promise<string[]>;
  touchDevice(id: string, lastSeen: number): Promise<void>;

  /** Subscribes a device to a topic stream; returns the cursor set for it (the stream's head). */
  subscribe(deviceId: string, topic: string): Promise<number>;
  unsubscribe(deviceId: string, topic: string): Promise<void>;
  topicsOf(deviceId: string): Promise<string[]>;

  /** Appends publishes durably. Resolves once stored (batched with concurrent calls). */
  publish(item: PublishBatchItem): Promise<PublishResult>;
  getPublish(id: string): Promise<PublishRecord | undefined>;

  /** Entries of `stream` with seq > `after`, oldest first, at most `limit`, none expired or collapsed. */
  read(stream: string, after: number, limit: number, now: number): Promise<StoredEntry[]>;
  /** Highest seq of a stream (0 when empty). */
  head(stream: string): Promise<number>;

  /** Records the device's acknowledged cursors (cumulative; a lower value never moves a cursor back). */
  ack(deviceId: string, cursors: Record<string, number>): Promise<void>;
  cursorsOf(deviceId: string): Promise<Record<string, number>>;
  /** Number of deliverable entries after the device's cursors on its own and its topic streams. */
  pendingCount(deviceId: string, now: number): Promise<number>;

  /** Deletes expired entries and publish records older than the retention; returns entries removed. */
  sweep(now: number): Promise<number>;

  /** Optional (delivery status): what became of entry `seq` of `stream`. */
  entryFate?(stream: string, seq: number): Promise<EntryFate>;
  /** Optional (dashboard): the newest entries still stored in `stream`, any state, newest first. */
  recentEntries?(stream: string, limit: number): Promise<StoredEntry[]>;
  close(): Promise<void>;
}
