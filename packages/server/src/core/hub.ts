import { deviceStream, type NotificationFields, topicStream, type Urgency } from '@pushwire/protocol';
import { HttpError, notFound } from '../errors.js';
import { encodeEntry } from '../gateway/encode.js';
import type { Session } from '../gateway/session.js';
import type { NewEntry, PublishRecord, Store, StoredEntry } from '../store/types.js';
import type { Clock } from '../util/clock.js';
import { newMessageId } from '../util/ids.js';

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
  urgency?: Urgency;
}

/** What the publisher is told. */
export interface PublishOutcome extends PublishRecord {
  duplicate: boolean;
}

/** Counters the metrics endpoint reads. */
export interface HubCounters {
  published: number;
  duplicates: number;
  delivered: number;
  acked: number;
}

/**
 * The delivery core: which device is online on which session, which sessions follow which topic
 * stream, and the path publish → durable append → live hand-over to the sessions concerned.
 */
export class Hub {
  private readonly byDevice = new Map<string, Session>();
  private readonly byStream = new Map<string, Set<Session>>();
  readonly counters: HubCounters = { published: 0, duplicates: 0, delivered: 0, acked: 0 };

  constructor(
    private readonly store: Store,
    private readonly clock: Clock,
  ) {}

  get online(): number {
    return this.byDevice.size;
  }

  sessionOf(deviceId: string): Session | undefined {
    return this.byDevice.get(deviceId);
  }

  sessions(): IterableIterator<Session> {
    return this.byDevice.values();
  }

  /** Registers an authenticated session; an older session of the same device is replaced. */
  attach(session: Session, topics: string[], cursors: Record<string, number>): void {
    const old = this.byDevice.get(session.deviceId);
    if (old && old !== session) {
      this.detach(old);
      old.fail('REPLACED', 'a newer session of this device was opened', true, 4011);
    }
    this.byDevice.set(session.deviceId, session);
    const streams = [deviceStream(session.deviceId), ...topics.map(topicStream)];
    for (const s of streams) this.follow(session, s, cursors[s] ?? 0);
  }

  detach(session: Session): void {
    if (this.byDevice.get(session.deviceId) === session) this.byDevice.delete(session.deviceId);
    for (const stream of session.streams.keys()) this.byStream.get(stream)?.delete(session);
    for (const stream of session.streams.keys()) {
      if (this.byStream.get(stream)?.size === 0) this.byStream.delete(stream);
    }
  }

  /** Starts delivering a stream to a session from `cursor` (after a subscribe or at attach). */
  follow(session: Session, stream: string, cursor: number): void {
    let set = this.byStream.get(stream);
    if (!set) {
      set = new Set();
      this.byStream.set(stream, set);
    }
    set.add(session);
    session.open(stream, cursor);
  }

  unfollow(session: Session, stream: string): void {
    const set = this.byStream.get(stream);
    set?.delete(session);
    if (set?.size === 0) this.byStream.delete(stream);
    session.drop(stream);
  }

  /** Subscribes a device to a topic durably, and live when it is online. */
  async subscribe(deviceId: string, topic: string): Promise<number> {
    const seq = await this.store.subscribe(deviceId, topic);
    const session = this.byDevice.get(deviceId);
    if (session) this.follow(session, topicStream(topic), seq);
    return seq;
  }

  async unsubscribe(deviceId: string, topic: string): Promise<void> {
    await this.store.unsubscribe(deviceId, topic);
    const session = this.byDevice.get(deviceId);
    if (session) this.unfollow(session, topicStream(topic));
  }

  /**
   * Resolves targets, appends durably (the promise resolves only after the store's commit) and
   * hands new entries to online sessions.
   */
  async publish(req: PublishRequest): Promise<PublishOutcome> {
    const now = this.clock.now();
    const id = req.id ?? newMessageId();
    const streams = await this.targetStreams(req.to);
    const exp = req.ttl === 0 ? now : now + req.ttl * 1000;
    const entries: NewEntry[] = streams.map((stream) => ({
      id,
      stream,
      ts: now,
      exp,
      ...(req.data !== undefined && { data: req.data }),
      ...(req.notification !== undefined && { notification: req.notification }),
      ...(req.urgency !== undefined && { urgency: req.urgency }),
      ...(req.collapseKey !== undefined && { collapseKey: req.collapseKey }),
    }));
    const result = await this.store.publish({ id, entries });
    if (result.duplicate) this.counters.duplicates++;
    else this.counters.published++;
    this.dispatch(result.appended);
    return { ...result.record, duplicate: result.duplicate };
  }

  /** Hands appended entries to the sessions that follow their streams. */
  dispatch(entries: StoredEntry[]): void {
    for (const entry of entries) {
      const set = this.byStream.get(entry.stream);
      if (!set || set.size === 0) continue;
      const text = encodeEntry(entry);
      for (const session of set) session.offer(entry, text);
    }
  }

  private async targetStreams(to: Target): Promise<string[]> {
    if ('device' in to) {
      if (!(await this.store.getDevice(to.device))) {
        throw notFound('UNKNOWN_DEVICE', `no device ${JSON.stringify(to.device)}`);
      }
      return [deviceStream(to.device)];
    }
    if ('user' in to) return (await this.store.devicesOfUser(to.user)).map(deviceStream);
    if ('topic' in to) return [topicStream(to.topic)];
    throw new HttpError(400, 'BAD_REQUEST', 'to needs one of device, user, topic');
  }
}
