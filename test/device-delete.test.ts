import { base64urlEncode, generateWebPushKeys } from '@pushwire/protocol';
import { deviceIdOfUaid, type SqliteStore, type WebPushRegistry } from '@pushwire/server';
import type Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import webpush from 'web-push';
import { AutopushClient } from './helpers/autopush-client.js';
import { API_KEY, http, registerDevice, startServer } from './helpers/server.js';
import { sendWebPush } from './helpers/webpush-http.js';

/**
 * Deleting a device (DELETE /v1/devices/:id) deletes its Web Push subscriptions with it, in the
 * same SQLite transaction: their endpoints answer 404 UNKNOWN_SUBSCRIPTION (as a purged
 * subscription's does) and no row is left, for subscriptions made over the API and autopush
 * channels alike (a uaid is a device).
 */

const vapid = webpush.generateVAPIDKeys();
/** Receiver keys: what a browser hands the application server beside the endpoint. */
let keys: { p256dh: string; auth: string };

describe('deleting a device deletes its Web Push subscriptions (HTTP, SQLite)', () => {
  let s: Awaited<ReturnType<typeof startServer>>;
  let registry: WebPushRegistry;
  let db: Database.Database;
  beforeAll(async () => {
    const k = await generateWebPushKeys();
    keys = { p256dh: base64urlEncode(k.publicKeyRaw), auth: base64urlEncode(k.authSecret) };
    s = await startServer({ autopush: true, webPush: { rate: 1000, burst: 1000 } });
    const store = s.server.options.store as SqliteStore;
    registry = store.webPushRegistry;
    db = store.database;
  });
  afterAll(() => s.stop());

  const rowsOf = (deviceId: string) =>
    db.prepare('SELECT count(*) FROM webpush_subscriptions WHERE device_id = ?').pluck().get(deviceId);

  const subscribe = async (device: { deviceId: string; token: string }) => {
    const r = await fetch(`${s.url}/v1/devices/${device.deviceId}/webpush`, {
      method: 'POST',
      headers: {
        authorization: `Device ${device.deviceId}:${device.token}`,
        'content-type': 'application/json',
      },
      body: '{}',
    });
    expect(r.status).toBe(201);
    return (await r.json()) as { endpoint: string; subscriptionId: string };
  };

  it('its endpoints answer 404 UNKNOWN_SUBSCRIPTION and the store holds no row; other devices keep theirs', async () => {
    const device = await registerDevice(s.url);
    const other = await registerDevice(s.url);
    const live = await subscribe(device);
    const revoked = await subscribe(device);
    const kept = await subscribe(other);
    expect(
      (await http(s.url, 'DELETE', `/v1/devices/${device.deviceId}/webpush/${revoked.subscriptionId}`))
        .status,
    ).toBe(204);
    expect((await sendWebPush({ endpoint: live.endpoint, keys }, 'x', undefined)).status).toBe(201);
    expect(rowsOf(device.deviceId)).toBe(2);

    expect((await http(s.url, 'DELETE', `/v1/devices/${device.deviceId}`)).status).toBe(204);

    for (const sub of [live, revoked]) {
      const r = await sendWebPush({ endpoint: sub.endpoint, keys }, 'x', undefined);
      expect([r.status, JSON.parse(r.body).error]).toEqual([404, 'UNKNOWN_SUBSCRIPTION']);
      expect(await registry.byId(sub.subscriptionId)).toBeUndefined();
    }
    expect(rowsOf(device.deviceId)).toBe(0);
    expect(await registry.listByDevice(device.deviceId)).toEqual([]);
    // The other device is untouched; the deleted one's subscription list is 404 like the device.
    expect((await sendWebPush({ endpoint: kept.endpoint, keys }, 'x', undefined)).status).toBe(201);
    expect(rowsOf(other.deviceId)).toBe(1);
    const list = await fetch(`${s.url}/v1/devices/${device.deviceId}/webpush`, {
      headers: { authorization: `Device ${device.deviceId}:${device.token}` },
    });
    expect(list.status).toBe(401);
  });

  it('hostile: deleting an unknown device is 404 UNKNOWN_DEVICE, twice; nothing else is deleted', async () => {
    const other = await registerDevice(s.url);
    await subscribe(other);
    for (let i = 0; i < 2; i++) {
      const r = await http<{ error: string }>(s.url, 'DELETE', '/v1/devices/dev_nobody');
      expect([r.status, r.body.error]).toEqual([404, 'UNKNOWN_DEVICE']);
    }
    expect(rowsOf(other.deviceId)).toBe(1);
  });

  it('autopush: deleting a uaid deletes its channels; their endpoints answer 404, the uaid is not known again', async () => {
    const c = await AutopushClient.open(s.url);
    const uaid = await c.hello();
    const endpoints: string[] = [];
    for (const channelID of [crypto.randomUUID(), crypto.randomUUID()]) {
      c.send({ messageType: 'register', channelID, key: `${vapid.publicKey}=` });
      const reply = await c.next((m) => m.messageType === 'register' && m.channelID === channelID);
      expect(reply.status).toBe(200);
      endpoints.push(reply.pushEndpoint as string);
    }
    const deviceId = deviceIdOfUaid(uaid);
    expect(rowsOf(deviceId)).toBe(2);
    expect((await http(s.url, 'DELETE', `/v1/devices/${deviceId}`, undefined, API_KEY)).status).toBe(204);
    await c.whenClosed();
    for (const endpoint of endpoints) {
      const r = await sendWebPush({ endpoint, keys }, 'x', vapid);
      expect([r.status, JSON.parse(r.body).error]).toEqual([404, 'UNKNOWN_SUBSCRIPTION']);
    }
    expect(rowsOf(deviceId)).toBe(0);
    // A hello with the deleted uaid gets a new one: nothing of the old device comes back.
    const c2 = await AutopushClient.open(s.url);
    expect(await c2.hello(uaid)).not.toBe(uaid);
    c2.close();
  });
});
