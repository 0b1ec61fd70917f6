import {
  deviceOfStream,
  deviceStream,
  isDeviceStream,
  isTopicStream,
  topicOfStream,
  topicStream,
} from '@pushwire/protocol';
import { LocalBus } from '../bus/local.js';
import type { Bus, BusSink, CatchUpScope, DeviceCommand } from '../bus/types.js';
import type { PublishRecord, Store, StoredEntry } from '../store/types.js';
import type { Clock } from '../util/clock.js';
import { newMessageId } from '../util/ids.js';
import { HubError } from './errors.js';
import type { Follower, FrameEncoder } from './follower.js';
import {
  type HubLimits,
  newEntries,
  type PublishOutcome,
  type PublishRequest,
  spendBudget,
  storeLimitsOf,
  type Target,
} from './publish.js';

export type { EntryBudget, HubLimits, PublishOutcome, PublishRequest, Target } from './publish.js';

/** Counters the metrics endpoint reads. */
export interface HubCounters {
  published: number;
  duplicates: number;
  delivered: number;
  acked: number;
}

/** Told of appended entries and attached sessions (wake-ups). Must not throw: it runs on the publish path. */
export interface HubObserver {
  appended?(entries: readonly StoredEntry[]): void;
  attached?(deviceId: string): void;
  /** The device's session on this node ended (a newer one may follow). */
  detached?(deviceId: string): void;
}

/** The followers of one topic stream, and the stream's name (one string for all of them). */
class Followers<F> extends Set<F> {
  constructor(readonly stream: string) {
    super();
  }
}

/** Sessions caught up from the store at once by {@link Hub.resync}. */
const RESYNC_BATCH = 256;

/**
 * The delivery core: which device is online on which session, which sessions follow which topic
 * stream, and the path publish → durable append → bus → live hand-over to the sessions concerned
 * (on this node, or on the node holding the device when the bus is a cluster's).
 *
 * `F` is the followers' type (the gateway's `Session`); the hub only uses {@link Follower} of it,
 * and frames entries with the {@link FrameEncoder} it is given.
 */
export class Hub<F extends Follower = Follower> implements BusSink {
  private readonly byDevice = new Map<string, F>();
  /** Commands for devices whose session is being set up (see beginJoin). */
  private readonly joining = new Map<string, DeviceCommand[]>();
  /** Followers of each topic stream (a device stream's follower is found through `byDevice`). */
  private readonly byStream = new Map<string, Followers<F>>();
  readonly counters: HubCounters = { published: 0, duplicates: 0, delivered: 0, acked: 0 };
  private readonly observers: HubObserver[] = [];
  /** The store's bounds of a publish: built once, passed with every publish. */
  private readonly storeLimits: ReturnType<typeof storeLimitsOf>;

  constructor(
    private readonly store: Store,
    private readonly clock: Clock,
    private readonly frame: FrameEncoder,
    readonly bus: Bus = new LocalBus(),
    private readonly limits: HubLimits = {},
  ) {
    bus.bind(this);
    this.storeLimits = storeLimitsOf(limits);
  }

  /** False while the bus or the store cannot reach Redis (readiness). */
  get healthy(): boolean {
    return this.bus.healthy && this.store.connected !== false;
  }

  /**
   * Set when the store can never write again in this process (the SQLite writer thread died):
   * liveness fails so that the supervisor restarts the process.
   */
  get failure(): Error | undefined {
    return this.store.failure;
  }

  get online(): number {
    return this.byDevice.size;
  }

  /** Adds an observer of publishes and session opens. */
  observe(observer: HubObserver): void {
    this.observers.push(observer);
  }

  sessionOf(deviceId: string): F | undefined {
    return this.byDevice.get(deviceId);
  }

  sessions(): IterableIterator<F> {
    return this.byDevice.values();
  }

  /**
   * The gateway is reading a device's topics for a new session: commands for the device (a topic
   * subscribed over HTTP meanwhile, a delete) are kept and applied at {@link attach} instead of
   * being dropped for want of a session. Costs nothing unless such a command arrives.
   */
  beginJoin(deviceId: string): void {
    if (!this.joining.has(deviceId)) this.joining.set(deviceId, []);
  }

  /** The handshake ended (attached or failed): stop keeping commands for the device. */
  endJoin(deviceId: string): void {
    this.joining.delete(deviceId);
  }

  /** Registers an authenticated session; an older session of the same device is replaced. */
  attach(session: F, topics: string[], cursors: Record<string, number>): void {
    const old = this.byDevice.get(session.deviceId);
    if (old && old !== session) {
      this.detach(old);
      old.fail('REPLACED', 'a newer session of this device was opened', true, 4011);
    }
    this.byDevice.set(session.deviceId, session);
    this.bus.attached(session.deviceId, session.id);
    for (const o of this.observers) o.attached?.(session.deviceId);
    const streams = [deviceStream(session.deviceId), ...topics.map(topicStream)];
    for (const s of streams) this.follow(session, s, cursors[s] ?? 0);
    const held = this.joining.get(session.deviceId);
    this.joining.delete(session.deviceId);
    for (const cmd of held ?? []) this.command(session.deviceId, cmd);
  }

  detach(session: F): void {
    if (this.byDevice.get(session.deviceId) === session) {
      this.byDevice.delete(session.deviceId);
      this.bus.detached(session.deviceId, session.id);
      for (const o of this.observers) o.detached?.(session.deviceId);
    }
    for (const stream of session.streams.keys()) this.byStream.get(stream)?.delete(session);
    for (const stream of session.streams.keys()) {
      if (!isDeviceStream(stream) && this.byStream.get(stream)?.size === 0) {
        this.byStream.delete(stream);
        this.bus.unfollowed(stream);
      }
    }
  }

  /** Starts delivering a stream to a session from `cursor` (after a subscribe or at attach). */
  follow(session: F, stream: string, cursor: number): void {
    if (isDeviceStream(stream)) return session.open(stream, cursor);
    let set = this.byStream.get(stream);
    if (!set) {
      set = new Followers(stream);
      this.byStream.set(stream, set);
      this.bus.followed(stream);
    }
    set.add(session);
    // The set's copy of the name: every follower of a topic keeps the same string, not its own.
    session.open(set.stream, cursor);
  }

  unfollow(session: F, stream: string): void {
    if (isDeviceStream(stream)) return session.drop(stream);
    const set = this.byStream.get(stream);
    set?.delete(session);
    if (set?.size === 0) {
      this.byStream.delete(stream);
      this.bus.unfollowed(stream);
    }
    session.drop(stream);
  }

  /** Subscribes a device to a topic durably, and live on whichever node holds its session. */
  async subscribe(deviceId: string, topic: string): Promise<number> {
    const max = this.limits.maxTopicsPerDevice;
    const seq = await this.store.subscribe(
      deviceId,
      topic,
      max === undefined ? undefined : { maxTopics: max },
    );
    this.bus.send(deviceId, { t: 'follow', topic, seq });
    return seq;
  }

  async unsubscribe(deviceId: string, topic: string): Promise<void> {
    await this.store.unsubscribe(deviceId, topic);
    this.bus.send(deviceId, { t: 'unfollow', topic });
  }

  /** Closes the device's session, on whichever node holds it (the device was deleted). */
  revoke(deviceId: string, reason?: 'rotated'): void {
    this.bus.send(deviceId, reason ? { t: 'revoke', reason } : { t: 'revoke' });
  }

  /** Whether the device has a session on this node or (per the bus's presence) on another. */
  async isOnline(deviceId: string): Promise<boolean> {
    return this.byDevice.has(deviceId) || (await this.bus.isOnline(deviceId));
  }

  holds(deviceId: string): boolean {
    return this.byDevice.has(deviceId);
  }

  /** Applies a command from the bus to the device's local session. */
  command(deviceId: string, cmd: DeviceCommand): void {
    const session = this.byDevice.get(deviceId);
    if (!session) {
      if (cmd.t !== 'replaced') this.joining.get(deviceId)?.push(cmd);
      return;
    }
    switch (cmd.t) {
      case 'follow':
        return this.follow(session, topicStream(cmd.topic), cmd.seq);
      case 'unfollow':
        return this.unfollow(session, topicStream(cmd.topic));
      case 'revoke':
        if (cmd.reason === 'rotated')
          return session.fail(
            'TOKEN_ROTATED',
            'the device token was rotated: reconnect with the new one',
            true,
            4012,
          );
        return session.fail('UNAUTHORIZED', 'device deleted', true, 4001);
      case 'replaced':
        if (session.id !== cmd.session) return;
        this.detach(session);
        return session.fail('REPLACED', 'a newer session of this device was opened', true, 4011);
    }
  }

  /**
   * Catches local sessions up from the store (all, one device's, or one stream's followers): each
   * stream is read again after what its session was sent. For one device (its session just became
   * visible to the cluster), its topics are read again too, so a subscribe that raced the handshake
   * is followed. Resolves with the number of sessions that could not be caught up because the
   * store was unavailable.
   */
  async resync(scope?: CatchUpScope): Promise<number> {
    let sessions: F[];
    let stream: string | undefined;
    if (scope === undefined) sessions = [...this.byDevice.values()];
    else if ('device' in scope) {
      if (!(await this.refollow(scope.device))) return 1;
      sessions = [this.byDevice.get(scope.device)].filter((s) => s !== undefined);
    } else {
      stream = scope.stream;
      sessions = [...(this.followersOf(stream) ?? [])];
    }
    let failed = 0;
    for (let i = 0; i < sessions.length; i += RESYNC_BATCH) {
      const batch = sessions.slice(i, i + RESYNC_BATCH);
      for (const ok of await Promise.all(batch.map((s) => s.catchUp(stream)))) if (!ok) failed++;
    }
    return failed;
  }

  /**
   * Resolves targets, appends durably (the promise resolves only after the store's commit) and
   * hands new entries to online sessions.
   */
  async publish(req: PublishRequest): Promise<PublishOutcome> {
    const now = this.clock.now();
    const id = req.id ?? newMessageId();
    const streams = await this.targetStreams(req.to);
    spendBudget(req.budget, streams.length, this.limits.maxEntriesPerRequest);
    const entries = newEntries(req, id, streams, now);
    const result = await this.store.publish({
      id,
      entries,
      fresh: req.id === undefined,
      limits: this.storeLimits,
    });
    if (result.duplicate) this.counters.duplicates++;
    else this.counters.published++;
    this.bus.route(result.appended);
    for (let i = 0; i < this.observers.length; i++) this.observers[i]?.appended?.(result.appended);
    if (result.duplicate && !(this.bus instanceof LocalBus)) this.renotify(result.record, result.appended);
    const r = result.record;
    return { id: r.id, entries: r.entries, ts: r.ts, exp: r.exp, duplicate: result.duplicate };
  }

  /**
   * Devices a publish is for: one per device stream, the current subscribers of each topic stream
   * (stores without {@link Store.subscriberCount} count a topic as one). Synchronous when every
   * entry is a device stream (no promise on the unicast path).
   */
  recipientsOf(entries: readonly { stream: string }[]): number | Promise<number> {
    let n = 0;
    for (let i = 0; i < entries.length; i++) {
      if (!isDeviceStream((entries[i] as { stream: string }).stream)) return this.countRecipients(entries);
      n++;
    }
    return n;
  }

  private async countRecipients(entries: readonly { stream: string }[]): Promise<number> {
    let n = 0;
    for (const { stream } of entries) {
      if (isDeviceStream(stream)) n++;
      else {
        const topic = topicOfStream(stream);
        n += topic !== undefined && this.store.subscriberCount ? await this.store.subscriberCount(topic) : 1;
      }
    }
    return n;
  }

  /** Hands appended entries to the sessions that follow their streams. */
  dispatch(entries: StoredEntry[]): void {
    for (const entry of entries) {
      const followers = this.followersOf(entry.stream);
      if (!followers) continue;
      // Encoded and framed once: a broadcast writes the same bytes to every socket.
      const frame = this.frame(entry);
      for (const session of followers) session.offer(entry, frame);
    }
  }

  /**
   * The local sessions following `stream`, or undefined when none: a topic's set, or for a device
   * stream its device's session (found through `byDevice`, so no connection needs a set of its own).
   */
  private followersOf(stream: string): Iterable<F> | undefined {
    const device = deviceOfStream(stream);
    if (device === undefined) {
      const set = this.byStream.get(stream);
      return set && set.size > 0 ? set : undefined;
    }
    const session = this.byDevice.get(device);
    return session?.streams.has(stream) ? [session] : undefined;
  }

  /**
   * A publish id seen before, in a cluster: its first node may have died between appending and
   * notifying (the publisher retried here), so its entries are routed again. Sessions drop what
   * they already have; the cost is one read per stream, on retries only.
   */
  private renotify(record: PublishRecord, appended: StoredEntry[]): void {
    const now = this.clock.now();
    const done = new Set(appended.map((e) => e.stream));
    const reads = record.entries
      .filter((e) => !done.has(e.stream))
      .map((e) => this.store.read(e.stream, e.seq - 1, 1, now));
    Promise.all(reads).then(
      (found) => this.bus.route(found.flat()),
      () => {}, // the next resync catches up
    );
  }

  /** Aligns a session's topic streams with the store's subscriptions; false when the store is away. */
  private async refollow(deviceId: string): Promise<boolean> {
    const session = this.byDevice.get(deviceId);
    if (!session) return true;
    // Only streams followed before the read may be dropped: a follow arriving meanwhile is newer.
    const before = new Set(session.streams.keys());
    let topics: string[];
    let cursors: Record<string, number>;
    try {
      [topics, cursors] = await Promise.all([this.store.topicsOf(deviceId), this.store.cursorsOf(deviceId)]);
    } catch {
      return false;
    }
    if (this.byDevice.get(deviceId) !== session) return true;
    const wanted = new Set(topics.map(topicStream));
    for (const s of wanted) if (!session.streams.has(s)) this.follow(session, s, cursors[s] ?? 0);
    for (const s of before) {
      if (isTopicStream(s) && !wanted.has(s) && session.streams.has(s)) this.unfollow(session, s);
    }
    return true;
  }

  private async targetStreams(to: Target): Promise<string[]> {
    if ('device' in to) {
      if (!(await this.store.getDevice(to.device))) {
        throw new HubError('UNKNOWN_DEVICE', `no device ${JSON.stringify(to.device)}`);
      }
      return [deviceStream(to.device)];
    }
    if ('user' in to) return (await this.store.devicesOfUser(to.user)).map(deviceStream);
    if ('topic' in to) return [topicStream(to.topic)];
    throw new HubError('BAD_REQUEST', 'to needs one of device, user, topic');
  }
}
