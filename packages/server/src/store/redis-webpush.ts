import { StoreError } from './errors.js';
import type { RedisClient } from './redis-client.js';
import type { RedisKeys } from './redis-keys.js';
import type { WebPushRegistry, WebPushSubscriptionRecord } from './webpush-registry.js';

/**
 * KEYS: device's Web Push hash. ARGV: subId, revokedAt. Sets `r:<subId>` unless already set; returns
 * the effective revocation time, or false when the device holds no such subscription.
 */
const REVOKE = `
if redis.call('HEXISTS', KEYS[1], 's:' .. ARGV[1]) == 0 then return false end
redis.call('HSETNX', KEYS[1], 'r:' .. ARGV[1], ARGV[2])
return redis.call('HGET', KEYS[1], 'r:' .. ARGV[1])`;

/** KEYS: device's Web Push hash. ARGV: subId, before. Deletes the subscription if revoked before `before`. */
const PURGE = `
local at = redis.call('HGET', KEYS[1], 'r:' .. ARGV[1])
if not at or tonumber(at) >= tonumber(ARGV[2]) then return 0 end
return redis.call('HDEL', KEYS[1], 's:' .. ARGV[1], 'r:' .. ARGV[1])`;

type Stored = Omit<WebPushSubscriptionRecord, 'revokedAt'>;

const PURGE_PAGE = 500;

/**
 * The Web Push registry on the Redis store, for clusters: every node sees every subscription.
 *
 * A device's subscriptions live in one hash beside its other keys (`{d:<id>}:wp`, one slot): the
 * record as `s:<subId>` (written once) and the revocation time as `r:<subId>`. Two pointer keys, each
 * in its own slot, find a subscription by capability hash (`{wpc:<hash>}`) and by id (`{wpi:<id>}`);
 * a zset lists revoked subscriptions by time for the purge.
 *
 * A Redis Cluster cannot change keys of several slots atomically, so each operation orders its
 * writes so that a node killed half-way leaves nothing reachable that is wrong:
 * - create: pointers first (`SET NX`: a duplicate id or capability is refused), record last. A crash
 *   in between leaves pointers to nothing (the endpoint answers 404; it was never handed out).
 * - revoke: the record is marked first (the endpoint answers 410 from then on), then listed for the
 *   purge; a crash in between leaves a tombstone that a repeated DELETE lists.
 * - purge: pointers first, record second, list entry last; a repeated purge finishes the work.
 */
export class RedisWebPushRegistry implements WebPushRegistry {
  constructor(
    private readonly redis: RedisClient,
    private readonly keys: RedisKeys,
    private readonly run: <T>(what: string, op: () => Promise<T>) => Promise<T>,
  ) {}

  create(sub: WebPushSubscriptionRecord): Promise<void> {
    return this.run('createWebPushSubscription', async () => {
      const idKey = this.keys.webPushId(sub.id);
      const capKey = this.keys.webPushCapability(sub.capabilityHash);
      if ((await this.redis.set(idKey, sub.deviceId, 'NX')) === null)
        throw new StoreError('STORE_INVALID', `a Web Push subscription ${JSON.stringify(sub.id)} exists`);
      if ((await this.redis.set(capKey, JSON.stringify([sub.deviceId, sub.id]), 'NX')) === null) {
        await this.redis.del(idKey);
        throw new StoreError('STORE_INVALID', 'a Web Push subscription with this capability exists');
      }
      const { revokedAt, ...stored } = sub;
      const fields: string[] = [`s:${sub.id}`, JSON.stringify(stored satisfies Stored)];
      if (revokedAt !== undefined) fields.push(`r:${sub.id}`, String(revokedAt));
      await this.redis.hset(this.keys.device(sub.deviceId).webPush, ...fields);
      if (revokedAt !== undefined)
        await this.redis.zadd(this.keys.webPushRevoked(), revokedAt, JSON.stringify([sub.deviceId, sub.id]));
    });
  }

  byCapability(capabilityHash: string): Promise<WebPushSubscriptionRecord | undefined> {
    return this.run('webPushByCapability', async () => {
      const pointer = await this.redis.get(this.keys.webPushCapability(capabilityHash));
      if (pointer === null) return undefined;
      const [deviceId, id] = JSON.parse(pointer) as [string, string];
      const sub = await this.load(deviceId, id);
      return sub?.capabilityHash === capabilityHash ? sub : undefined;
    });
  }

  byId(id: string): Promise<WebPushSubscriptionRecord | undefined> {
    return this.run('webPushById', async () => {
      const deviceId = await this.redis.get(this.keys.webPushId(id));
      return deviceId === null ? undefined : this.load(deviceId, id);
    });
  }

  listByDevice(deviceId: string): Promise<WebPushSubscriptionRecord[]> {
    return this.run('webPushByDevice', async () => {
      const h = await this.redis.hgetall(this.keys.device(deviceId).webPush);
      const subs: WebPushSubscriptionRecord[] = [];
      for (const [field, value] of Object.entries(h)) {
        if (!field.startsWith('s:')) continue;
        subs.push(withRevocation(JSON.parse(value) as Stored, h[`r:${field.slice(2)}`]));
      }
      return subs.sort((a, b) => a.createdAt - b.createdAt || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
    });
  }

  revoke(id: string, at: number): Promise<boolean> {
    return this.run('revokeWebPushSubscription', async () => {
      const deviceId = await this.redis.get(this.keys.webPushId(id));
      if (deviceId === null) return false;
      const revokedAt = (await this.redis.eval(
        REVOKE,
        1,
        this.keys.device(deviceId).webPush,
        id,
        String(at),
      )) as string | null;
      if (revokedAt === null) return false;
      await this.redis.zadd(
        this.keys.webPushRevoked(),
        'NX',
        Number(revokedAt),
        JSON.stringify([deviceId, id]),
      );
      return true;
    });
  }

  purgeRevoked(before: number): Promise<number> {
    return this.run('purgeWebPushSubscriptions', async () => {
      const list = this.keys.webPushRevoked();
      let purged = 0;
      for (;;) {
        const members = await this.redis.zrangebyscore(list, '-inf', `(${before}`, 'LIMIT', 0, PURGE_PAGE);
        for (const member of members) {
          const [deviceId, id] = JSON.parse(member) as [string, string];
          const hash = this.keys.device(deviceId).webPush;
          const [record, at] = await this.redis.hmget(hash, `s:${id}`, `r:${id}`);
          if (record && at && Number(at) < before) {
            const stored = JSON.parse(record) as Stored;
            await this.redis.del(this.keys.webPushCapability(stored.capabilityHash));
            await this.redis.del(this.keys.webPushId(id));
            purged += Number(await this.redis.eval(PURGE, 1, hash, id, String(before))) > 0 ? 1 : 0;
          }
          await this.redis.zrem(list, member);
        }
        if (members.length < PURGE_PAGE) return purged;
      }
    });
  }

  /**
   * Deletes every subscription of a device (when the device is deleted): pointers first (the
   * endpoints answer 404 from then on), the device's hash second, purge list entries last. Each
   * step is idempotent: a repeat after a crash finishes the work.
   */
  async deleteOfDevice(deviceId: string): Promise<void> {
    const hash = this.keys.device(deviceId).webPush;
    const h = await this.redis.hgetall(hash);
    const subs = Object.entries(h).flatMap(([field, value]) =>
      field.startsWith('s:') ? [JSON.parse(value) as Stored] : [],
    );
    for (const sub of subs) {
      await this.redis.del(this.keys.webPushCapability(sub.capabilityHash));
      await this.redis.del(this.keys.webPushId(sub.id));
    }
    await this.redis.del(hash);
    const revoked = subs.filter((sub) => h[`r:${sub.id}`] !== undefined);
    if (revoked.length > 0)
      await this.redis.zrem(
        this.keys.webPushRevoked(),
        ...revoked.map((sub) => JSON.stringify([deviceId, sub.id])),
      );
  }

  private async load(deviceId: string, id: string): Promise<WebPushSubscriptionRecord | undefined> {
    const [record, revokedAt] = await this.redis.hmget(
      this.keys.device(deviceId).webPush,
      `s:${id}`,
      `r:${id}`,
    );
    if (record === null || record === undefined) return undefined;
    return withRevocation(JSON.parse(record) as Stored, revokedAt ?? undefined);
  }
}

function withRevocation(stored: Stored, revokedAt: string | null | undefined): WebPushSubscriptionRecord {
  return revokedAt === null || revokedAt === undefined ? stored : { ...stored, revokedAt: Number(revokedAt) };
}
