import { afterAll, describe, expect, it } from 'vitest';
import webpush from 'web-push';
import { http, registerDevice, until } from '../helpers/server.js';
import { type App, type Cluster, openApp, startCluster } from './cluster.js';

// Web Push on a cluster: the subscription lives in Redis, so any node takes a push to it and the
// node holding the device delivers it. The npm `web-push` library sends, as a backend would.

describe('Web Push on a Redis cluster (two `pushwire serve --redis` processes)', () => {
  let cluster: Cluster | undefined;
  let app: App | undefined;
  const vapid = webpush.generateVAPIDKeys();
  afterAll(async () => {
    await app?.client.close();
    await cluster?.stop();
  });

  it('subscribe on node A, push through node B: the device on A gets it once; unsubscribed → 410 on both', async () => {
    cluster = await startCluster(2);
    const [a, b] = cluster.nodes.map((n) => n.url) as [string, string];
    for (const n of cluster.nodes) expect(n.output()).not.toContain('Web Push off');
    const device = await registerDevice(a);
    app = openApp(device, [a]);
    await until(() => app!.client.state === 'open', 15_000, 'device open on A');

    // The SDK subscribes through the node it is connected to (A).
    const sub = await app.client.pushSubscribe({ applicationServerKey: vapid.publicKey });
    expect(new URL(sub.endpoint).origin).toBe(a);
    const viaB = { ...sub, endpoint: sub.endpoint.replace(a, b) };
    const listed = await http<{ subscriptions: { subscriptionId: string }[] }>(
      b,
      'GET',
      `/v1/devices/${device.deviceId}/webpush`,
    );
    expect(listed.body.subscriptions).toHaveLength(1);

    // web-push's request (VAPID JWT for the endpoint's origin, RFC 8291 body), sent over plain HTTP.
    const send = async (target: typeof sub, text: string) => {
      const req = webpush.generateRequestDetails(target, text, {
        vapidDetails: {
          subject: 'mailto:ops@example.com',
          publicKey: vapid.publicKey,
          privateKey: vapid.privateKey,
        },
        TTL: 60,
      });
      const res = await fetch(req.endpoint, {
        method: req.method,
        headers: req.headers as Record<string, string>,
        body: req.body ? new Uint8Array(req.body) : null,
      });
      return { status: res.status, body: (await res.json()) as { error?: string } };
    };
    const sent = await send(viaB, 'hello through B');
    expect(sent.status).toBe(201);
    // A plain message after it on the device's own stream: once it arrived, the push had its chance too.
    const marker = await http<{ id: string }>(b, 'POST', '/v1/messages', {
      to: { device: device.deviceId },
      data: { marker: true },
    });
    expect(marker.status).toBe(202);
    await until(() => app!.seen.has([marker.body.id]), 15_000, 'marker on A');
    const pushes = app.seen.messages.filter((m) => m.webpush);
    expect(pushes.map((m) => m.data)).toEqual(['hello through B']);
    expect(app.seen.duplicated).toBe(0);

    // Unsubscribe through A (the SDK's node): both nodes answer 410 from then on.
    expect(await app.client.pushUnsubscribe()).toBe(true);
    for (const target of [sub, viaB]) {
      const refused = await send(target, 'too late');
      expect([refused.status, refused.body.error], target.endpoint).toEqual([410, 'UNSUBSCRIBED']);
    }
    expect(app.seen.messages.filter((m) => m.webpush)).toHaveLength(1);
  });
});
