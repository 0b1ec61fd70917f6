import { ApnsSender, FcmSender } from '@pushwire/server';
import { decodeJwt } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PushProviders } from './helpers/push-providers.js';
import { tempDir } from './helpers/server.js';
import { makeTestCertificates, type TestCertificates } from './helpers/tls.js';

// The provider clients alone, against the HTTP/2 TLS stand-ins: credentials reused for their
// lifetime and renewed when due or refused.

const MIN = 60_000;

describe('APNs and FCM senders', () => {
  let providers: PushProviders;
  let certs: TestCertificates;
  const tmp = tempDir('pushwire-wake-providers-');

  beforeAll(async () => {
    certs = makeTestCertificates(tmp.dir);
    providers = await new PushProviders().start(certs);
  });
  afterAll(async () => {
    await providers.close();
    tmp.cleanup();
  });

  it('APNs: one provider token for 50 minutes, a new one after, and at once after ExpiredProviderToken', async () => {
    let now = Date.now() - 55 * MIN; // the stand-in refuses tokens older than an hour
    const apns = new ApnsSender({
      key: providers.apnsKeyPem,
      keyId: providers.keyId,
      teamId: providers.teamId,
      url: providers.url,
      topic: providers.topic,
      ca: certs.ca,
      now: () => now,
    });
    const token = { deviceId: 'd', provider: 'apns' as const, token: '77'.repeat(32), updatedAt: 0 };
    const jwts = () =>
      providers.apns.filter((r) => r.path.endsWith(token.token)).map((r) => r.headers.authorization);
    try {
      expect(await apns.send(token)).toEqual({ kind: 'sent' });
      now += 10 * MIN;
      expect(await apns.send(token)).toEqual({ kind: 'sent' });
      now += 41 * MIN; // 51 minutes after signing
      expect(await apns.send(token)).toEqual({ kind: 'sent' });
      const [a, b, c] = jwts();
      expect(a).toBe(b);
      expect(c).not.toBe(a);
      expect(decodeJwt(String(c).slice(7)).iat).toBe(Math.floor(now / 1000));

      providers.script.set(token.token, [{ status: 403, body: { reason: 'ExpiredProviderToken' } }]);
      expect(await apns.send(token)).toEqual({ kind: 'retry', reason: 'ExpiredProviderToken', afterMs: 0 });
      now += 1000;
      expect(await apns.send(token)).toEqual({ kind: 'sent' });
      expect(jwts().at(-1)).not.toBe(c);
      expect(providers.apns.every((r) => r.problems.length === 0)).toBe(true);
    } finally {
      apns.close();
    }
  });

  it('APNs: BadDeviceToken is a dead token, 429 a retry after Retry-After, a missing topic a failure', async () => {
    const apns = new ApnsSender({
      key: providers.apnsKeyPem,
      keyId: providers.keyId,
      teamId: providers.teamId,
      url: providers.url,
      ca: certs.ca,
    });
    const token = {
      deviceId: 'd',
      provider: 'apns' as const,
      token: '88'.repeat(32),
      topic: providers.topic,
      updatedAt: 0,
    };
    providers.script.set(token.token, [
      { status: 400, body: { reason: 'BadDeviceToken' } },
      { status: 429, body: { reason: 'TooManyRequests' }, headers: { 'retry-after': '7' } },
    ]);
    try {
      expect(await apns.send(token)).toEqual({ kind: 'gone', reason: 'BadDeviceToken' });
      expect(await apns.send(token)).toEqual({ kind: 'retry', reason: 'TooManyRequests', afterMs: 7000 });
      expect((await apns.send({ ...token, topic: undefined } as never)).kind).toBe('failed');
    } finally {
      apns.close();
    }
  });

  it('APNs with an operator alert: the fixed text, push type alert, mutable-content for an extension', async () => {
    const apns = new ApnsSender({
      key: providers.apnsKeyPem,
      keyId: providers.keyId,
      teamId: providers.teamId,
      url: providers.url,
      topic: providers.topic,
      alert: 'New messages',
      ca: certs.ca,
    });
    const token = { deviceId: 'd', provider: 'apns' as const, token: '99'.repeat(32), updatedAt: 0 };
    try {
      expect(await apns.send(token)).toEqual({ kind: 'sent' });
      const [sent] = providers.apns.filter((r) => r.path.endsWith(token.token));
      expect(sent?.problems).toEqual([]);
      expect(sent?.headers['apns-push-type']).toBe('alert');
      expect(JSON.parse(sent?.body ?? '')).toEqual({
        aps: { alert: 'New messages', 'content-available': 1, 'mutable-content': 1 },
      });
    } finally {
      apns.close();
    }
  });

  it('FCM: the OAuth access token is fetched once, kept until a minute before expiry, and again after 401', async () => {
    let now = Date.now();
    const fcm = new FcmSender({
      serviceAccount: providers.serviceAccount,
      url: providers.url,
      tokenUrl: providers.tokenUrl,
      ca: certs.ca,
      now: () => now,
    });
    const token = { deviceId: 'd', provider: 'fcm' as const, token: 'fcm-provider-test', updatedAt: 0 };
    const before = providers.oauth.length;
    try {
      expect(await fcm.send(token)).toEqual({ kind: 'sent' });
      expect(await fcm.send(token)).toEqual({ kind: 'sent' });
      expect(providers.oauth.length - before).toBe(1);
      now += 3599_000 - 59_000; // past expires_in minus the minute kept in reserve
      expect(await fcm.send(token)).toEqual({ kind: 'sent' });
      expect(providers.oauth.length - before).toBe(2);
      providers.script.set(token.token, [{ status: 401, body: { error: { status: 'UNAUTHENTICATED' } } }]);
      expect((await fcm.send(token)).kind).toBe('retry');
      expect(await fcm.send(token)).toEqual({ kind: 'sent' });
      expect(providers.oauth.length - before).toBe(3);
      expect(providers.oauth.every((r) => r.problems.length === 0)).toBe(true);
      expect(providers.fcm.every((r) => r.problems.length === 0)).toBe(true);
    } finally {
      fcm.close();
    }
  });
});
