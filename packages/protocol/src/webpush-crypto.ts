/**
 * Web Push message encryption: RFC 8291 on the `aes128gcm` content coding of RFC 8188.
 *
 * WebCrypto only (`globalThis.crypto.subtle`), no Buffer: runs in browsers, Node ≥ 20, Deno, and
 * React Native with a WebCrypto implementation. The receiver (user agent, here a Pushwire device)
 * keeps a P-256 key pair and a 16-byte auth secret; the sender (app server) encrypts to them.
 *
 * ```
 * body = salt(16) | rs(uint32 BE) | idlen(1) | keyid(idlen = 65: sender's public key) | records…
 * record = AES-128-GCM(content | 0x02 | zero padding) with a 16-byte tag; one record per message
 * ```
 */

/** Why a Web Push payload could not be decrypted or keys could not be used. */
export type WebPushCryptoErrorCode = 'BAD_HEADER' | 'BAD_KEY' | 'DECRYPT_FAILED' | 'BAD_PADDING';

export class WebPushCryptoError extends Error {
  override readonly name = 'WebPushCryptoError';
  constructor(
    readonly code: WebPushCryptoErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** A receiver's keys: what decrypts. `publicKeyRaw` is the 65-byte uncompressed point (`p256dh`). */
export interface WebPushKeys {
  privateKey: CryptoKey;
  publicKeyRaw: Uint8Array;
  authSecret: Uint8Array;
}

/** Keys as JSON-safe base64url strings, for a storage adapter: `p256dh`, `auth`, private scalar `d`. */
export interface StoredWebPushKeys {
  p256dh: string;
  auth: string;
  d: string;
}

/** The fixed header of an `aes128gcm` body. */
export interface Aes128gcmHeader {
  salt: Uint8Array;
  /** Record size: every record but the last is exactly this long (ciphertext and tag). */
  rs: number;
  /** For Web Push: the sender's 65-byte public key. */
  keyId: Uint8Array;
  /** Bytes of header before the first record. */
  length: number;
}

const TAG_BYTES = 16;
const P256 = { name: 'ECDH', namedCurve: 'P-256' } as const;
const text = new TextEncoder();

const subtle = (): SubtleCrypto => {
  const s = globalThis.crypto?.subtle;
  if (!s) throw new WebPushCryptoError('BAD_KEY', 'WebCrypto (globalThis.crypto.subtle) is not available');
  return s;
};

/** A copy backed by a plain ArrayBuffer, as WebCrypto's `BufferSource` wants. */
const bytes = (u: Uint8Array): Uint8Array<ArrayBuffer> => new Uint8Array(u);

function concat(...parts: Uint8Array[]): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** base64url without padding (RFC 4648 §5), as Web Push uses for keys. */
export function base64urlEncode(data: Uint8Array): string {
  let bin = '';
  for (let i = 0; i < data.length; i += 0x8000) {
    bin += String.fromCharCode(...data.subarray(i, i + 0x8000));
  }
  return btoa(bin).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

/** Decodes base64url (padding optional); throws a `BAD_KEY` error on other characters. */
export function base64urlDecode(s: string): Uint8Array<ArrayBuffer> {
  if (!/^[A-Za-z0-9_-]*={0,2}$/.test(s)) throw new WebPushCryptoError('BAD_KEY', 'not base64url');
  const bin = atob(s.replace(/=+$/, '').replace(/-/g, '+').replace(/_/g, '/'));
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

/**
 * Reads the `aes128gcm` header; throws `BAD_HEADER` unless the body holds exactly one record after
 * it (RFC 8291 §4: a push message is one record).
 */
export function parseAes128gcmHeader(body: Uint8Array): Aes128gcmHeader {
  if (body.length < 21) throw new WebPushCryptoError('BAD_HEADER', 'body shorter than the 21-byte header');
  const rs = new DataView(body.buffer, body.byteOffset, body.byteLength).getUint32(16);
  const idlen = body[20]!;
  const length = 21 + idlen;
  if (rs < TAG_BYTES + 2) throw new WebPushCryptoError('BAD_HEADER', `record size ${rs} is below 18`);
  if (body.length < length + TAG_BYTES + 1) {
    throw new WebPushCryptoError('BAD_HEADER', 'body too short for its header and one record');
  }
  if (body.length - length > rs) {
    throw new WebPushCryptoError('BAD_HEADER', `more than one record (record size ${rs}): Web Push uses one`);
  }
  return { salt: body.slice(0, 16), rs, keyId: body.slice(21, length), length };
}

async function hkdf(salt: Uint8Array, ikm: Uint8Array, info: Uint8Array, len: number): Promise<Uint8Array> {
  const key = await subtle().importKey('raw', bytes(ikm), 'HKDF', false, ['deriveBits']);
  const bits = await subtle().deriveBits(
    { name: 'HKDF', hash: 'SHA-256', salt: bytes(salt), info: bytes(info) },
    key,
    len * 8,
  );
  return new Uint8Array(bits);
}

async function importPublic(raw: Uint8Array, what: string): Promise<CryptoKey> {
  if (raw.length !== 65 || raw[0] !== 4) {
    throw new WebPushCryptoError('BAD_KEY', `${what} is not a 65-byte uncompressed P-256 point`);
  }
  try {
    return await subtle().importKey('raw', bytes(raw), P256, false, []);
  } catch (cause) {
    throw new WebPushCryptoError('BAD_KEY', `${what} is not a point on P-256`, { cause });
  }
}

/**
 * The content-encryption key and nonce base of RFC 8291 §3.4: ECDH secret and auth secret → IKM,
 * then salt → CEK (16 bytes) and NONCE (12 bytes).
 */
async function deriveKeys(
  ecdhSecret: Uint8Array,
  authSecret: Uint8Array,
  uaPublic: Uint8Array,
  asPublic: Uint8Array,
  salt: Uint8Array,
): Promise<{ cek: CryptoKey; nonce: Uint8Array }> {
  const keyInfo = concat(text.encode('WebPush: info\0'), uaPublic, asPublic);
  const ikm = await hkdf(authSecret, ecdhSecret, keyInfo, 32);
  const cekBytes = await hkdf(salt, ikm, text.encode('Content-Encoding: aes128gcm\0'), 16);
  const nonce = await hkdf(salt, ikm, text.encode('Content-Encoding: nonce\0'), 12);
  const cek = await subtle().importKey('raw', bytes(cekBytes), 'AES-GCM', false, ['encrypt', 'decrypt']);
  return { cek, nonce };
}

async function ecdh(privateKey: CryptoKey, publicKey: CryptoKey): Promise<Uint8Array> {
  try {
    return new Uint8Array(await subtle().deriveBits({ name: 'ECDH', public: publicKey }, privateKey, 256));
  } catch (cause) {
    throw new WebPushCryptoError('BAD_KEY', 'ECDH failed: the private key must be a P-256 ECDH key', {
      cause,
    });
  }
}

/**
 * Decrypts an `aes128gcm` Web Push body (RFC 8291) with the receiver's keys.
 * @example
 * const plaintext = await decryptAes128gcm(body, keys);
 * new TextDecoder().decode(plaintext); // 'When I grow up, I want to be a watermelon'
 */
export async function decryptAes128gcm(body: Uint8Array, keys: WebPushKeys): Promise<Uint8Array> {
  const header = parseAes128gcmHeader(body);
  const senderPublic = await importPublic(header.keyId, 'keyid (the sender public key)');
  const secret = await ecdh(keys.privateKey, senderPublic);
  const { cek, nonce } = await deriveKeys(
    secret,
    keys.authSecret,
    keys.publicKeyRaw,
    header.keyId,
    header.salt,
  );
  // One record, sequence number 0: its nonce is NONCE itself (RFC 8188 §2.3).
  const record = body.subarray(header.length);
  let plain: Uint8Array;
  try {
    plain = new Uint8Array(await subtle().decrypt({ name: 'AES-GCM', iv: bytes(nonce) }, cek, bytes(record)));
  } catch (cause) {
    throw new WebPushCryptoError('DECRYPT_FAILED', 'the payload does not authenticate with these keys', {
      cause,
    });
  }
  return unpad(plain);
}

/** Strips the padding and checks the 0x02 delimiter that ends the last (here: only) record. */
function unpad(plain: Uint8Array): Uint8Array {
  let end = plain.length - 1;
  while (end >= 0 && plain[end] === 0) end--;
  if (end < 0 || plain[end] !== 2) throw new WebPushCryptoError('BAD_PADDING', 'no 0x02 delimiter');
  return plain.slice(0, end);
}

/** Options of {@link encryptAes128gcm}; fixed salt and sender keys are for test vectors only. */
export interface EncryptOptions {
  salt?: Uint8Array;
  sender?: { privateKey: CryptoKey; publicKeyRaw: Uint8Array };
  /** Record size (default 4096); the whole plaintext goes in one record, as RFC 8291 requires. */
  rs?: number;
}

/**
 * Encrypts `plaintext` to a receiver's `p256dh` and `auth` (the sender side of RFC 8291), in a
 * single record.
 */
export async function encryptAes128gcm(
  plaintext: Uint8Array,
  to: { publicKeyRaw: Uint8Array; authSecret: Uint8Array },
  opts: EncryptOptions = {},
): Promise<Uint8Array> {
  const rs = opts.rs ?? 4096;
  if (plaintext.length + 1 + TAG_BYTES > rs) {
    throw new WebPushCryptoError('BAD_HEADER', `plaintext of ${plaintext.length} bytes exceeds one record`);
  }
  const salt = opts.salt ?? globalThis.crypto.getRandomValues(new Uint8Array(16));
  const sender = opts.sender ?? (await newKeyPair(false));
  const receiver = await importPublic(to.publicKeyRaw, 'p256dh');
  const secret = await ecdh(sender.privateKey, receiver);
  const { cek, nonce } = await deriveKeys(secret, to.authSecret, to.publicKeyRaw, sender.publicKeyRaw, salt);
  const sealed = await subtle().encrypt(
    { name: 'AES-GCM', iv: bytes(nonce) },
    cek,
    concat(plaintext, Uint8Array.of(2)),
  );
  const head = new Uint8Array(21);
  head.set(salt);
  new DataView(head.buffer).setUint32(16, rs);
  head[20] = sender.publicKeyRaw.length;
  return concat(head, sender.publicKeyRaw, new Uint8Array(sealed));
}

async function newKeyPair(
  extractable: boolean,
): Promise<{ privateKey: CryptoKey; publicKeyRaw: Uint8Array }> {
  const pair = await subtle().generateKey(P256, extractable, ['deriveBits']);
  const publicKeyRaw = new Uint8Array(await subtle().exportKey('raw', pair.publicKey));
  return { privateKey: pair.privateKey, publicKeyRaw };
}

/**
 * A new receiver key pair and auth secret. Extractable by default so that
 * {@link exportWebPushKeys} can save them.
 */
export async function generateWebPushKeys(opts: { extractable?: boolean } = {}): Promise<WebPushKeys> {
  const { privateKey, publicKeyRaw } = await newKeyPair(opts.extractable ?? true);
  return { privateKey, publicKeyRaw, authSecret: globalThis.crypto.getRandomValues(new Uint8Array(16)) };
}

/** Keys as base64url strings: `p256dh` and `auth` go into the subscription JSON, `d` stays secret. */
export async function exportWebPushKeys(keys: WebPushKeys): Promise<StoredWebPushKeys> {
  const jwk = await subtle().exportKey('jwk', keys.privateKey);
  if (!jwk.d) throw new WebPushCryptoError('BAD_KEY', 'the private key did not export its d');
  return { p256dh: base64urlEncode(keys.publicKeyRaw), auth: base64urlEncode(keys.authSecret), d: jwk.d };
}

/** The inverse of {@link exportWebPushKeys}. The private key is imported extractable. */
export async function importWebPushKeys(stored: StoredWebPushKeys): Promise<WebPushKeys> {
  const publicKeyRaw = base64urlDecode(stored.p256dh);
  const authSecret = base64urlDecode(stored.auth);
  if (publicKeyRaw.length !== 65 || publicKeyRaw[0] !== 4) {
    throw new WebPushCryptoError('BAD_KEY', 'p256dh is not a 65-byte uncompressed P-256 point');
  }
  if (authSecret.length !== 16) throw new WebPushCryptoError('BAD_KEY', 'auth is not 16 bytes');
  const jwk: JsonWebKey = {
    kty: 'EC',
    crv: 'P-256',
    x: base64urlEncode(publicKeyRaw.subarray(1, 33)),
    y: base64urlEncode(publicKeyRaw.subarray(33, 65)),
    d: stored.d,
    ext: true,
  };
  try {
    const privateKey = await subtle().importKey('jwk', jwk, P256, true, ['deriveBits']);
    return { privateKey, publicKeyRaw, authSecret };
  } catch (cause) {
    throw new WebPushCryptoError('BAD_KEY', 'd and p256dh do not form a P-256 key pair', { cause });
  }
}
