import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import type { Store } from './types.js';
import type { WebPushRegistry, WebPushSubscriptionRecord } from './webpush-registry.js';

const T = 1_700_000_000_000;

const sub = (id: string, deviceId: string, revokedAt?: number): WebPushSubscriptionRecord => ({
  id,
  deviceId,
  capabilityHash: createHash('sha256').update(id).digest('hex'),
  topicKey: `tk-${id}`,
  createdAt: T,
  ...(revokedAt !== undefined && { revokedAt }),
});

/**
 * The store's own Web Push registry, for every engine: part of {@link storeContract}. A device's
 * subscriptions go with the device. `store` gives the test's store.
 */
export function webPushDeviceContract(store: () => Store): void {
  describe('Web Push subscriptions of a deleted device', () => {
    const registry = (): WebPushRegistry => {
      const r = store().webPushRegistry;
      if (!r) throw new Error('engine keeps no Web Push subscriptions');
      return r;
    };
    const create = (id: string) =>
      store().createDevice({ id, tokenHash: `h-${id}`, createdAt: T, lastSeen: 0 });

    it('deleting a device deletes its subscriptions, live and revoked, and no other', async () => {
      await create('wp1');
      await create('wp2');
      const [live, revoked, other] = [
        sub('s-live', 'wp1'),
        sub('s-rev', 'wp1', T + 5),
        sub('s-other', 'wp2'),
      ];
      for (const s of [live, revoked, other]) await registry().create(s);
      expect((await registry().listByDevice('wp1')).map((s) => s.id)).toEqual(['s-live', 's-rev']);

      await store().deleteDevice('wp1');
      expect(await registry().listByDevice('wp1')).toEqual([]);
      for (const s of [live, revoked]) {
        expect(await registry().byCapability(s.capabilityHash)).toBeUndefined();
        expect(await registry().byId(s.id)).toBeUndefined();
      }
      // Nothing left for the purge either, and the other device keeps its subscription.
      expect(await registry().purgeRevoked?.(T + 1_000)).toBe(0);
      expect(await registry().byCapability(other.capabilityHash)).toEqual(other);
      expect(await registry().listByDevice('wp2')).toEqual([other]);
    });

    it('a device created again with the same id starts with no subscriptions; the id can be reused', async () => {
      await create('wp1');
      await registry().create(sub('s1', 'wp1'));
      await store().deleteDevice('wp1');
      await store().deleteDevice('wp1'); // idempotent
      await create('wp1');
      expect(await registry().listByDevice('wp1')).toEqual([]);
      // The subscription's id and capability are free again (no stale pointer refuses them).
      await registry().create(sub('s1', 'wp1'));
      expect((await registry().listByDevice('wp1')).map((s) => s.id)).toEqual(['s1']);
    });
  });
}
