/**
 * Key layout of the Redis store. Every key of one stream, and of one device together with its own
 * stream `d:<id>`, carries the same hash tag, so it lives in one Redis Cluster slot and a Lua script
 * can change them atomically:
 *
 * ```
 * <p>{<stream>}:m          hash    h = head seq, g = registration generation counter,
 *                                  r = generation under which the stream sits in the sweep registry,
 *                                  c = collapsed entries not yet counted by a sweep,
 *                                  b = payload bytes of the entries stored (backlog bound)
 * <p>{<stream>}:e          stream  one entry per seq, id `<seq>-0`; fields p x t i d n u c
 * <p>{<stream>}:k          hash    collapse key → seq of the newest entry holding it
 * <p>{<stream>}:x          zset    seq scored by exp (expiry index for the sweep)
 * <p>{t:<topic>}:f         set     ids of the devices following the topic
 * <p>{<stream>}:i:<id>     string  seq appended for publish <id> (idempotency marker, TTL = retention)
 * <p>{d:<id>}:dev          hash    tokenHash, user, key (register key id), createdAt, lastSeen
 * <p>{d:<id>}:cur          hash    stream → acknowledged seq
 * <p>{d:<id>}:sub          zset    subscribed topics (score 0: lexicographic order)
 * <p>{d:<id>}:wake         hash    wake token: provider, token, topic, environment, updatedAt
 * <p>{d:<id>}:wp           hash    Web Push subscriptions: s:<subId> → record (JSON), r:<subId> → revokedAt
 * <p>{wpc:<hash>}          string  capability hash → [deviceId, subId] (JSON) of a Web Push subscription
 * <p>{wpi:<subId>}         string  subscription id → device id
 * <p>{wp}:revoked          zset    "[deviceId, subId]" of revoked subscriptions, scored by revokedAt (purge)
 * <p>{u:<user>}:devs       zset    device ids of a user, scored by createdAt
 * <p>{rk:<keyId>}:devs     zset    device ids a `register` key created, scored by createdAt
 * <p>{p:<id>}              string  publish record, pending or done (TTL = retention)
 * <p>{sweep:<n>}           zset    registry shard n of 16: non-empty streams, scored by generation
 * <p>{sweep}:lock          string  one sweeper at a time across the cluster
 * ```
 *
 * Names are escaped (`%`, `{`, `}` as `%25`, `%7B`, `%7D`) so a name never ends a hash tag early and
 * two different names never produce one key.
 */

export const REGISTRY_SHARDS = 16;

/** Escapes `%`, `{` and `}` so a name can sit inside a hash tag. */
export function escapeName(name: string): string {
  return name.replace(/[%{}]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase().padStart(2, '0')}`);
}

/** FNV-1a of a string, for picking a registry shard. */
function fnv1a(text: string): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    hash ^= text.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193);
  }
  return hash >>> 0;
}

export interface StreamKeys {
  meta: string;
  entries: string;
  collapse: string;
  expiry: string;
  /** A topic stream's followers (device ids): whether anyone can read what it is sent. */
  followers: string;
  /** Marker key of one publish id in this stream. */
  marker(id: string): string;
}

export interface DeviceKeys {
  device: string;
  cursors: string;
  topics: string;
  wake: string;
  /** Web Push subscriptions of the device (see redis-webpush.ts). */
  webPush: string;
}

export class RedisKeys {
  constructor(private readonly prefix: string) {}

  stream(stream: string): StreamKeys {
    const base = `${this.prefix}{${escapeName(stream)}}:`;
    return {
      meta: `${base}m`,
      entries: `${base}e`,
      collapse: `${base}k`,
      expiry: `${base}x`,
      followers: `${base}f`,
      marker: (id) => `${base}i:${escapeName(id)}`,
    };
  }

  device(id: string): DeviceKeys {
    const base = `${this.prefix}{d:${escapeName(id)}}:`;
    return {
      device: `${base}dev`,
      cursors: `${base}cur`,
      topics: `${base}sub`,
      wake: `${base}wake`,
      webPush: `${base}wp`,
    };
  }

  /** Web Push: the pointer from a capability hash to its subscription. */
  webPushCapability(hash: string): string {
    return `${this.prefix}{wpc:${escapeName(hash)}}`;
  }

  /** Web Push: the pointer from a subscription id to its device. */
  webPushId(id: string): string {
    return `${this.prefix}{wpi:${escapeName(id)}}`;
  }

  /** Web Push: revoked subscriptions by revocation time, for the purge. */
  webPushRevoked(): string {
    return `${this.prefix}{wp}:revoked`;
  }

  user(user: string): string {
    return `${this.prefix}{u:${escapeName(user)}}:devs`;
  }

  /** Devices a `register` key created and still alive (the devices-per-register-key bound). */
  registerKey(keyId: string): string {
    return `${this.prefix}{rk:${escapeName(keyId)}}:devs`;
  }

  publish(id: string): string {
    return `${this.prefix}{p:${escapeName(id)}}`;
  }

  registry(shard: number): string {
    return `${this.prefix}{sweep:${shard}}`;
  }

  registryOf(stream: string): string {
    return this.registry(fnv1a(stream) % REGISTRY_SHARDS);
  }

  sweepLock(): string {
    return `${this.prefix}{sweep}:lock`;
  }

  /** Set once every device's topics are listed in the topics' follower sets (see redis-followers.ts). */
  followersListed(): string {
    return `${this.prefix}{followers}:v1`;
  }

  /** SCAN pattern of every device's topics zset, and the device id of one such key. */
  topicsPattern(): string {
    return `${this.prefix.replace(/[*?[\]\\]/g, '\\$&')}{d:*}:sub`;
  }

  deviceOfTopicsKey(key: string): string {
    const escaped = key.slice(this.prefix.length + 3, -5);
    return escaped.replace(/%([0-9A-F]{2})/g, (_, hex: string) =>
      String.fromCharCode(Number.parseInt(hex, 16)),
    );
  }
}
