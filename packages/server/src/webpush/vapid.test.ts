import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import { describe, expect, it } from 'vitest';
import { parseVapidHeaders, VapidError, verifyVapid } from './vapid.js';

const AUD = 'https://push.example.com';
const NOW = Date.UTC(2025, 0, 1);
const sec = (ms: number) => Math.floor(ms / 1000);

async function keyPair() {
  const { publicKey, privateKey } = await generateKeyPair('ES256', { extractable: true });
  const jwk = await exportJWK(publicKey);
  const k = Buffer.concat([
    Buffer.of(4),
    Buffer.from(jwk.x!, 'base64url'),
    Buffer.from(jwk.y!, 'base64url'),
  ]).toString('base64url');
  return { privateKey, k };
}

type Signer = Awaited<ReturnType<typeof keyPair>>;

function token(signer: Signer, claims: Record<string, unknown>, alg = 'ES256'): Promise<string> {
  return new SignJWT(claims).setProtectedHeader({ typ: 'JWT', alg }).sign(signer.privateKey);
}

async function refusal(p: Promise<unknown>): Promise<VapidError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(VapidError);
  return err as VapidError;
}

describe('verifyVapid', async () => {
  const app = await keyPair();
  const other = await keyPair();
  const good = { aud: AUD, exp: sec(NOW) + 12 * 3600, sub: 'mailto:ops@example.com' };

  it('accepts an ES256 token signed by k for this origin, exp within 24 h', async () => {
    const id = await verifyVapid({ token: await token(app, good), key: app.k }, { audience: AUD, now: NOW });
    expect(id).toEqual({ key: app.k, exp: good.exp, sub: good.sub });
    const bound = await verifyVapid(
      { token: await token(app, { aud: AUD, exp: good.exp }), key: app.k },
      { audience: AUD, now: NOW, applicationServerKey: app.k },
    );
    expect(bound.sub).toBeUndefined();
  });

  it('refuses a wrong audience with 401', async () => {
    for (const aud of ['https://evil.example.com', `${AUD}/`, 'http://push.example.com', `${AUD}:8443`]) {
      const t = await token(app, { ...good, aud });
      const err = await refusal(verifyVapid({ token: t, key: app.k }, { audience: AUD, now: NOW }));
      expect([err.status, err.code]).toEqual([401, 'BAD_VAPID']);
      expect(err.message).toMatch(/aud/);
    }
  });

  it('refuses an expired token, one without exp and one expiring more than 24 h ahead', async () => {
    const expired = await token(app, { ...good, exp: sec(NOW) - 1 });
    expect(
      (await refusal(verifyVapid({ token: expired, key: app.k }, { audience: AUD, now: NOW }))).message,
    ).toMatch(/expired/);
    const noExp = await token(app, { aud: AUD });
    expect(
      (await refusal(verifyVapid({ token: noExp, key: app.k }, { audience: AUD, now: NOW }))).status,
    ).toBe(401);
    const far = await token(app, { ...good, exp: sec(NOW) + 24 * 3600 + 120 });
    const err = await refusal(verifyVapid({ token: far, key: app.k }, { audience: AUD, now: NOW }));
    expect([err.status, err.message]).toEqual([401, 'exp is more than 24 hours ahead']);
    const edge = await token(app, { ...good, exp: sec(NOW) + 24 * 3600 });
    await expect(
      verifyVapid({ token: edge, key: app.k }, { audience: AUD, now: NOW }),
    ).resolves.toBeDefined();
  });

  it('refuses a token signed by another key than k', async () => {
    const t = await token(other, good);
    const err = await refusal(verifyVapid({ token: t, key: app.k }, { audience: AUD, now: NOW }));
    expect([err.status, err.message]).toEqual([401, 'the signature does not verify with k']);
  });

  it('refuses with 403 a valid token whose k is not the subscription key', async () => {
    const t = await token(other, good);
    const err = await refusal(
      verifyVapid({ token: t, key: other.k }, { audience: AUD, now: NOW, applicationServerKey: app.k }),
    );
    expect([err.status, err.code]).toEqual([403, 'VAPID_KEY_MISMATCH']);
  });

  it('refuses a malformed k, a malformed token and a non-ES256 token', async () => {
    const t = await token(app, good);
    for (const key of ['', 'AAAA', app.k.slice(0, -2), Buffer.alloc(65, 4).toString('base64url')]) {
      expect((await refusal(verifyVapid({ token: t, key }, { audience: AUD, now: NOW }))).status).toBe(401);
    }
    for (const bad of ['x', 'a.b.c', t.slice(0, -4)]) {
      expect(
        (await refusal(verifyVapid({ token: bad, key: app.k }, { audience: AUD, now: NOW }))).status,
      ).toBe(401);
    }
    const hs = await new SignJWT(good).setProtectedHeader({ alg: 'HS256' }).sign(new Uint8Array(32));
    expect((await refusal(verifyVapid({ token: hs, key: app.k }, { audience: AUD, now: NOW }))).status).toBe(
      401,
    );
  });
});

describe('parseVapidHeaders', () => {
  it('reads RFC 8292 vapid t=, k= in any order, spacing and quoting', () => {
    expect(parseVapidHeaders('vapid t=a.b.c, k=KEY')).toEqual({ token: 'a.b.c', key: 'KEY' });
    expect(parseVapidHeaders('Vapid k="KEY",t="a.b.c"')).toEqual({ token: 'a.b.c', key: 'KEY' });
  });

  it('reads the draft WebPush scheme with Crypto-Key p256ecdsa', () => {
    expect(parseVapidHeaders('WebPush a.b.c', 'dh=DH;p256ecdsa=KEY')).toEqual({ token: 'a.b.c', key: 'KEY' });
    expect(parseVapidHeaders('WebPush a.b.c', 'p256ecdsa=KEY')).toEqual({ token: 'a.b.c', key: 'KEY' });
  });

  it('returns undefined without Authorization, refuses incomplete or foreign schemes', () => {
    expect(parseVapidHeaders(undefined)).toBeUndefined();
    expect(() => parseVapidHeaders('vapid t=a.b.c')).toThrow(VapidError);
    expect(() => parseVapidHeaders('WebPush a.b.c')).toThrow(/p256ecdsa/);
    expect(() => parseVapidHeaders('Bearer abc')).toThrow(/unsupported/);
  });
});
