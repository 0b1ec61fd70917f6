import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { QuotaError } from './errors.js';
import type { DeviceRecord, NewEntry, PublishBatchItem, PublishLimits, Store } from './types.js';

const T = 1_700_000_000_000;
const HOUR = 60 * 60 * 1000;

const device = (id: string, user?: string): DeviceRecord => ({
  id,
  tokenHash: `hash-${id}`,
  ...(user !== undefined && { user }),
  createdAt: T,
  lastSeen: 0,
});

const one = (
  id: string,
  stream: string,
  limits?: PublishLimits,
  extra: Partial<NewEntry> = {},
): PublishBatchItem => ({
  id,
  entries: [{ id, stream, ts: T, exp: T + HOUR, ...extra }],
  ...(limits && { limits }),
});

/** Resolves with the quota a rejected promise names, or fails. */
async function quotaOf(p: Promise<unknown>): Promise<string> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(QuotaError);
  expect((err as QuotaError).code).toBe('STORE_QUOTA');
  return (err as QuotaError).quota;
}

/**
 * The bounds every {@link Store} engine enforces when asked (issue #12: quotas), through the
 * interface only; run beside `storeContract` on each engine.
 */
export function storeQuotaContract(
  name: string,
  makeStore: () => Promise<{ store: Store; cleanup: () => Promise<void> }>,
): void {
  describe(`Store quotas: ${name}`, () => {
    let store: Store;
    let cleanup: () => Promise<void>;

    beforeEach(async () => {
      ({ store, cleanup } = await makeStore());
    });

    afterEach(async () => {
      await store.close();
      await cleanup();
    });

    it('refuses a topic beyond maxTopics, never a topic already followed', async () => {
      await store.createDevice(device('d1'));
      for (const t of ['a', 'b', 'c']) await store.subscribe('d1', t, { maxTopics: 3 });
      expect(await quotaOf(store.subscribe('d1', 'd', { maxTopics: 3 }))).toBe('TOO_MANY_TOPICS');
      expect(await store.topicsOf('d1')).toEqual(['a', 'b', 'c']);
      expect(await store.subscribe('d1', 'b', { maxTopics: 3 })).toBe(0);
      await store.unsubscribe('d1', 'a');
      await store.subscribe('d1', 'd', { maxTopics: 3 });
      expect(await store.topicsOf('d1')).toEqual(['b', 'c', 'd']);
      // Without a bound (the old behaviour) the store takes any number.
      await store.subscribe('d1', 'e');
      expect((await store.topicsOf('d1')).length).toBe(4);
    });

    it('refuses a device beyond maxDevicesPerUser; other users and user-less devices are not counted', async () => {
      const limits = { maxDevicesPerUser: 2 };
      await store.createDevice(device('a1', 'alice'), limits);
      await store.createDevice(device('a2', 'alice'), limits);
      expect(await quotaOf(store.createDevice(device('a3', 'alice'), limits))).toBe('TOO_MANY_DEVICES');
      await store.createDevice(device('b1', 'bob'), limits);
      await store.createDevice(device('n1'), limits);
      expect((await store.devicesOfUser('alice')).sort()).toEqual(['a1', 'a2']);
      expect(await store.getDevice('a3')).toBeUndefined();
      await store.deleteDevice('a1');
      await store.createDevice(device('a3', 'alice'), limits);
      expect((await store.devicesOfUser('alice')).sort()).toEqual(['a2', 'a3']);
    });

    it('never lets concurrent registrations pass maxDevicesPerUser', async () => {
      const limits = { maxDevicesPerUser: 3 };
      const settled = await Promise.allSettled(
        Array.from({ length: 10 }, (_, i) => store.createDevice(device(`c${i}`, 'carol'), limits)),
      );
      expect(settled.filter((r) => r.status === 'fulfilled').length).toBe(3);
      for (const r of settled) if (r.status === 'rejected') expect(r.reason).toBeInstanceOf(QuotaError);
      const listed = await store.devicesOfUser('carol');
      expect(listed.length).toBe(3);
      // Refused devices do not exist (their credentials were never handed out).
      const existing = await Promise.all(Array.from({ length: 10 }, (_, i) => store.getDevice(`c${i}`)));
      expect(
        existing
          .filter((d) => d !== undefined)
          .map((d) => d!.id)
          .sort(),
      ).toEqual([...listed].sort());
    });

    it('refuses a device beyond maxDevicesPerKey; a deleted device frees its place; 0 and admin devices unbounded', async () => {
      const byKey = (id: string, keyId: string): DeviceRecord => ({ ...device(id), keyId });
      const limits = { maxDevicesPerKey: 2 };
      await store.createDevice(byKey('k1', 'key_a'), limits);
      await store.createDevice(byKey('k2', 'key_a'), limits);
      expect(await quotaOf(store.createDevice(byKey('k3', 'key_a'), limits))).toBe('DEVICE_QUOTA_EXCEEDED');
      expect(await store.getDevice('k3')).toBeUndefined();
      // Another key, and devices of no key (admin), are not counted.
      await store.createDevice(byKey('o1', 'key_b'), limits);
      await store.createDevice(device('n1'), limits);
      await store.createDevice(device('n2'), limits);
      // A deleted device no longer counts.
      await store.deleteDevice('k1');
      await store.createDevice(byKey('k3', 'key_a'), limits);
      expect(await quotaOf(store.createDevice(byKey('k4', 'key_a'), limits))).toBe('DEVICE_QUOTA_EXCEEDED');
      // 0: no bound; the devices made meanwhile still count once a bound applies.
      await store.createDevice(byKey('k4', 'key_a'), { maxDevicesPerKey: 0 });
      expect(await quotaOf(store.createDevice(byKey('k5', 'key_a'), { maxDevicesPerKey: 3 }))).toBe(
        'DEVICE_QUOTA_EXCEEDED',
      );
      // A refusal by the per-user bound does not consume the key's place.
      const both = { maxDevicesPerKey: 1, maxDevicesPerUser: 1 };
      await store.createDevice(device('u1', 'dave'), both);
      expect(await quotaOf(store.createDevice({ ...byKey('u2', 'key_c'), user: 'dave' }, both))).toBe(
        'TOO_MANY_DEVICES',
      );
      await store.createDevice(byKey('c1', 'key_c'), both);
    });

    it('never lets concurrent registrations pass maxDevicesPerKey', async () => {
      const limits = { maxDevicesPerKey: 3 };
      const settled = await Promise.allSettled(
        Array.from({ length: 10 }, (_, i) =>
          store.createDevice({ ...device(`r${i}`), keyId: 'key_r' }, limits),
        ),
      );
      expect(settled.filter((r) => r.status === 'fulfilled').length).toBe(3);
      for (const r of settled) if (r.status === 'rejected') expect(r.reason).toBeInstanceOf(QuotaError);
      const existing = await Promise.all(Array.from({ length: 10 }, (_, i) => store.getDevice(`r${i}`)));
      expect(existing.filter((d) => d !== undefined).length).toBe(3);
    });

    it('refuses a publish to a device whose backlog holds maxPending entries, until it acks', async () => {
      await store.createDevice(device('d1'));
      const limits = { maxPending: 3 };
      for (let i = 1; i <= 3; i++) await store.publish(one(`m${i}`, 'd:d1', limits));
      expect(await quotaOf(store.publish(one('m4', 'd:d1', limits)))).toBe('DEVICE_BACKLOG_FULL');
      // Nothing of the refused publish was stored, its id is free, and other streams are not bounded.
      expect((await store.read('d:d1', 0, 10, T)).map((e) => e.id)).toEqual(['m1', 'm2', 'm3']);
      expect(await store.getPublish('m4')).toBeUndefined();
      await store.publish(one('t1', 't:news', limits));

      await store.ack('d1', { 'd:d1': 1 });
      const { record } = await store.publish(one('m4', 'd:d1', limits));
      expect(record.entries).toEqual([{ stream: 'd:d1', seq: 4 }]);
      expect(await quotaOf(store.publish(one('m5', 'd:d1', limits)))).toBe('DEVICE_BACKLOG_FULL');
    });

    it('stops counting entries the sweep removed (an offline device whose messages expired)', async () => {
      await store.createDevice(device('d1'));
      const limits = { maxPending: 2 };
      await store.publish(one('m1', 'd:d1', limits));
      await store.publish(one('m2', 'd:d1', limits));
      expect(await quotaOf(store.publish(one('m3', 'd:d1', limits)))).toBe('DEVICE_BACKLOG_FULL');
      await store.sweep(T + 2 * HOUR);
      const { record } = await store.publish(one('m3', 'd:d1', limits));
      expect(record.entries).toEqual([{ stream: 'd:d1', seq: 3 }]);
    });

    it('does not count entries that collapsed away, once swept', async () => {
      await store.createDevice(device('d1'));
      const limits = { maxPending: 3 };
      await store.publish(one('old', 'd:d1', limits));
      for (let i = 1; i <= 2; i++) await store.publish(one(`c${i}`, 'd:d1', limits, { collapseKey: 'n' }));
      await store.sweep(T);
      // Stored: old and c2 (c1 collapsed away); two more fit, c3 collapsing c2 among them.
      await store.publish(one('c3', 'd:d1', limits, { collapseKey: 'n' }));
      await store.sweep(T);
      await store.publish(one('m1', 'd:d1', limits));
      expect(await quotaOf(store.publish(one('m2', 'd:d1', limits)))).toBe('DEVICE_BACKLOG_FULL');
      expect((await store.read('d:d1', 0, 10, T)).map((e) => e.id)).toEqual(['old', 'c3', 'm1']);
    });

    it('refuses a publish that would take a device backlog past maxPendingBytes', async () => {
      await store.createDevice(device('d1'));
      const limits = { maxPendingBytes: 1000 };
      const data = 'x'.repeat(298); // 300 bytes of JSON
      for (let i = 1; i <= 3; i++) await store.publish(one(`m${i}`, 'd:d1', limits, { data }));
      expect(await quotaOf(store.publish(one('m4', 'd:d1', limits, { data })))).toBe('DEVICE_BACKLOG_FULL');
      // A smaller message still fits (900 + 50 bytes).
      await store.publish(one('small', 'd:d1', limits, { data: 'y'.repeat(48) }));
      await store.ack('d1', { 'd:d1': 4 });
      await store.sweep(T);
      await store.publish(one('m4', 'd:d1', limits, { data }));
      expect((await store.read('d:d1', 4, 10, T)).map((e) => e.id)).toEqual(['m4']);
    });

    it('keeps a message to a topic nobody follows only for unfollowedTopicTtlMs', async () => {
      await store.createDevice(device('d1'));
      const limits = { unfollowedTopicTtlMs: 60_000 };
      const lonely = await store.publish(one('l1', 't:lonely', limits));
      expect(lonely.record.exp).toBe(T + 60_000);
      expect((await store.read('t:lonely', 0, 10, T + 60_000)).length).toBe(0);

      await store.subscribe('d1', 'busy');
      const busy = await store.publish(one('b1', 't:busy', limits));
      expect(busy.record.exp).toBe(T + HOUR);
      // A device stream is never capped.
      expect((await store.publish(one('d1', 'd:d1', limits))).record.exp).toBe(T + HOUR);

      await store.unsubscribe('d1', 'busy');
      expect((await store.publish(one('b2', 't:busy', limits))).record.exp).toBe(T + 60_000);
      await store.subscribe('d1', 'busy');
      await store.deleteDevice('d1');
      expect((await store.publish(one('b3', 't:busy', limits))).record.exp).toBe(T + 60_000);
    });
  });
}
