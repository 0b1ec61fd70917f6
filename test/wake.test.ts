import { createClient } from '@pushwire/client/node';
import type { PushwireServer } from '@pushwire/server';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { countingWakeClock } from './helpers/barrier.js';
import { PushProviders } from './helpers/push-providers.js';
import { RawClient } from './helpers/raw-client.js';
import { API_KEY, http, registerDevice, startServer, tempDir, until } from './helpers/server.js';
import { makeTestCertificates } from './helpers/tls.js';

// Content-free wake-ups through APNs and FCM, against stand-ins on real HTTP/2 over TLS (a
// throw-away CA) that check credentials and headers as the real services do.

const SECRET = 'the launch code is 0000';
const WAKE_AFTER_S = 0.3;

describe('wake-ups through APNs and FCM', () => {
  let providers: PushProviders;
  let s: Awaited<ReturnType<typeof startServer>>;
  let server: PushwireServer;
  const tmp = tempDir('pushwire-wake-');
  // Real timers, counted: once a wake is counted as sent and no wake timer is armed, no further
  // wake can come without a new message or the end of a session (a barrier instead of a sleep).
  const wakeClock = countingWakeClock();
  const sentTotal = () => (server.wake?.counters.sent.apns ?? 0) + (server.wake?.counters.sent.fcm ?? 0);
  /** Waits until `n` wakes are counted as sent, then checks nothing else is scheduled. */
  async function settled(n: number) {
    await until(() => sentTotal() >= n, 10_000, `${n} wakes counted`);
    expect(sentTotal()).toBe(n);
    expect(wakeClock.armed).toBe(0);
  }

  beforeAll(async () => {
    const certs = makeTestCertificates(tmp.dir);
    providers = await new PushProviders().start(certs);
    s = await startServer({
      wake: {
        apns: {
          key: providers.apnsKeyPem,
          keyId: providers.keyId,
          teamId: providers.teamId,
          url: providers.url,
          ca: certs.ca,
        },
        fcm: {
          serviceAccount: providers.serviceAccount,
          url: providers.url,
          tokenUrl: providers.tokenUrl,
          ca: certs.ca,
        },
        afterSeconds: WAKE_AFTER_S,
        clock: wakeClock,
      },
    });
    server = s.server;
  });

  afterAll(async () => {
    await s?.stop();
    await providers?.close();
    tmp.cleanup();
  });

  /** A device with a wake token registered by itself (`Device ID:TOKEN`). */
  async function deviceWith(provider: 'apns' | 'fcm', token: string) {
    const dev = await registerDevice(s.url);
    const res = await fetch(`${s.url}/v1/devices/${dev.deviceId}/wake`, {
      method: 'PUT',
      headers: { authorization: `Device ${dev.deviceId}:${dev.token}`, 'content-type': 'application/json' },
      body: JSON.stringify(
        provider === 'apns' ? { provider, token, topic: providers.topic } : { provider, token },
      ),
    });
    expect(res.status).toBe(200);
    return dev;
  }
  const publish = (deviceId: string, extra: Record<string, unknown> = {}) =>
    http(s.url, 'POST', '/v1/messages', {
      to: { device: deviceId },
      data: { secret: SECRET },
      notification: { title: SECRET },
      ...extra,
    });
  const apnsTo = (token: string) => providers.apns.filter((r) => r.path === `/3/device/${token}`);
  const fcmTo = (token: string) => providers.fcm.filter((r) => JSON.parse(r.body).message.token === token);

  it('a message to an offline device produces exactly one wake, with no message content on the wire', async () => {
    const token = 'a1'.repeat(32);
    const dev = await deviceWith('apns', token);
    const before = sentTotal();
    expect((await publish(dev.deviceId)).status).toBe(202);
    await until(() => apnsTo(token).length === 1, 10_000, 'the wake');
    await settled(before + 1);
    const sent = apnsTo(token);
    expect(sent).toHaveLength(1);
    const [wake] = sent;
    expect(wake?.problems).toEqual([]);
    expect(wake?.status).toBe(200);
    expect(JSON.parse(wake?.body ?? '')).toEqual({ aps: { 'content-available': 1 } });
    expect(wake?.headers['apns-topic']).toBe(providers.topic);
    expect(wake?.headers['apns-push-type']).toBe('background');
    expect(wake?.headers['apns-priority']).toBe('5');
    expect(JSON.stringify(wake)).not.toContain('launch code');

    // The device record shows the provider, never the whole token.
    const shown = await http<{ wake: { provider: string; token: string } }>(
      s.url,
      'GET',
      `/v1/devices/${dev.deviceId}`,
    );
    expect(shown.body.wake).toMatchObject({ provider: 'apns', topic: providers.topic });
    expect(shown.body.wake.token).not.toContain(token);
  });

  it('sends none while the device is connected, and one once it is offline again with new messages', async () => {
    const token = 'b2'.repeat(32);
    const dev = await deviceWith('apns', token);
    const c = new RawClient(s.url);
    await c.opened();
    c.hello(dev.deviceId, dev.token);
    await c.next('welcome');
    await publish(dev.deviceId);
    const msg = await c.next('msg');
    c.send(JSON.stringify({ t: 'ack', acks: { [msg.stream]: msg.seq } }));
    // The publish was answered: had it armed a wake, the timer would be counted now.
    expect(wakeClock.armed).toBe(0);
    expect(apnsTo(token)).toHaveLength(0);

    c.ws.close();
    await c.whenClosed();
    await until(async () => !(await server.hub.isOnline(dev.deviceId)), 5000, 'offline');
    const before = sentTotal();
    await publish(dev.deviceId);
    await until(() => apnsTo(token).length === 1, 10_000, 'the wake after going offline');
    await settled(before + 1);
  });

  it('a session that ends with a message unacknowledged leads to one wake', async () => {
    const token = 'c5'.repeat(32);
    const dev = await deviceWith('apns', token);
    const c = new RawClient(s.url);
    await c.opened();
    c.hello(dev.deviceId, dev.token);
    await c.next('welcome');
    const before = sentTotal();
    await publish(dev.deviceId);
    await c.next('msg'); // received, never acknowledged: the app was suspended
    // Handed to a session on this node: the message arms no wake of its own while the session is open.
    expect(wakeClock.armed).toBe(0);
    expect(apnsTo(token)).toHaveLength(0);
    c.ws.terminate(); // no close frame, as when the OS takes the socket away
    await until(() => apnsTo(token).length === 1, 10_000, 'the wake after the session ended');
    await settled(before + 1);
    expect(apnsTo(token)).toHaveLength(1);
  });

  it('one wake for a burst of 100 messages (FCM: data-only, high priority, OAuth token reused)', async () => {
    const token = `fcm-${'c'.repeat(150)}`;
    const dev = await deviceWith('fcm', token);
    const oauthBefore = providers.oauth.length;
    const before = sentTotal();
    await Promise.all(Array.from({ length: 100 }, (_, i) => publish(dev.deviceId, { id: `burst-${i}` })));
    await until(() => fcmTo(token).length === 1, 10_000, 'the wake');
    await settled(before + 1);
    const sent = fcmTo(token);
    expect(sent).toHaveLength(1);
    expect(sent[0]?.problems).toEqual([]);
    const message = JSON.parse(sent[0]?.body ?? '').message;
    expect(message.data).toEqual({ pushwire: 'wake' });
    expect(message.android.priority).toBe('high');
    expect(message.notification).toBeUndefined();
    expect(sent[0]?.body).not.toContain('launch code');
    expect(providers.oauth.length - oauthBefore).toBeLessThanOrEqual(1);
    expect(providers.oauth.every((r) => r.problems.length === 0)).toBe(true);
  });

  it('removes a token APNs answers 410 Unregistered for', async () => {
    const token = 'd3'.repeat(32);
    providers.script.set(token, [{ status: 410, body: { reason: 'Unregistered', timestamp: Date.now() } }]);
    const dev = await deviceWith('apns', token);
    const removedBefore = server.wake?.counters.removed.apns ?? 0;
    await publish(dev.deviceId);
    await until(
      async () => (await server.options.store.wakeTokens?.get(dev.deviceId)) === undefined,
      10_000,
      'removal',
    );
    expect(apnsTo(token)).toHaveLength(1);
    expect(server.wake?.counters.removed.apns).toBe(removedBefore + 1);
    const shown = await http<{ wake: unknown }>(s.url, 'GET', `/v1/devices/${dev.deviceId}`);
    expect(shown.body.wake).toBeNull();
  });

  it('removes an FCM token answered UNREGISTERED', async () => {
    const token = `fcm-${'e'.repeat(150)}`;
    providers.script.set(token, [
      {
        status: 404,
        body: { error: { code: 404, status: 'NOT_FOUND', details: [{ errorCode: 'UNREGISTERED' }] } },
      },
    ]);
    const dev = await deviceWith('fcm', token);
    await publish(dev.deviceId);
    await until(
      async () => (await server.options.store.wakeTokens?.get(dev.deviceId)) === undefined,
      10_000,
      'removal',
    );
    expect(fcmTo(token)).toHaveLength(1);
  });

  it('retries after 503 with backoff, then delivers once', async () => {
    const token = 'f4'.repeat(32);
    providers.script.set(token, [{ status: 503, body: { reason: 'ServiceUnavailable' } }, { status: 503 }]);
    const dev = await deviceWith('apns', token);
    const sentBefore = server.wake?.counters.sent.apns ?? 0;
    await publish(dev.deviceId);
    await until(() => apnsTo(token).length === 3, 15_000, 'three attempts');
    const times = apnsTo(token).map((r) => r.status);
    expect(times).toEqual([503, 503, 200]);
    await until(() => server.wake?.counters.sent.apns === sentBefore + 1, 5000, 'counted');
    const metrics = await fetch(`${s.url}/metrics`, { headers: { authorization: `Bearer ${API_KEY}` } });
    const text = await metrics.text();
    expect(text).toMatch(/pushwire_wakes_sent_total\{provider="apns"\} [1-9]/);
    expect(text).toMatch(/pushwire_wake_tokens_removed_total\{provider="apns"\} 1/);
  });

  it('the SDK registers and removes its token with setWakeToken', async () => {
    const dev = await registerDevice(s.url);
    const client = createClient({ url: s.url, credentials: dev });
    try {
      await client.setWakeToken({
        provider: 'apns',
        token: '0a'.repeat(32),
        topic: providers.topic,
        environment: 'sandbox',
      });
      expect(await server.options.store.wakeTokens?.get(dev.deviceId)).toMatchObject({
        provider: 'apns',
        token: '0a'.repeat(32),
        topic: providers.topic,
        environment: 'sandbox',
      });
      await expect(client.setWakeToken({ provider: 'fcm', token: 'x', topic: 'nope' })).rejects.toMatchObject(
        {
          code: 'ERR_REQUEST',
        },
      );
      await client.setWakeToken(null);
      expect(await server.options.store.wakeTokens?.get(dev.deviceId)).toBeUndefined();
    } finally {
      await client.close();
    }
  });

  it('checks who registers a token and what it looks like', async () => {
    const a = await registerDevice(s.url);
    const b = await registerDevice(s.url);
    const put = (id: string, auth: string, body: unknown) =>
      fetch(`${s.url}/v1/devices/${id}/wake`, {
        method: 'PUT',
        headers: { authorization: auth, 'content-type': 'application/json' },
        body: JSON.stringify(body),
      });
    expect(
      (await put(a.deviceId, `Device ${b.deviceId}:${b.token}`, { provider: 'fcm', token: 'x' })).status,
    ).toBe(403);
    expect(
      (await put(a.deviceId, `Device ${a.deviceId}:wrong`, { provider: 'fcm', token: 'x' })).status,
    ).toBe(401);
    const bad = await put(a.deviceId, `Bearer ${API_KEY}`, { provider: 'gcm', token: 'x' });
    expect(bad.status).toBe(400);
    expect(await bad.json()).toMatchObject({ error: 'BAD_REQUEST' });
    expect((await put('nope', `Bearer ${API_KEY}`, { provider: 'fcm', token: 'x' })).status).toBe(404);
    expect((await put(a.deviceId, `Bearer ${API_KEY}`, { provider: 'apns', token: 'ab' })).status).toBe(200);
    const del = await fetch(`${s.url}/v1/devices/${a.deviceId}/wake`, {
      method: 'DELETE',
      headers: { authorization: `Device ${a.deviceId}:${a.token}` },
    });
    expect(del.status).toBe(204);
    expect(await server.options.store.wakeTokens?.get(a.deviceId)).toBeUndefined();
  });
});
