import { base64urlDecode, base64urlEncode, encryptAes128gcm, generateWebPushKeys } from '@pushwire/protocol';
import { describe, expect, it, vi } from 'vitest';
import type { FetchLike } from './credentials.js';
import { WebPushError } from './errors.js';
import { memoryStorage } from './storage/memory.js';
import { parseState } from './storage/parse.js';
import type { ClientState } from './storage/types.js';
import { type Harness, harness, untilOpen } from './testkit/harness.js';
import type { PushSubscriptionJSON } from './webpush.js';

/** A VAPID public key (any P-256 point will do). */
const vapidKey = async () => base64urlEncode((await generateWebPushKeys()).publicKeyRaw);

interface Call {
  method: string;
  url: string;
  headers: Record<string, string>;
  body: unknown;
}

/** The server's subscription routes, in memory: what `fetch` reaches. */
class FakeSubscriptions {
  readonly calls: Call[] = [];
  readonly subs = new Map<string, { revoked: boolean; key?: string }>();
  /** Answers the next POST with this instead. */
  refuse: { status: number; body: unknown } | undefined;
  offline = false;
  #n = 0;

  readonly fetch: FetchLike = async (url, init) => {
    const body = init.body === undefined ? undefined : JSON.parse(init.body);
    this.calls.push({ method: init.method, url, headers: init.headers, body });
    if (this.offline) throw new TypeError('fetch failed');
    const answer = (status: number, json?: unknown) => ({ status, json: async () => json });
    if (init.headers.authorization !== 'Device dev1:tok') return answer(401, { error: 'UNAUTHORIZED' });
    const path = new URL(url).pathname;
    if (init.method === 'POST' && path === '/v1/devices/dev1/webpush') {
      const refused = this.refuse;
      this.refuse = undefined;
      if (refused) return answer(refused.status, refused.body);
      const id = `sub${++this.#n}`;
      this.subs.set(id, { revoked: false, key: body.applicationServerKey });
      return answer(201, {
        subscriptionId: id,
        endpoint: `https://push.test/wp/cap${this.#n}`,
        expirationTime: null,
      });
    }
    if (init.method === 'GET' && path === '/v1/devices/dev1/webpush') {
      const subscriptions = [...this.subs].map(([subscriptionId, s]) => ({
        subscriptionId,
        revokedAt: s.revoked ? 1 : null,
      }));
      return answer(200, { deviceId: 'dev1', subscriptions });
    }
    const del = /^\/v1\/devices\/dev1\/webpush\/(.+)$/.exec(path);
    if (init.method === 'DELETE' && del) {
      const sub = this.subs.get(del[1]!);
      if (!sub) return answer(404, { error: 'UNKNOWN_SUBSCRIPTION' });
      sub.revoked = true;
      return answer(204);
    }
    return answer(404, { error: 'NOT_FOUND' });
  };

  count(method: string): number {
    return this.calls.filter((c) => c.method === method).length;
  }
}

function setup(storage = memoryStorage()) {
  const api = new FakeSubscriptions();
  const h = harness({ client: { fetch: api.fetch, storage } });
  return { api, h, storage };
}

/** What a Web Push library does: encrypt `text` to the subscription (RFC 8291), base64url. */
async function encryptTo(sub: PushSubscriptionJSON, text: string): Promise<string> {
  const body = await encryptAes128gcm(new TextEncoder().encode(text), {
    publicKeyRaw: base64urlDecode(sub.keys.p256dh),
    authSecret: base64urlDecode(sub.keys.auth),
  });
  return base64urlEncode(body);
}

/** Runs virtual time and the real event loop (WebCrypto is real) until `done` holds. */
async function until(h: Harness, done: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 400 && !done(); i++) {
    await h.clock.advance(5);
    await new Promise((r) => setTimeout(r, 1));
  }
  if (!done()) throw new Error(`timed out waiting for ${what}`);
}

const webpushFrame = (sub: string, body?: string) => ({
  data: { webpush: body === undefined ? { sub } : { sub, body } },
});

describe('pushSubscribe', () => {
  it('POSTs with the device credential and returns exactly a browser PushSubscription as JSON', async () => {
    const { api, h, storage } = setup();
    const key = await vapidKey();
    const sub = await h.client.pushSubscribe({ applicationServerKey: key });
    const post = api.calls.find((c) => c.method === 'POST');
    expect(post).toMatchObject({
      url: 'http://push.test/v1/devices/dev1/webpush',
      headers: { authorization: 'Device dev1:tok', 'content-type': 'application/json' },
      body: { applicationServerKey: key },
    });
    const json = JSON.parse(JSON.stringify(sub));
    expect(Object.keys(json)).toEqual(['endpoint', 'expirationTime', 'keys']);
    expect(Object.keys(json.keys)).toEqual(['p256dh', 'auth']);
    expect(json).toEqual({
      endpoint: 'https://push.test/wp/cap1',
      expirationTime: null,
      keys: { p256dh: expect.stringMatching(/^B[A-Za-z0-9_-]{86}$/), auth: expect.any(String) },
    });
    expect(base64urlDecode(json.keys.p256dh)).toHaveLength(65);
    expect(base64urlDecode(json.keys.auth)).toHaveLength(16);
    expect([sub.subscriptionId, sub.applicationServerKey]).toEqual(['sub1', key]);
    // Saved, private key included, before pushSubscribe resolved.
    const saved = await storage.load();
    expect(saved?.webpush).toEqual({
      subscriptionId: 'sub1',
      endpoint: 'https://push.test/wp/cap1',
      expirationTime: null,
      applicationServerKey: key,
      keys: { ...json.keys, d: expect.stringMatching(/^[A-Za-z0-9_-]{43}$/) },
    });
    await h.client.close();
  });

  it('returns the same subscription for the same key: concurrent, repeated, and after a restart', async () => {
    const { api, h } = setup();
    const key = await vapidKey();
    const [a, b] = await Promise.all([
      h.client.pushSubscribe({ applicationServerKey: key }),
      h.client.pushSubscribe({ applicationServerKey: base64urlDecode(key) }), // raw bytes: same key
    ]);
    const c = await h.client.pushSubscribe({ applicationServerKey: key });
    expect(JSON.stringify(b)).toBe(JSON.stringify(a));
    expect(JSON.stringify(c)).toBe(JSON.stringify(a));
    expect(api.count('POST')).toBe(1);
    await h.client.close();
    const again = h.restart();
    expect(JSON.stringify(await again.client.getPushSubscription())).toBe(JSON.stringify(a));
    expect(JSON.stringify(await again.client.pushSubscribe({ applicationServerKey: key }))).toBe(
      JSON.stringify(a),
    );
    expect(api.count('POST')).toBe(1);
    await again.client.close();
  });

  it('another key is a KEY_MISMATCH; a subscription revoked on the server is replaced', async () => {
    const { api, h } = setup();
    const first = await h.client.pushSubscribe({ applicationServerKey: await vapidKey() });
    const err = await h.client.pushSubscribe({ applicationServerKey: await vapidKey() }).catch((e) => e);
    expect(err).toBeInstanceOf(WebPushError);
    expect(err).toMatchObject({ code: 'ERR_WEBPUSH', reason: 'KEY_MISMATCH' });
    api.subs.get(first.subscriptionId)!.revoked = true; // e.g. an operator deleted it
    const key = await vapidKey();
    const second = await h.client.pushSubscribe({ applicationServerKey: key });
    expect(second.endpoint).not.toBe(first.endpoint);
    expect(second.keys.p256dh).not.toBe(first.keys.p256dh);
    expect(second.applicationServerKey).toBe(key);
    await h.client.close();
  });

  it('offline with a stored subscription: returns it; without one: a retryable error', async () => {
    const { api, h } = setup();
    const sub = await h.client.pushSubscribe();
    api.offline = true;
    expect((await h.client.pushSubscribe()).endpoint).toBe(sub.endpoint);
    await h.client.pushUnsubscribe().catch(() => {});
    expect(await h.client.getPushSubscription()).not.toBeNull(); // a failed DELETE keeps the keys
    const { h: h2, api: api2 } = setup();
    api2.offline = true;
    const err = await h2.client.pushSubscribe().catch((e) => e);
    expect(err).toMatchObject({ reason: 'SUBSCRIBE_FAILED', retryable: true, status: undefined });
    await h.client.close();
    await h2.client.close();
  });

  it('refusals carry the status and the server error; a bad key is refused before any request', async () => {
    const { api, h, storage } = setup();
    api.refuse = { status: 409, body: { error: 'TOO_MANY_SUBSCRIPTIONS', message: 'delete one first' } };
    const err = await h.client.pushSubscribe().catch((e) => e);
    expect(err).toMatchObject({
      code: 'ERR_WEBPUSH',
      reason: 'SUBSCRIBE_FAILED',
      status: 409,
      serverError: 'TOO_MANY_SUBSCRIPTIONS',
      retryable: false,
    });
    expect(err.message).toContain('delete one first');
    expect((await storage.load())?.webpush).toBeUndefined();
    const calls = api.calls.length;
    for (const bad of ['not base64!', 'AAAA', base64urlEncode(new Uint8Array(65))]) {
      const e = await h.client.pushSubscribe({ applicationServerKey: bad }).catch((x) => x);
      expect(e).toMatchObject({ reason: 'BAD_APPLICATION_SERVER_KEY' });
    }
    expect(api.calls.length).toBe(calls);
    await h.client.close();
    await expect(h.client.pushSubscribe()).rejects.toMatchObject({ code: 'ERR_CLOSED' });
  });
});

describe('receiving Web Push messages', () => {
  it('decrypts in order, among plain messages, and acknowledges them all', async () => {
    const { h } = setup();
    const sub = await h.client.pushSubscribe();
    await untilOpen(h);
    const json = '{"title":"build","ok":true}';
    const big = 'x'.repeat(3993); // the largest one record of 4096 bytes holds: ~5.4 KB of data on the wire
    const bodies = await Promise.all(['hello 🍉', json, big].map((t) => encryptTo(sub, t)));
    // One burst, as one TCP read: a plain message right behind an encrypted one must wait for it.
    h.server.publish('d:dev1', { id: 'p1', data: { n: 1 } });
    h.server.publish('d:dev1', { id: 'w1', ...webpushFrame(sub.subscriptionId, bodies[0]) });
    h.server.publish('d:dev1', { id: 'p2', data: { n: 2 } });
    h.server.publish('d:dev1', {
      id: 'w2',
      ...webpushFrame(sub.subscriptionId, bodies[1]),
      collapseKey: 'wp:x',
    });
    h.server.publish('d:dev1', { id: 'w3', ...webpushFrame(sub.subscriptionId) }); // no payload
    const wire = h.server.publish('d:dev1', { id: 'w4', ...webpushFrame(sub.subscriptionId, bodies[2]) });
    expect(JSON.stringify(wire).length).toBeGreaterThan(5400);
    await until(h, () => h.messages.length === 6, 'six messages');
    expect(h.ids()).toEqual(['p1', 'w1', 'p2', 'w2', 'w3', 'w4']);
    expect(h.messages.map((m) => m.data)).toEqual([{ n: 1 }, 'hello 🍉', { n: 2 }, json, undefined, big]);
    expect(h.messages.map((m) => m.webpush)).toEqual([undefined, true, undefined, true, true, true]);
    expect(h.messages[3]).toEqual({
      id: 'w2',
      stream: 'd:dev1',
      seq: 4,
      ts: expect.any(Number),
      data: json,
      collapseKey: 'wp:x',
      webpush: true,
    });
    await until(h, () => h.server.acked.get('d:dev1') === 6, 'acks');
    expect(h.errors).toEqual([]);
    await h.client.close();
  });

  it('a payload that does not decrypt is reported and skipped, and the stream goes on', async () => {
    const { h } = setup();
    const sub = await h.client.pushSubscribe();
    await untilOpen(h);
    const good = await encryptTo(sub, 'after the bad ones');
    const other = await encryptTo(
      { ...sub, keys: { ...sub.keys, auth: base64urlEncode(new Uint8Array(16)) } },
      'wrong auth secret',
    );
    h.server.publish('d:dev1', { id: 'bad-auth', ...webpushFrame(sub.subscriptionId, other) });
    h.server.publish('d:dev1', { id: 'bad-b64', ...webpushFrame(sub.subscriptionId, '!!!') });
    h.server.publish('d:dev1', { id: 'short', ...webpushFrame(sub.subscriptionId, 'AAAA') });
    h.server.publish('d:dev1', { id: 'foreign', ...webpushFrame('someone-else', good) });
    h.server.publish('d:dev1', { id: 'ok', ...webpushFrame(sub.subscriptionId, good) });
    await until(h, () => h.messages.length === 1 && h.server.acked.get('d:dev1') === 5, 'delivery');
    expect(h.ids()).toEqual(['ok']);
    expect(h.messages[0]?.data).toBe('after the bad ones');
    expect(h.errors.map((e) => [e.code, (e as WebPushError).reason, (e as WebPushError).messageId])).toEqual([
      ['ERR_WEBPUSH', 'DECRYPT_FAILED', 'bad-auth'],
      ['ERR_WEBPUSH', 'DECRYPT_FAILED', 'bad-b64'],
      ['ERR_WEBPUSH', 'DECRYPT_FAILED', 'short'],
      ['ERR_WEBPUSH', 'NO_SUBSCRIPTION', 'foreign'],
    ]);
    expect(h.errors.every((e) => !e.fatal)).toBe(true);
    // Skipped means processed: after a reconnect the server replays nothing of it.
    h.server.last.reset();
    await until(h, () => h.client.state === 'open' && h.server.sockets.length === 2, 'reconnect');
    expect(h.server.last.hello?.cursors).toEqual({ 'd:dev1': 5 });
    await h.client.close();
  });

  it('keys survive a restart: the restarted client decrypts; a replayed message is handed over once', async () => {
    const storage = memoryStorage();
    const h = harness({
      server: { replayIgnoresCursors: true },
      client: { storage, fetch: new FakeSubscriptions().fetch },
    });
    const sub = await h.client.pushSubscribe();
    await untilOpen(h);
    h.server.publish('d:dev1', {
      id: 'w1',
      ...webpushFrame(sub.subscriptionId, await encryptTo(sub, 'one')),
    });
    await until(h, () => h.server.acked.get('d:dev1') === 1, 'ack');
    await h.client.close();
    h.server.publish('d:dev1', {
      id: 'w2',
      ...webpushFrame(sub.subscriptionId, await encryptTo(sub, 'two')),
    });
    const again = harness({
      serverInstance: h.server,
      client: { storage, fetch: new FakeSubscriptions().fetch },
    });
    await until(again, () => again.server.acked.get('d:dev1') === 2, 'replay');
    expect(again.messages.map((m) => [m.id, m.data])).toEqual([['w2', 'two']]);
    expect(again.errors).toEqual([]);
    await again.client.close();
  });

  it('messages queued behind a decryption are dropped, not handed over, once the client closes', async () => {
    const { h } = setup();
    const sub = await h.client.pushSubscribe();
    await untilOpen(h);
    const body = await encryptTo(sub, 'x');
    // Barrier: count finished AES-GCM decryptions (the last WebCrypto step of opening a payload),
    // so the check below runs after w1's decryption is over rather than after a guessed while.
    const subtle = globalThis.crypto.subtle;
    const real = subtle.decrypt.bind(subtle);
    let decrypted = 0;
    const spy = vi.spyOn(subtle, 'decrypt').mockImplementation(async (...args) => {
      try {
        return await real(...args);
      } finally {
        decrypted++;
      }
    });
    try {
      h.server.publish('d:dev1', { id: 'w1', ...webpushFrame(sub.subscriptionId, body) });
      h.server.publish('d:dev1', { id: 'p1' });
      await h.clock.advance(5); // both frames arrive; the decryption is in flight, p1 waits behind it
      expect(h.messages).toEqual([]);
      await h.client.close();
      for (const end = Date.now() + 10_000; decrypted === 0; ) {
        if (Date.now() > end) throw new Error('the decryption never finished');
        await new Promise((r) => setTimeout(r, 1));
      }
      await new Promise((r) => setTimeout(r, 0)); // every continuation of it (microtasks) has run
      expect(h.messages).toEqual([]);
      expect(h.client.cursors).toEqual({}); // nothing processed after close: the server replays both
    } finally {
      spy.mockRestore();
    }
  });
});

describe('the Web Push code, loaded on demand', () => {
  it('cannot be loaded when a message arrives: nothing is skipped, the client reconnects and decrypts it', async () => {
    const { h } = setup();
    const sub = await h.client.pushSubscribe(); // loads the code in this client
    await h.client.close();
    vi.doMock('./webpush-ops.js', () => {
      throw new Error('chunk not found');
    });
    const again = h.restart(); // a new client: it loads the code again, and that fails
    try {
      await untilOpen(again);
      const body = await encryptTo(sub, 'secret');
      again.server.publish('d:dev1', { id: 'p1' });
      again.server.publish('d:dev1', { id: 'w1', ...webpushFrame(sub.subscriptionId, body) });
      again.server.publish('d:dev1', { id: 'p2' });
      await until(again, () => again.errors.length > 0, 'the load failure');
      expect(again.errors[0]).toMatchObject({ code: 'ERR_CONNECTION', fatal: false });
      expect(again.ids()).toEqual(['p1']); // w1 and p2 behind it are not processed
      vi.doUnmock('./webpush-ops.js');
      await until(again, () => again.messages.length === 3, 'the replay');
      expect(again.ids()).toEqual(['p1', 'w1', 'p2']);
      expect(again.messages[1]?.data).toBe('secret');
      await until(again, () => again.server.acked.get('d:dev1') === 3, 'acks');
    } finally {
      vi.doUnmock('./webpush-ops.js');
      await again.client.close();
    }
  });
});

describe('pushUnsubscribe', () => {
  it('DELETEs the subscription, forgets the keys, and a new subscribe makes new ones', async () => {
    const { api, h, storage } = setup();
    const sub = await h.client.pushSubscribe();
    expect(await h.client.pushUnsubscribe()).toBe(true);
    expect(api.calls.at(-1)).toMatchObject({
      method: 'DELETE',
      url: `http://push.test/v1/devices/dev1/webpush/${sub.subscriptionId}`,
      headers: { authorization: 'Device dev1:tok' },
      body: undefined,
    });
    expect(api.subs.get(sub.subscriptionId)?.revoked).toBe(true);
    expect((await storage.load())?.webpush).toBeUndefined();
    expect(await h.client.getPushSubscription()).toBeNull();
    expect(await h.client.pushUnsubscribe()).toBe(false);
    // A message for the old subscription, still on its way, is reported and skipped.
    await untilOpen(h);
    h.server.publish('d:dev1', {
      id: 'late',
      ...webpushFrame(sub.subscriptionId, await encryptTo(sub, 'late')),
    });
    await until(h, () => h.errors.length === 1 && h.server.acked.get('d:dev1') === 1, 'skip');
    expect(h.errors[0]).toMatchObject({ reason: 'NO_SUBSCRIPTION', messageId: 'late' });
    const next = await h.client.pushSubscribe();
    expect(next.endpoint).not.toBe(sub.endpoint);
    expect(next.keys.auth).not.toBe(sub.keys.auth);
    await h.client.close();
  });

  it('a refused DELETE keeps the keys and says why', async () => {
    const { h } = setup();
    await h.client.pushSubscribe();
    const failing: FetchLike = async () => ({ status: 503, json: async () => ({ error: 'UNAVAILABLE' }) });
    const again = h.restart({ fetch: failing });
    await h.client.close();
    const err = await again.client.pushUnsubscribe().catch((e) => e);
    expect(err).toMatchObject({ reason: 'UNSUBSCRIBE_FAILED', status: 503, retryable: true });
    expect(await again.client.getPushSubscription()).not.toBeNull();
    await again.client.close();
  });
});

describe('stored state', () => {
  const base: ClientState = { cursors: {}, dedupe: [] };
  const webpush = {
    subscriptionId: 's',
    endpoint: 'https://x/wp/c',
    expirationTime: null,
    keys: { p256dh: 'B', auth: 'a', d: 'd' },
  };

  it('parseState keeps a well-formed subscription and drops a malformed one', () => {
    expect(parseState(JSON.stringify({ ...base, webpush }), 'x').webpush).toEqual(webpush);
    const withKey = { ...webpush, applicationServerKey: 'k', expirationTime: 5 };
    expect(parseState(JSON.stringify({ ...base, webpush: withKey }), 'x').webpush).toEqual(withKey);
    for (const bad of [
      { ...webpush, keys: { p256dh: 'B', auth: 'a' } },
      { ...webpush, endpoint: 3 },
      { ...webpush, expirationTime: 'never' },
      'nope',
    ]) {
      expect(parseState(JSON.stringify({ ...base, webpush: bad }), 'x').webpush).toBeUndefined();
    }
  });

  it("another device's stored subscription is dropped with its cursors", async () => {
    const storage = memoryStorage({ ...base, credentials: { deviceId: 'old', token: 't' }, webpush });
    const { h } = setup(storage);
    expect(await h.client.getPushSubscription()).toBeNull();
    await h.client.close();
  });
});
