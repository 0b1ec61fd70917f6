import { describe, expect, it } from 'vitest';
import type { ApiKeyRecord } from './api-keys.js';
import type { Store } from './types.js';

const T = 1_700_000_000_000;

/**
 * API keys, device subscribe patterns and token rotation, for every engine: part of
 * {@link storeContract}. `store` gives the test's store.
 */
export function accessContract(store: () => Store): void {
  describe('API keys and device access', () => {
    const keys = () => {
      const k = store().apiKeys;
      if (!k) throw new Error('engine keeps no API keys');
      return k;
    };
    const key = (id: string, extra: Partial<ApiKeyRecord> = {}): ApiKeyRecord => ({
      id,
      hash: `hash-${id}`,
      scopes: ['publish', 'status'],
      createdAt: T,
      ...extra,
    });

    it('creates keys, finds them by hash and lists them oldest first', async () => {
      const a = key('k1', { label: 'backend', topics: ['news/*'], rate: 5 });
      const b = key('k2', { scopes: ['register'], subscribe: [], createdAt: T + 1 });
      await keys().create(b);
      await keys().create(a);
      expect(await keys().byHash('hash-k1')).toEqual(a);
      expect(await keys().byHash('hash-k2')).toEqual(b); // an empty pattern list stays a list
      expect(await keys().byHash('nope')).toBeUndefined();
      expect(await keys().list()).toEqual([a, b]);
    });

    it('refuses a second key with the same id or hash', async () => {
      await keys().create(key('k1'));
      await expect(keys().create(key('k1', { hash: 'other' }))).rejects.toMatchObject({
        code: 'STORE_INVALID',
      });
      await expect(keys().create(key('k9', { hash: 'hash-k1' }))).rejects.toMatchObject({
        code: 'STORE_INVALID',
      });
    });

    it('revokes once, keeps the revoked key listed, and records uses', async () => {
      await keys().create(key('k1'));
      await keys().touch('k1', T + 5);
      expect(await keys().revoke('k1', T + 10)).toBe(true);
      expect(await keys().revoke('k1', T + 20)).toBe(false);
      expect(await keys().revoke('unknown', T)).toBe(false);
      expect(await keys().byHash('hash-k1')).toMatchObject({ revokedAt: T + 10, lastUsed: T + 5 });
      expect(await keys().list()).toEqual([{ ...key('k1'), revokedAt: T + 10, lastUsed: T + 5 }]);
    });

    it('stores the subscribe patterns a device was registered with (absent: any topic)', async () => {
      const base = { createdAt: T, lastSeen: 0 };
      await store().createDevice({ id: 'p1', tokenHash: 'h1', subscribe: ['demo/*', 'u-{user}'], ...base });
      await store().createDevice({ id: 'p2', tokenHash: 'h2', subscribe: [], ...base });
      await store().createDevice({ id: 'p3', tokenHash: 'h3', ...base });
      expect((await store().getDevice('p1'))?.subscribe).toEqual(['demo/*', 'u-{user}']);
      expect((await store().getDevice('p2'))?.subscribe).toEqual([]);
      expect((await store().getDevice('p3'))?.subscribe).toBeUndefined();
    });

    it('rotates a device token: the new hash is read at once; unknown devices are refused', async () => {
      const s = store();
      if (!s.setDeviceToken) throw new Error('engine cannot rotate tokens');
      await s.createDevice({ id: 'r1', tokenHash: 'old', createdAt: T, lastSeen: 0 });
      expect((await s.getDevice('r1'))?.tokenHash).toBe('old'); // cached by engines that cache
      expect(await s.setDeviceToken('r1', 'new')).toBe(true);
      expect((await s.getDevice('r1'))?.tokenHash).toBe('new');
      expect(await s.setDeviceToken('ghost', 'x')).toBe(false);
      expect(await s.getDevice('ghost')).toBeUndefined();
    });
  });
}
