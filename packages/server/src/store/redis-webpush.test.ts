import { createHash } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type RedisServer, startRedis } from '../../../../test/helpers/redis.js';
import type { WebPushSubscriptionRecord } from '../webpush/registry.js';
import { RedisStore } from './redis.js';
import { RedisKeys } from './redis-keys.js';

// What a node killed half-way through a Web Push registry write leaves behind, and how the next
// call copes (the cluster cannot change the pointer keys and the device's hash atomically).

const T = 1_700_000_000_000;
const sub = (id: string): WebPushSubscriptionRecord => ({
  id,
  deviceId: 'dev1',
  capabilityHash: createHash('sha256').update(id).digest('hex'),
  topicKey: 'tk',
  createdAt: T,
});

describe('RedisWebPushRegistry: interrupted writes', () => {
  let redis: RedisServer;
  let store: RedisStore;
  let raw: Redis;
  const keys = new RedisKeys('pw:');
  beforeAll(async () => {
    redis = await startRedis();
    store = await RedisStore.connect({ url: redis.url });
    raw = new Redis(redis.url);
  });
  afterAll(async () => {
    raw?.disconnect();
    await store?.close();
    await redis?.stop();
  });

  it('create cut after its pointers: the endpoint is unknown (404), nothing is listed', async () => {
    const s = sub('half');
    await store.webPushRegistry.create(s);
    await raw.hdel(keys.device('dev1').webPush, 's:half'); // as if the record write never happened
    expect(await store.webPushRegistry.byCapability(s.capabilityHash)).toBeUndefined();
    expect(await store.webPushRegistry.byId('half')).toBeUndefined();
    expect(await store.webPushRegistry.listByDevice('dev1')).toEqual([]);
    expect(await store.webPushRegistry.revoke('half', T)).toBe(false);
  });

  it('revoke cut before the purge list: answered 410 meanwhile, a repeated revoke lists it', async () => {
    const s = sub('tomb');
    await store.webPushRegistry.create(s);
    await store.webPushRegistry.revoke('tomb', T + 1);
    await raw.del(keys.webPushRevoked()); // as if the node died before listing it
    expect((await store.webPushRegistry.byCapability(s.capabilityHash))?.revokedAt).toBe(T + 1);
    expect(await store.webPushRegistry.purgeRevoked(T + 10)).toBe(0);
    expect(await store.webPushRegistry.revoke('tomb', T + 5)).toBe(true);
    expect(await store.webPushRegistry.purgeRevoked(T + 10)).toBe(1);
    expect(await store.webPushRegistry.byCapability(s.capabilityHash)).toBeUndefined();
  });

  it('purge cut after the pointers: a repeated purge finishes it', async () => {
    const s = sub('cut');
    await store.webPushRegistry.create(s);
    await store.webPushRegistry.revoke('cut', T + 1);
    await raw.del(keys.webPushCapability(s.capabilityHash), keys.webPushId('cut'));
    expect(await store.webPushRegistry.byCapability(s.capabilityHash)).toBeUndefined(); // 404 already
    expect(await store.webPushRegistry.purgeRevoked(T + 10)).toBe(1);
    expect(await store.webPushRegistry.listByDevice('dev1')).toEqual([]);
    expect(await raw.zcard(keys.webPushRevoked())).toBe(0);
  });
});
