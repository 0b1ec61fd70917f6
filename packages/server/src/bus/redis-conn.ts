import type { Cluster, Redis } from 'ioredis';
import { commandConnection, type RedisConnectionOptions } from '../store/redis-connection.js';
import { escapeName } from '../store/redis-keys.js';
import type { StoredEntry } from '../store/types.js';
import type { DeviceCommand } from './types.js';

/**
 * Keys, scripts and message format of the Redis bus (connections: store/redis-connection.ts).
 *
 * ```
 * <p>{d:<id>}:at            string  presence: "<node> <session>" of the node holding the device,
 *                                   PX = presence TTL, refreshed by that node (slot of the device)
 * <p>{node:<node>}          channel that node's inbox: device entries and device commands
 * <p>{t:<topic>}:bus        channel new entries of a topic; nodes with followers subscribe
 * ```
 *
 * Channel names carry the hash tag of the data they announce, so they can move to sharded pub/sub
 * (SSUBSCRIBE) unchanged; today they are plain channels (see redis.ts for why).
 */
export class BusKeys {
  constructor(private readonly prefix: string) {}

  presence(deviceId: string): string {
    return `${this.prefix}{d:${escapeName(deviceId)}}:at`;
  }

  inbox(nodeId: string): string {
    return `${this.prefix}{node:${escapeName(nodeId)}}`;
  }

  topic(stream: string): string {
    return `${this.prefix}{${escapeName(stream)}}:bus`;
  }
}

/** One message on a channel: its origin node, then entries and/or device commands. */
export interface BusMessage {
  o: string;
  e?: StoredEntry[];
  c?: [deviceId: string, cmd: DeviceCommand][];
}

/** Parses a channel message; undefined for anything malformed (never throws). */
export function parseMessage(text: string): BusMessage | undefined {
  try {
    const m = JSON.parse(text) as BusMessage;
    if (typeof m !== 'object' || m === null || typeof m.o !== 'string') return undefined;
    if (m.e !== undefined && !Array.isArray(m.e)) return undefined;
    if (m.c !== undefined && !Array.isArray(m.c)) return undefined;
    return m;
  } catch {
    return undefined;
  }
}

const SCRIPTS = {
  /**
   * Sets or refreshes presence unless another session holds it: KEYS = presence; ARGV = value, ttl ms.
   * Returns 1 when set, 0 when another session's value is there.
   */
  pwPresenceRefresh: {
    numberOfKeys: 1,
    lua: `
local v = redis.call('GET', KEYS[1])
if v and v ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1`,
  },
  /** Deletes presence only if it is still ours: KEYS = presence; ARGV = value. Returns 1 when deleted. */
  pwPresenceDrop: {
    numberOfKeys: 1,
    lua: `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`,
  },
};

/** The command connection: one Redis or a Redis Cluster, with the presence scripts. */
export type BusRedis = (Redis | Cluster) & {
  pwPresenceRefresh(key: string, value: string, ttlMs: number): Promise<number>;
  pwPresenceDrop(key: string, value: string): Promise<number>;
};

/** Opens (lazily) the bus's command connection, with the presence scripts. */
export function busConnection(o: RedisConnectionOptions): BusRedis {
  return commandConnection(o, SCRIPTS) as BusRedis;
}
