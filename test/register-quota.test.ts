import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { API_KEY, startServer } from './helpers/server.js';

/**
 * A stolen `register` key cannot create devices without bound: besides the per-address rate, a
 * key may have at most `maxDevicesPerRegisterKey` live devices, whatever addresses it comes from
 * (429 DEVICE_QUOTA_EXCEEDED); deleting one of its devices frees a place; admin keys are not bound.
 */
describe('devices per register key (HTTP, SQLite)', () => {
  let s: Awaited<ReturnType<typeof startServer>>;
  beforeAll(async () => {
    s = await startServer({ registerRate: 1, registerBurst: 1, maxDevicesPerRegisterKey: 3 });
  });
  afterAll(() => s.stop());

  let addresses = 0;
  /** Each call from a new client address, as an attacker with many addresses would. */
  const req = (method: 'POST' | 'DELETE', url: string, key: string, payload?: unknown) =>
    s.server.app.inject({
      method,
      url,
      remoteAddress: `10.0.${Math.floor(++addresses / 250)}.${addresses % 250}`,
      headers: {
        authorization: `Bearer ${key}`,
        ...(payload !== undefined && { 'content-type': 'application/json' }),
      },
      ...(payload !== undefined && { payload: JSON.stringify(payload) }),
    });
  const registerKey = async () => {
    const r = await req('POST', '/v1/keys', API_KEY, { scopes: ['register'] });
    expect(r.statusCode).toBe(201);
    return (r.json() as { key: string }).key;
  };

  it('a key registers up to its bound from many addresses, then gets 429 DEVICE_QUOTA_EXCEEDED; a deleted device frees a place', async () => {
    const key = await registerKey();
    const made: string[] = [];
    for (let i = 0; i < 3; i++) {
      const r = await req('POST', '/v1/devices', key, {});
      expect(r.statusCode).toBe(201);
      made.push((r.json() as { deviceId: string }).deviceId);
    }
    for (let i = 0; i < 3; i++) {
      const refused = await req('POST', '/v1/devices', key, {});
      expect(refused.statusCode).toBe(429);
      expect(refused.json()).toMatchObject({ error: 'DEVICE_QUOTA_EXCEEDED' });
      expect((refused.json() as { message: string }).message).toMatch(/may have 3 devices/);
    }
    expect((await req('DELETE', `/v1/devices/${made[0]}`, API_KEY)).statusCode).toBe(204);
    expect((await req('POST', '/v1/devices', key, {})).statusCode).toBe(201);
    expect((await req('POST', '/v1/devices', key, {})).statusCode).toBe(429);
  });

  it('another register key has its own count; admin keys are not bound', async () => {
    const other = await registerKey();
    for (let i = 0; i < 3; i++) expect((await req('POST', '/v1/devices', other, {})).statusCode).toBe(201);
    expect((await req('POST', '/v1/devices', other, {})).statusCode).toBe(429);
    for (let i = 0; i < 5; i++) expect((await req('POST', '/v1/devices', API_KEY, {})).statusCode).toBe(201);
    const batch = await req('POST', '/v1/devices/batch', API_KEY, { devices: [{}, {}, {}, {}] });
    expect(batch.statusCode).toBe(201);
  });

  it('0 turns the bound off', async () => {
    const off = await startServer({ registerRate: 0, maxDevicesPerRegisterKey: 0 });
    try {
      const r = await off.server.app.inject({
        method: 'POST',
        url: '/v1/keys',
        headers: { authorization: `Bearer ${API_KEY}`, 'content-type': 'application/json' },
        payload: JSON.stringify({ scopes: ['register'] }),
      });
      const { key } = r.json() as { key: string };
      for (let i = 0; i < 10; i++) {
        const dev = await off.server.app.inject({
          method: 'POST',
          url: '/v1/devices',
          headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
          payload: '{}',
        });
        expect(dev.statusCode).toBe(201);
      }
    } finally {
      await off.stop();
    }
  });
});
