import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import webpush from 'web-push';
import { http, registerDevice, startServer } from './helpers/server.js';
import { sendWebPush } from './helpers/webpush-http.js';

/** UnifiedPush on the Web Push endpoints: discovery, pushes without VAPID, the Matrix gateway. */
describe('UnifiedPush: discovery and the Matrix push gateway', () => {
  let s: Awaited<ReturnType<typeof startServer>>;
  let deviceId: string;
  const keys = { p256dh: '', auth: '' };

  const subscribe = async (body: Record<string, unknown> = {}) => {
    const r = await http<{ endpoint: string; subscriptionId: string }>(
      s.url,
      'POST',
      `/v1/devices/${deviceId}/webpush`,
      body,
    );
    expect(r.status).toBe(201);
    return r.body;
  };
  const entries = () => s.server.options.store.read(`d:${deviceId}`, 0, 1000, Date.now());
  const notify = (body: unknown, headers: Record<string, string> = { 'content-type': 'application/json' }) =>
    fetch(`${s.url}/_matrix/push/v1/notify`, {
      method: 'POST',
      headers,
      body: typeof body === 'string' ? body : JSON.stringify(body),
    });

  beforeAll(async () => {
    s = await startServer();
    deviceId = (await registerDevice(s.url)).deviceId;
    // A receiver key pair for web-push to encrypt to (the test reads the stored entries).
    const ecdh = (await import('node:crypto')).createECDH('prime256v1');
    ecdh.generateKeys();
    keys.p256dh = ecdh.getPublicKey().toString('base64url');
    keys.auth = Buffer.alloc(16, 7).toString('base64url');
  });
  afterAll(() => s.stop());

  it('GET on a Web Push endpoint answers the UnifiedPush discovery; unknown 404, unsubscribed 410', async () => {
    const { endpoint, subscriptionId } = await subscribe();
    const r = await fetch(endpoint);
    expect([r.status, await r.json()]).toEqual([200, { unifiedpush: { version: 1 } }]);
    const unknown = await fetch(`${s.url}/wp/${'A'.repeat(32)}`);
    expect([unknown.status, (await unknown.json()).error]).toEqual([404, 'UNKNOWN_SUBSCRIPTION']);
    expect((await fetch(`${s.url}/wp/x`)).status).toBe(404);
    await http(s.url, 'DELETE', `/v1/devices/${deviceId}/webpush/${subscriptionId}`);
    expect((await fetch(endpoint)).status).toBe(410);
  });

  it('a push without VAPID is accepted unless the subscription was made with a key', async () => {
    const open = await subscribe();
    expect((await sendWebPush({ endpoint: open.endpoint, keys }, 'hi', undefined)).status).toBe(201);
    const vapid = webpush.generateVAPIDKeys();
    const keyed = await subscribe({ applicationServerKey: vapid.publicKey });
    const r = await sendWebPush({ endpoint: keyed.endpoint, keys }, 'hi', undefined);
    expect([r.status, JSON.parse(r.body).error]).toEqual([401, 'VAPID_REQUIRED']);
    expect((await sendWebPush({ endpoint: keyed.endpoint, keys }, 'hi', vapid)).status).toBe(201);
  });

  it('GET /_matrix/push/v1/notify names the gateway', async () => {
    const r = await fetch(`${s.url}/_matrix/push/v1/notify`);
    expect(await r.json()).toEqual({ unifiedpush: { gateway: 'matrix' } });
  });

  it('POST forwards the notification to pushkeys of this server and rejects the others', async () => {
    const live = await subscribe();
    const gone = await subscribe();
    await http(s.url, 'DELETE', `/v1/devices/${deviceId}/webpush/${gone.subscriptionId}`);
    const foreign = 'https://push.example.net/wp/AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA';
    const wrongPath = `${s.url}/v1/devices`;
    const unknown = `${s.url}/wp/${'B'.repeat(32)}`;
    const body = {
      notification: {
        event_id: '$3957tyerfgewrf384',
        room_id: '!slw48wfj34rtnrf:example.com',
        type: 'm.room.message',
        counts: { unread: 2 },
        devices: [
          live,
          gone,
          { endpoint: foreign },
          { endpoint: wrongPath },
          { endpoint: unknown },
          { endpoint: 'not a url' },
        ].map((d) => ({
          app_id: 'im.vector.app.android',
          pushkey: d.endpoint,
          pushkey_ts: 12345678,
          data: {},
        })),
      },
    };
    const before = (await entries()).length;
    const r = await notify(body);
    expect(r.status).toBe(200);
    expect((await r.json()).rejected).toEqual([gone.endpoint, foreign, wrongPath, unknown, 'not a url']);
    const added = (await entries()).slice(before);
    expect(added).toHaveLength(1);
    const wp = (added[0]!.data as { webpush: { sub: string; body: string; plain: boolean } }).webpush;
    expect(wp.sub).toBe(live.subscriptionId);
    expect(wp.plain).toBe(true);
    expect(JSON.parse(Buffer.from(wp.body, 'base64url').toString())).toEqual(body);
  });

  it('hostile: bad JSON, wrong shapes, huge bodies, too many devices → a status and a JSON error', async () => {
    const bad = await notify('{"notification":');
    expect(bad.status).toBe(400);
    expect((await bad.json()).error).toEqual(expect.any(String));
    for (const b of [
      {},
      { notification: {} },
      { notification: { devices: [{}] } },
      { notification: { devices: 'x' } },
    ]) {
      const r = await notify(b);
      expect([r.status, typeof (await r.json()).error], JSON.stringify(b)).toEqual([400, 'string']);
    }
    const many = { notification: { devices: Array.from({ length: 65 }, () => ({ pushkey: 'x' })) } };
    expect((await notify(many)).status).toBe(400);
    const live = await subscribe();
    const big = {
      notification: { devices: [{ pushkey: live.endpoint }], content: { body: 'x'.repeat(5000) } },
    };
    const tooBig = await notify(big);
    expect([tooBig.status, (await tooBig.json()).error]).toEqual([413, 'PAYLOAD_TOO_LARGE']);
    const huge = await notify({ notification: { devices: [], pad: 'x'.repeat(200_000) } });
    expect(huge.status).toBe(413);
    const text = await notify('hello', { 'content-type': 'text/plain' });
    expect([text.status, typeof (await text.json()).error]).toEqual([400, 'string']);
  });
});
