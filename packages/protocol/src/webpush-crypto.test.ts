import { describe, expect, it } from 'vitest';
import {
  base64urlDecode,
  base64urlEncode,
  decryptAes128gcm,
  encryptAes128gcm,
  exportWebPushKeys,
  generateWebPushKeys,
  importWebPushKeys,
  parseAes128gcmHeader,
  WebPushCryptoError,
} from './webpush-crypto.js';

/** RFC 8291 §5 and Appendix A, to the byte. */
const RFC = {
  plaintext: 'When I grow up, I want to be a watermelon',
  asPublic: 'BP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27mlmlMoZIIgDll6e3vCYLocInmYWAmS6TlzAC8wEqKK6PBru3jl7A8',
  asPrivate: 'yfWPiYE-n46HLnH0KqZOF1fJJU3MYrct3AELtAQ-oRw',
  uaPublic: 'BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4',
  uaPrivate: 'q1dXpw3UpT5VOmu_cf_v6ih07Aems3njxI-JWgLcM94',
  salt: 'DGv6ra1nlYgDCS1FRnbzlw',
  auth: 'BTBZMqHH6r4Tts7J_aSIgg',
  body:
    'DGv6ra1nlYgDCS1FRnbzlwAAEABBBP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27mlmlMoZIIgDll6e3vCYLocInmYWAmS6TlzAC8wEqKK6PBru3jl7A_' +
    'yl95bQpu6cVPTpK4Mqgkf1CXztLVBSt2Ks3oZwbuwXPXLWyouBWLVWGNWQexSgSxsj_Qulcy4a-fN',
};

const utf8 = (s: string) => new TextEncoder().encode(s);
const str = (b: Uint8Array) => new TextDecoder().decode(b);
const receiver = () => importWebPushKeys({ p256dh: RFC.uaPublic, auth: RFC.auth, d: RFC.uaPrivate });

async function codeOf(p: Promise<unknown>): Promise<string> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(WebPushCryptoError);
  return (err as WebPushCryptoError).code;
}

describe('RFC 8291 Appendix A', () => {
  it('decrypts the example to its plaintext', async () => {
    const plain = await decryptAes128gcm(base64urlDecode(RFC.body), await receiver());
    expect(str(plain)).toBe(RFC.plaintext);
  });

  it('reads the example header: salt, rs 4096, the sender key as keyid', () => {
    const h = parseAes128gcmHeader(base64urlDecode(RFC.body));
    expect(base64urlEncode(h.salt)).toBe(RFC.salt);
    expect(h.rs).toBe(4096);
    expect(base64urlEncode(h.keyId)).toBe(RFC.asPublic);
    expect(h.length).toBe(86);
  });

  it('encrypts the example to the same bytes given its salt and sender key', async () => {
    const sender = await importWebPushKeys({ p256dh: RFC.asPublic, auth: RFC.auth, d: RFC.asPrivate });
    const body = await encryptAes128gcm(
      utf8(RFC.plaintext),
      { publicKeyRaw: base64urlDecode(RFC.uaPublic), authSecret: base64urlDecode(RFC.auth) },
      { salt: base64urlDecode(RFC.salt), sender },
    );
    expect(base64urlEncode(body)).toBe(RFC.body);
  });
});

describe('keys and round trips', () => {
  it('generates, exports and imports keys that decrypt what was encrypted to them', async () => {
    const keys = await generateWebPushKeys();
    expect(keys.publicKeyRaw.length).toBe(65);
    expect(keys.authSecret.length).toBe(16);
    const stored = await exportWebPushKeys(keys);
    expect(JSON.parse(JSON.stringify(stored))).toEqual(stored);
    const again = await importWebPushKeys(stored);
    for (const text of ['', 'x', '€'.repeat(1000), 'a'.repeat(4096 - 86 - 17)]) {
      const body = await encryptAes128gcm(utf8(text), keys);
      expect(str(await decryptAes128gcm(body, again))).toBe(text);
    }
  });

  it('refuses a tampered body, the wrong auth secret and the wrong key', async () => {
    const keys = await receiver();
    const body = base64urlDecode(RFC.body);
    body[body.length - 1]! ^= 1;
    expect(await codeOf(decryptAes128gcm(body, keys))).toBe('DECRYPT_FAILED');
    const good = base64urlDecode(RFC.body);
    const wrongAuth = { ...keys, authSecret: new Uint8Array(16) };
    expect(await codeOf(decryptAes128gcm(good, wrongAuth))).toBe('DECRYPT_FAILED');
    expect(await codeOf(decryptAes128gcm(good, await generateWebPushKeys()))).toBe('DECRYPT_FAILED');
  });

  it('refuses malformed headers and keys', async () => {
    const keys = await receiver();
    const body = base64urlDecode(RFC.body);
    expect(await codeOf(decryptAes128gcm(body.slice(0, 20), keys))).toBe('BAD_HEADER');
    expect(await codeOf(decryptAes128gcm(body.slice(0, 86 + 16), keys))).toBe('BAD_HEADER');
    const smallRs = body.slice();
    new DataView(smallRs.buffer).setUint32(16, 17);
    expect(await codeOf(decryptAes128gcm(smallRs, keys))).toBe('BAD_HEADER');
    const twoRecords = body.slice();
    new DataView(twoRecords.buffer).setUint32(16, 20);
    expect(await codeOf(decryptAes128gcm(twoRecords, keys))).toBe('BAD_HEADER');
    const badKeyId = body.slice();
    badKeyId[21] = 3;
    expect(await codeOf(decryptAes128gcm(badKeyId, keys))).toBe('BAD_KEY');
    expect(await codeOf(importWebPushKeys({ p256dh: 'AAAA', auth: RFC.auth, d: RFC.uaPrivate }))).toBe(
      'BAD_KEY',
    );
    expect(await codeOf(importWebPushKeys({ p256dh: RFC.uaPublic, auth: RFC.auth, d: RFC.asPrivate }))).toBe(
      'BAD_KEY',
    );
    expect(() => base64urlDecode('a+b')).toThrow(WebPushCryptoError);
  });
});
