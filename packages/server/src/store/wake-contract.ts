import { describe, expect, it } from 'vitest';
import type { Store } from './types.js';
import type { WakeToken } from './wake-tokens.js';

const T = 1_700_000_000_000;

/** Wake tokens, for every engine: part of {@link storeContract}. `store` gives the test's store. */
export function wakeTokenContract(store: () => Store): void {
  describe('wake tokens', () => {
    const apns: WakeToken = {
      deviceId: 'w1',
      provider: 'apns',
      token: 'a'.repeat(64),
      topic: 'com.example.app',
      environment: 'sandbox',
      updatedAt: T,
    };
    const create = (id: string) =>
      store().createDevice({ id, tokenHash: `h-${id}`, createdAt: T, lastSeen: 0 });
    const tokens = () => {
      const t = store().wakeTokens;
      if (!t) throw new Error('engine keeps no wake tokens');
      return t;
    };

    it('sets, replaces, gets and deletes one token per device', async () => {
      await create('w1');
      expect(await tokens().get('w1')).toBeUndefined();
      await tokens().set(apns);
      expect(await tokens().get('w1')).toEqual(apns);
      const fcm: WakeToken = { deviceId: 'w1', provider: 'fcm', token: 'fcm-token', updatedAt: T + 1 };
      await tokens().set(fcm);
      expect(await tokens().get('w1')).toEqual(fcm); // topic and environment of the old one are gone
      expect(await tokens().delete('w1')).toBe(true);
      expect(await tokens().get('w1')).toBeUndefined();
      expect(await tokens().delete('w1')).toBe(false);
    });

    it('deletes by token only while the device still has that token', async () => {
      await create('w1');
      await tokens().set(apns);
      expect(await tokens().delete('w1', 'old-token')).toBe(false);
      expect(await tokens().get('w1')).toEqual(apns);
      expect(await tokens().delete('w1', apns.token)).toBe(true);
      expect(await tokens().get('w1')).toBeUndefined();
    });

    it('refuses a token for an unknown device, and forgets it with its device', async () => {
      await expect(tokens().set({ ...apns, deviceId: 'ghost' })).rejects.toMatchObject({
        code: 'STORE_NOT_FOUND',
      });
      await create('w1');
      await create('w2');
      await tokens().set(apns);
      await tokens().set({ ...apns, deviceId: 'w2' });
      await store().deleteDevice('w1');
      expect(await tokens().get('w1')).toBeUndefined();
      expect(await tokens().get('w2')).toMatchObject({ deviceId: 'w2' });
      await create('w1'); // a device made again with the id starts without a token
      expect(await tokens().get('w1')).toBeUndefined();
    });
  });
}
