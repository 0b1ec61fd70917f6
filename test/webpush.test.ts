import { execFile } from 'node:child_process';
import { Agent } from 'node:https';
import { join } from 'node:path';
import { promisify } from 'node:util';
import {
  base64urlDecode,
  decryptAes128gcm,
  exportWebPushKeys,
  generateWebPushKeys,
  type MessageFrame,
  SUBPROTOCOL,
  type WebPushKeys,
} from '@pushwire/protocol';
import type { PushwireServer } from '@pushwire/server';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import webpush, { type PushSubscription, type WebPushError } from 'web-push';
import { RawClient } from './helpers/raw-client.js';
import { API_KEY, ROOT, spawnServer, startServer, tempDir, until } from './helpers/server.js';
import { httpsJson, makeTestCertificates, type TestCertificates } from './helpers/tls.js';

/**
 * Interop: nothing of ours sends. The npm `web-push` library and its command-line tool publish to
 * Pushwire endpoints over HTTPS (a throw-away CA, trusted explicitly); a device on a real WSS
 * socket receives the ciphertext and decrypts it with the keys the test gave `web-push`.
 */

const run = promisify(execFile);
const WEB_PUSH_CLI = join(ROOT, 'node_modules/.bin/web-push');
const SUBJECT = 'mailto:ops@example.com';

type Device = { deviceId: string; token: string };
interface Subscriber {
  device: Device;
  keys: WebPushKeys;
  /** What a backend stores: exactly a browser's PushSubscription.toJSON(). */
  subscription: PushSubscription;
  subscriptionId: string;
}

describe('Web Push interop: web-push library and CLI → Pushwire over HTTPS', () => {
  let certs: TestCertificates;
  let url: string;
  let agent: Agent;
  let stop: () => Promise<void>;
  let cleanup: () => void;
  let server: PushwireServer;
  const vapid = webpush.generateVAPIDKeys();
  const clients: RawClient[] = [];

  beforeAll(async () => {
    const tmp = tempDir('pushwire-webpush-');
    cleanup = tmp.cleanup;
    certs = makeTestCertificates(tmp.dir);
    const s = await startServer({ tls: { cert: certs.cert, key: certs.key } });
    ({ url, stop, server } = s);
    agent = new Agent({ ca: certs.ca });
  });
  afterAll(async () => {
    for (const c of clients) c.close();
    agent.destroy();
    await stop();
    cleanup();
  });

  const api = <T = Record<string, unknown>>(method: string, path: string, body?: unknown) =>
    httpsJson<T>(`${url}${path}`, {
      ca: certs.ca,
      method,
      headers: { authorization: `Bearer ${API_KEY}`, 'content-type': 'application/json' },
      body: JSON.stringify(body ?? {}),
    });

  /** A device, a key pair and auth secret for it, and a Pushwire endpoint. */
  async function subscriber(applicationServerKey?: string, base = url): Promise<Subscriber> {
    const device = (
      await httpsJson<Device>(`${base}/v1/devices`, {
        ca: certs.ca,
        method: 'POST',
        headers: { authorization: `Bearer ${API_KEY}`, 'content-type': 'application/json' },
        body: '{}',
      })
    ).body;
    const created = await httpsJson<{ endpoint: string; subscriptionId: string; expirationTime: null }>(
      `${base}/v1/devices/${device.deviceId}/webpush`,
      {
        ca: certs.ca,
        method: 'POST',
        headers: {
          authorization: `Device ${device.deviceId}:${device.token}`,
          'content-type': 'application/json',
        },
        body: JSON.stringify(applicationServerKey ? { applicationServerKey } : {}),
      },
    );
    expect(created.status).toBe(201);
    const keys = await generateWebPushKeys();
    const { p256dh, auth } = await exportWebPushKeys(keys);
    const { endpoint, expirationTime, subscriptionId } = created.body;
    return {
      device,
      keys,
      subscriptionId,
      subscription: { endpoint, expirationTime, keys: { p256dh, auth } },
    };
  }

  async function connect(d: Device, base = url): Promise<RawClient> {
    const c = new RawClient(base, SUBPROTOCOL, { ca: certs.ca });
    clients.push(c);
    await c.opened();
    c.hello(d.deviceId, d.token);
    await c.next('welcome');
    return c;
  }

  /** The next message, acknowledged and decrypted. */
  async function receive(c: RawClient, keys: WebPushKeys): Promise<{ text: string; frame: MessageFrame }> {
    const frame = await c.next('msg', 10_000);
    c.send(JSON.stringify({ t: 'ack', acks: { [frame.stream]: frame.seq } }));
    const body = (frame.data as { webpush: { body: string } }).webpush.body;
    return { text: new TextDecoder().decode(await decryptAes128gcm(base64urlDecode(body), keys)), frame };
  }

  const send = (s: Subscriber, payload: string | Buffer | null, options: webpush.RequestOptions = {}) =>
    webpush.sendNotification(s.subscription, payload, {
      vapidDetails: { subject: SUBJECT, publicKey: vapid.publicKey, privateKey: vapid.privateKey },
      TTL: 60,
      agent,
      ...options,
    });

  const refusal = (p: Promise<unknown>) =>
    p.then(
      () => {
        throw new Error('expected a refusal');
      },
      (e: WebPushError) => ({
        status: e.statusCode,
        body: JSON.parse(e.body) as { error: string; message: string },
      }),
    );

  it('sendNotification → 201 with Location and TTL; the device gets the exact plaintext, and nothing else', async () => {
    const s = await subscriber(vapid.publicKey);
    const c = await connect(s.device);
    const plaintext = 'When I grow up, I want to be a watermelon 🍉';
    const res = await send(s, plaintext, { TTL: 120, urgency: 'high', topic: 'melon' });
    expect(res.statusCode).toBe(201);
    expect(res.headers.ttl).toBe('120');
    expect(res.headers.location).toMatch(new RegExp(`^${url}/wp/m/`));
    const { text, frame } = await receive(c, s.keys);
    expect(text).toBe(plaintext);
    // Neither Topic, nor Urgency, nor the VAPID token reach the device.
    const wire = JSON.stringify(frame);
    expect(wire).not.toMatch(/melon|high|vapid|ops@example/);
    expect(Object.keys(frame.data as object)).toEqual(['webpush']);
    expect((frame.data as { webpush: object }).webpush).toEqual({
      sub: s.subscriptionId,
      body: expect.any(String),
    });
  });

  it('the web-push command-line tool publishes to a Pushwire endpoint (CA via NODE_EXTRA_CA_CERTS)', async () => {
    const s = await subscriber(vapid.publicKey);
    const c = await connect(s.device);
    const { stdout } = await run(
      WEB_PUSH_CLI,
      [
        'send-notification',
        `--endpoint=${s.subscription.endpoint}`,
        `--key=${s.subscription.keys.p256dh}`,
        `--auth=${s.subscription.keys.auth}`,
        '--payload=hello from the web-push CLI',
        '--ttl=300',
        `--vapid-subject=${SUBJECT}`,
        `--vapid-pubkey=${vapid.publicKey}`,
        `--vapid-pvtkey=${vapid.privateKey}`,
      ],
      { env: { ...process.env, NODE_EXTRA_CA_CERTS: certs.caFile }, timeout: 20_000 },
    );
    expect(stdout).toContain('Push message sent.');
    const { text, frame } = await receive(c, s.keys);
    expect(text).toBe('hello from the web-push CLI');
    expect(frame.exp! - frame.ts).toBe(300_000);
  });

  it('TTL 0 to an offline device is not delivered; a TTL > 0 is, once it connects', async () => {
    const s = await subscriber();
    expect((await send(s, 'now or never', { TTL: 0 })).statusCode).toBe(201);
    expect((await send(s, 'kept', { TTL: 60 })).statusCode).toBe(201);
    const c = await connect(s.device);
    expect((await send(s, 'live', { TTL: 0 })).statusCode).toBe(201);
    const got = [(await receive(c, s.keys)).text, (await receive(c, s.keys)).text];
    expect(got).toEqual(['kept', 'live']);
  });

  it('a newer message with the same Topic replaces an undelivered one', async () => {
    const s = await subscriber();
    await send(s, 'score 1:0', { topic: 'score' });
    await send(s, 'other news', { topic: 'news' });
    await send(s, 'score 2:0', { topic: 'score' });
    await send(s, 'no topic');
    const c = await connect(s.device);
    const got = [];
    for (let i = 0; i < 3; i++) got.push((await receive(c, s.keys)).text);
    expect(got).toEqual(['other news', 'score 2:0', 'no topic']);
  });

  it('Urgency takes effect: a low-urgency push waits for the online device heartbeat, a high one does not', async () => {
    const s = await subscriber(vapid.publicKey);
    const c = await connect(s.device);
    const delivered = server.hub.counters.delivered;
    expect((await send(s, 'later', { urgency: 'low' })).statusCode).toBe(201);
    // Barrier: the server has handed the push to the session (its delivered counter moved) and still
    // reports it pending, one HTTPS round trip later. A frame written then would be here now.
    await until(() => server.hub.counters.delivered >= delivered + 1, 5000, 'the hand-over');
    const info = await httpsJson<{ pending: number }>(`${url}/v1/devices/${s.device.deviceId}`, {
      ca: certs.ca,
      headers: { authorization: `Bearer ${API_KEY}` },
    });
    expect(info.body.pending).toBe(1);
    expect(c.frames.filter((f) => f.t === 'msg')).toEqual([]);
    c.send('p'); // the device's heartbeat: its radio is awake
    expect((await receive(c, s.keys)).text).toBe('later');
    expect((await send(s, 'now', { urgency: 'high' })).statusCode).toBe(201);
    const { text, frame } = await receive(c, s.keys);
    expect(text).toBe('now');
    expect(JSON.stringify(frame)).not.toMatch(/urgency/);
  });

  it('accepts every Urgency; a TTL over 30 days is capped and echoed', async () => {
    const s = await subscriber();
    for (const urgency of ['very-low', 'low', 'normal', 'high'] as const) {
      expect((await send(s, urgency, { urgency })).statusCode).toBe(201);
    }
    const res = await send(s, 'long', { TTL: 90 * 24 * 3600 });
    expect(res.headers.ttl).toBe(String(30 * 24 * 3600));
    const raw = await httpsJson(s.subscription.endpoint, {
      ca: certs.ca,
      method: 'POST',
      headers: { ttl: '10', urgency: 'whenever' },
    });
    expect([raw.status, raw.body.error]).toEqual([400, 'BAD_URGENCY']);
  });

  it('refuses, with a JSON reason: missing TTL 400, body over 4096 bytes 413', async () => {
    const s = await subscriber();
    const noTtl = await httpsJson(s.subscription.endpoint, { ca: certs.ca, method: 'POST' });
    expect([noTtl.status, noTtl.body.error]).toEqual([400, 'TTL_REQUIRED']);
    const big = await httpsJson(s.subscription.endpoint, {
      ca: certs.ca,
      method: 'POST',
      headers: { ttl: '60', 'content-type': 'application/octet-stream', 'content-encoding': 'aes128gcm' },
      body: Buffer.alloc(4097, 7),
    });
    expect([big.status, big.body.error]).toEqual([413, 'PAYLOAD_TOO_LARGE']);
    // web-push itself, with a payload whose ciphertext exceeds 4096 bytes.
    const tooLong = await refusal(send(s, 'x'.repeat(4096 - 86 - 17 + 1)));
    expect([tooLong.status, tooLong.body.error]).toEqual([413, 'PAYLOAD_TOO_LARGE']);
  });

  it('refuses bad VAPID: wrong audience 401, another key 403, none 401', async () => {
    const s = await subscriber(vapid.publicKey);
    const wrongAud = webpush.getVapidHeaders(
      'https://push.elsewhere.example',
      SUBJECT,
      vapid.publicKey,
      vapid.privateKey,
      'aes128gcm',
    );
    const r1 = await refusal(
      webpush.sendNotification(s.subscription, 'x', {
        TTL: 60,
        agent,
        headers: { Authorization: wrongAud.Authorization },
      }),
    );
    expect([r1.status, r1.body.error]).toEqual([401, 'BAD_VAPID']);
    expect(r1.body.message).toMatch(/aud/);
    const other = webpush.generateVAPIDKeys();
    const r2 = await refusal(
      send(s, 'x', {
        vapidDetails: { subject: SUBJECT, publicKey: other.publicKey, privateKey: other.privateKey },
      }),
    );
    expect([r2.status, r2.body.error]).toEqual([403, 'VAPID_KEY_MISMATCH']);
    const r3 = await refusal(webpush.sendNotification(s.subscription, 'x', { TTL: 60, agent }));
    expect([r3.status, r3.body.error]).toEqual([401, 'VAPID_REQUIRED']);
  });

  it('an unsubscribed endpoint answers 410 and an unknown one 404', async () => {
    const s = await subscriber();
    const del = await api('DELETE', `/v1/devices/${s.device.deviceId}/webpush/${s.subscriptionId}`);
    expect(del.status, JSON.stringify(del.body)).toBe(204);
    const gone = await refusal(send(s, 'x'));
    expect([gone.status, gone.body.error]).toEqual([410, 'UNSUBSCRIBED']);
    const unknown = { ...s.subscription, endpoint: `${url}/wp/${'x'.repeat(32)}` };
    const missing = await refusal(webpush.sendNotification(unknown, 'x', { TTL: 60, agent }));
    expect([missing.status, missing.body.error]).toEqual([404, 'UNKNOWN_SUBSCRIPTION']);
  });

  it('`pushwire serve --tls-cert --tls-key` serves HTTPS and WSS on one port', async () => {
    const data = tempDir('pushwire-webpush-serve-');
    const { proc, url: served } = await spawnServer(data.dir, 0, [
      '--tls-cert',
      certs.certFile,
      '--tls-key',
      certs.keyFile,
    ]);
    try {
      expect(served).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
      expect((await httpsJson(`${served}/healthz`, { ca: certs.ca })).status).toBe(200);
      const s = await subscriber(undefined, served);
      expect(s.subscription.endpoint.startsWith(`${served}/wp/`)).toBe(true);
      const c = await connect(s.device, served);
      expect((await send(s, 'through the CLI server')).statusCode).toBe(201);
      expect((await receive(c, s.keys)).text).toBe('through the CLI server');
      c.close();
    } finally {
      proc.kill('SIGTERM');
      await new Promise((r) => proc.once('exit', r));
      data.cleanup();
    }
  });
});
