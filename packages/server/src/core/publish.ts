import type { NotificationFields, Urgency } from '@pushwire/protocol';
import type { NewEntry, PublishLimits, PublishRecord } from '../store/types.js';
import { HubError } from './errors.js';

/** Exactly one target of a publish. */
export type Target = { device: string } | { user: string } | { topic: string };

/** A validated publish request. */
export interface PublishRequest {
  to: Target;
  id?: string;
  data?: unknown;
  notification?: NotificationFields;
  /** Seconds; 0 = deliver only to sessions online now. */
  ttl: number;
  collapseKey?: string;
  /** Forwarded to the device in the msg frame. Low and very-low also imply {@link PublishRequest.hold}. */
  urgency?: Urgency;
  /**
   * Hand the message to an online device with its next heartbeat instead of at once, so its radio
   * wakes once for both (default: true for low and very-low urgency). Never delays past one
   * heartbeat interval; offline devices get it on reconnect as usual.
   */
  hold?: boolean;
  /**
   * Stream entries the request may still create, shared by the messages of one request (a batch);
   * default: a budget of {@link HubLimits.maxEntriesPerRequest} for this message alone.
   */
  budget?: EntryBudget;
}

/** Entries one request may still create (see {@link HubLimits.maxEntriesPerRequest}). */
export interface EntryBudget {
  remaining: number;
}

/** Bounds the hub passes to the store or keeps itself (see ServerOptions for each). */
export interface HubLimits {
  maxTopicsPerDevice?: number;
  maxPendingPerDevice?: number;
  maxPendingBytesPerDevice?: number;
  maxEntriesPerRequest?: number;
  /** Seconds. */
  unfollowedTopicTtl?: number;
}

/** What the publisher is told. */
export interface PublishOutcome extends PublishRecord {
  duplicate: boolean;
}

/**
 * The entries of one publish, one per target stream: the same id, time and expiry (`ttl` 0: deliver
 * only to sessions online now), and the request's optional fields. Low and very-low urgency imply
 * `hold` unless the request says otherwise.
 */
export function newEntries(
  req: PublishRequest,
  id: string,
  streams: readonly string[],
  now: number,
): NewEntry[] {
  const exp = req.ttl === 0 ? now : now + req.ttl * 1000;
  const hold = req.hold ?? (req.urgency === 'low' || req.urgency === 'very-low');
  // Optional fields are set one by one: a spread of `cond && {…}` allocates a throwaway object each.
  const entries: NewEntry[] = new Array(streams.length);
  for (let i = 0; i < streams.length; i++) {
    const e: NewEntry = { id, stream: streams[i] as string, ts: now, exp };
    if (req.data !== undefined) e.data = req.data;
    if (req.notification !== undefined) e.notification = req.notification;
    if (req.urgency !== undefined) e.urgency = req.urgency;
    if (hold) e.hold = hold;
    if (req.collapseKey !== undefined) e.collapseKey = req.collapseKey;
    entries[i] = e;
  }
  return entries;
}

/** The bounds the store enforces on a publish, from the hub's limits. */
export function storeLimitsOf(l: HubLimits): PublishLimits {
  return {
    ...(l.maxPendingPerDevice !== undefined && { maxPending: l.maxPendingPerDevice }),
    ...(l.maxPendingBytesPerDevice !== undefined && { maxPendingBytes: l.maxPendingBytesPerDevice }),
    ...(l.unfollowedTopicTtl !== undefined && { unfollowedTopicTtlMs: l.unfollowedTopicTtl * 1000 }),
  };
}

/**
 * Takes `n` entries from the request's budget (default: `max` for this message alone);
 * `TOO_MANY_ENTRIES` when it has fewer. No budget and no `max`: unbounded.
 */
export function spendBudget(budget: EntryBudget | undefined, n: number, max: number | undefined): void {
  const b = budget ?? (max === undefined ? undefined : { remaining: max });
  if (b === undefined) return;
  if (n > b.remaining) {
    throw new HubError(
      'TOO_MANY_ENTRIES',
      `this message would create ${n} entries and the request may create ${b.remaining} more (limit ${max} per request)`,
    );
  }
  b.remaining -= n;
}
