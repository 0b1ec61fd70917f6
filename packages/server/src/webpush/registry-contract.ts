import { createHash } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { WebPushRegistry, WebPushSubscriptionRecord } from './registry.js';

const T = 1_700_000_000_000;

const record = (
  id: string,
  deviceId: string,
  extra: Partial<WebPushSubscriptionRecord> = {},
): WebPushSubscriptionRecord => ({
  id,
  deviceId,
  capabilityHash: createHash('sha256').update(id).digest('hex'),
  topicKey: `tk-${id}`,
  createdAt: T,
  ...extra,
});

/**
 * What every {@link WebPushRegistry} keeps, through the interface only. Each test gets a fresh,
 * empty registry from `make`; `cleanup` runs after it.
 */
export function webPushRegistryContract(
  name: string,
  make: () => Promise<{ registry: WebPushRegistry; cleanup: () => Promise<void> }>,
): void {
  describe(`WebPushRegistry contract: ${name}`, () => {
    let registry: WebPushRegistry;
    let cleanup: () => Promise<void>;
    beforeEach(async () => {
      ({ registry, cleanup } = await make());
    });
    afterEach(async () => {
      await cleanup();
    });

    it('finds a subscription by capability hash, by id and by device, exactly as created', async () => {
      const a = record('a1', 'dev{1}%:x', { applicationServerKey: 'B'.repeat(87) });
      const b = record('b1', 'dev{1}%:x', { createdAt: T - 1 });
      const other = record('c1', 'dev2');
      for (const r of [a, b, other]) await registry.create(r);
      expect(await registry.byCapability(a.capabilityHash)).toEqual(a);
      expect(await registry.byId('b1')).toEqual(b);
      expect(await registry.listByDevice('dev{1}%:x')).toEqual([b, a]);
      expect(await registry.listByDevice('dev2')).toEqual([other]);
      expect(await registry.listByDevice('nobody')).toEqual([]);
      expect(await registry.byCapability('f'.repeat(64))).toBeUndefined();
      expect(await registry.byId('nope')).toBeUndefined();
    });

    it('refuses a second subscription with the same id or the same capability', async () => {
      await registry.create(record('a1', 'dev1'));
      await expect(
        registry.create(record('a1', 'dev1', { capabilityHash: 'x'.repeat(64) })),
      ).rejects.toThrow();
      await expect(
        registry.create(record('a2', 'dev1', { capabilityHash: record('a1', 'dev1').capabilityHash })),
      ).rejects.toThrow();
      expect((await registry.listByDevice('dev1')).map((s) => s.id)).toEqual(['a1']);
      expect(await registry.byId('a2')).toBeUndefined();
    });

    it('revokes once: the first time is kept, an unknown id is false', async () => {
      const a = record('a1', 'dev1');
      await registry.create(a);
      expect(await registry.revoke('a1', T + 10)).toBe(true);
      expect(await registry.revoke('a1', T + 20)).toBe(true);
      expect(await registry.revoke('nope', T + 20)).toBe(false);
      const revoked = { ...a, revokedAt: T + 10 };
      expect(await registry.byCapability(a.capabilityHash)).toEqual(revoked);
      expect(await registry.byId('a1')).toEqual(revoked);
      expect(await registry.listByDevice('dev1')).toEqual([revoked]);
    });

    it('purges only subscriptions revoked before the given time, once', async () => {
      const old = record('old', 'dev1');
      const recent = record('recent', 'dev1');
      const live = record('live', 'dev1');
      const created = record('created', 'dev2', { revokedAt: T + 1 });
      for (const r of [old, recent, live, created]) await registry.create(r);
      await registry.revoke('old', T + 5);
      await registry.revoke('recent', T + 100);
      if (!registry.purgeRevoked) return;
      expect(await registry.purgeRevoked(T + 50)).toBe(2);
      expect(await registry.purgeRevoked(T + 50)).toBe(0);
      expect(await registry.byCapability(old.capabilityHash)).toBeUndefined();
      expect(await registry.byId('old')).toBeUndefined();
      expect(await registry.byId('created')).toBeUndefined();
      expect((await registry.listByDevice('dev1')).map((s) => s.id).sort()).toEqual(['live', 'recent']);
      expect(await registry.listByDevice('dev2')).toEqual([]);
      expect(await registry.byCapability(recent.capabilityHash)).toEqual({ ...recent, revokedAt: T + 100 });
      expect(await registry.revoke('old', T + 200)).toBe(false);
      expect(await registry.purgeRevoked(T + 101)).toBe(1);
      expect(await registry.byCapability(live.capabilityHash)).toEqual(live);
    });

    it('purges many revoked subscriptions in one call', async () => {
      for (let i = 0; i < 1200; i++) await registry.create(record(`s${i}`, `dev${i % 7}`));
      for (let i = 0; i < 1200; i++) await registry.revoke(`s${i}`, T + i);
      if (!registry.purgeRevoked) return;
      expect(await registry.purgeRevoked(T + 1100)).toBe(1100);
      const left = (
        await Promise.all(Array.from({ length: 7 }, (_, d) => registry.listByDevice(`dev${d}`)))
      ).flat();
      expect(left.length).toBe(100);
    });
  });
}
