import type { StoredEntry } from '../store/types.js';

/**
 * A change for the node holding a device's session, wherever the request that caused it arrived:
 * - `follow`: the device subscribed to `topic`; deliver it from `seq` on;
 * - `unfollow`: the device unsubscribed from `topic`;
 * - `revoke`: the device was deleted, or (`reason: 'rotated'`) its token replaced; close its session;
 * - `replaced`: a newer session of the device opened on another node; close `session`.
 */
export type DeviceCommand =
  | { t: 'follow'; topic: string; seq: number }
  | { t: 'unfollow'; topic: string }
  | { t: 'revoke'; reason?: 'rotated' }
  | { t: 'replaced'; session: string };

/** Which local sessions to catch up from the store: all, one device's, or one stream's followers. */
export type CatchUpScope = { device: string } | { stream: string } | undefined;

/** What a bus delivers to on each node: the node's delivery core (the hub). */
export interface BusSink {
  /** Entries appended anywhere that local sessions may follow; each session takes the ones it needs. */
  dispatch(entries: StoredEntry[]): void;
  /** Applies a command to the local session of `deviceId`, if any. */
  command(deviceId: string, cmd: DeviceCommand): void;
  /** Whether this node holds a session of the device. */
  holds(deviceId: string): boolean;
  /**
   * Re-reads streams from the store after what each session was sent (notifications may have been
   * lost). Resolves with the number of streams that could not be read (store unavailable).
   */
  resync(scope?: CatchUpScope): Promise<number>;
}

/**
 * How new entries and device commands reach the node(s) that need them. One node: in-process
 * ({@link LocalBus}). Several nodes: Redis ({@link RedisBus}), with presence (which node holds which
 * device) and topic interest (which nodes have followers of which topic).
 *
 * Delivery through a bus is a notification, not the record: the store is. A lost notification
 * delays a message but never loses it, because a session that sees a gap (`prevSeq` past what it
 * sent), reconnects, or is caught up by {@link BusSink.resync} reads the stream from the store.
 */
export interface Bus {
  /** This node's id (unique in the cluster). */
  readonly nodeId: string;
  /** False while the bus cannot reach its peers (Redis down); for readiness checks. */
  readonly healthy: boolean;
  /** Connects the bus to this node's delivery core; called once by the hub. */
  bind(sink: BusSink): void;
  /** Routes newly appended entries to the nodes whose sessions follow their streams. Never throws. */
  route(entries: StoredEntry[]): void;
  /** Sends a command to the node holding the device (dropped when the device is offline). */
  send(deviceId: string, cmd: DeviceCommand): void;
  /** A session of `deviceId` opened on this node (presence). */
  attached(deviceId: string, sessionId: string): void;
  /** That session closed. */
  detached(deviceId: string, sessionId: string): void;
  /** The first local session started following `stream`. */
  followed(stream: string): void;
  /** The last local session stopped following `stream`. */
  unfollowed(stream: string): void;
  /** Whether a session of the device is open on any node (approximate after a node crash). */
  isOnline(deviceId: string): Promise<boolean>;
  /** Stops routing and releases connections and this node's presence. Idempotent. */
  close(): Promise<void>;
}
