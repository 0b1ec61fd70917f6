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
/** UTF-8 bytes of a string; made on use, so loading this module needs no TextEncoder (Hermes). */
const encode = (s: string): Uint8Array => new TextEncoder().encode(s);

const fail = (code: WebPushCryptoErrorCode, message: string, cause?: unknown): never => {
  throw new WebPushCryptoError(code, message, cause === undefined ? undefined : { cause });
};

const subtle = (): SubtleCrypto => globalThis.crypto?.subtle ?? fail('BAD_KEY', 'no WebCrypto here');

/** Runs a WebCrypto step; its failure becomes a {@link WebPushCryptoError}. */
const attempt = <T>(step: Promise<T>, code: WebPushCryptoErrorCode, message: string): Promise<T> =>
  step.catch((cause: unknown) => fail(code, message, cause));

/** The bytes as WebCrypto's `BufferSource` types them (a view is fine at run time). */
const bytes = (u: Uint8Array): Uint8Array<ArrayBuffer> => u as Uint8Array<ArrayBuffer>;

function concat(...parts: Uint8Array[]): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** Throws `BAD_KEY` unless `raw` encodes an uncompressed P-256 point (65 bytes, leading 0x04). */
const point = (raw: Uint8Array, what: string): void => {
  if (raw.length !== 65 || raw[0] !== 4) fail('BAD_KEY', `${what} is not a P-256 point`);
};

/** base64url without padding (RFC 4648 §5), as Web Push uses for keys. */
export function base64urlEncode(data: Uint8Array): string {
  let bin = '';
  for (const b of data) bin += String.fromCharCode(b);
  return btoa(bin)
    .replace(/=+$/, '')
    .replace(/[+/]/g, (c) => (c === '+' ? '-' : '_'));
}

/** Decodes base64url (padding optional); throws a `BAD_KEY` error on other characters. */
export function base64urlDecode(s: string): Uint8Array<ArrayBuffer> {
  if (!/^[\w-]*={0,2}$/.test(s)) fail('BAD_KEY', 'not base64url');
  const bin = atob(s.replace(/=+$/, '').replace(/[-_]/g, (c) => (c === '-' ? '+' : '/')));
  return Uint8Array.from(bin, (c) => c.charCodeAt(0));
}

/**
 * Reads the `aes128gcm` header; throws `BAD_HEADER` unless the body holds exactly one record after
 * it (RFC 8291 §4: a push message is one record).
 */
export function parseAes128gcmHeader(body: Uint8Array): Aes128gcmHeader {
  if (body.length < 21) fail('BAD_HEADER', 'no header');
  const rs = new DataView(body.buffer, body.byteOffset, body.byteLength).getUint32(16);
  const length = 21 + body[20]!;
  if (rs < TAG_BYTES + 2) fail('BAD_HEADER', `record size ${rs} < 18`);
  if (body.length < length + TAG_BYTES + 1) fail('BAD_HEADER', 'no record');
  if (body.length - length > rs) fail('BAD_HEADER', `more than one record of ${rs} bytes`);
  return { salt: body.slice(0, 16), rs, keyId: body.slice(21, length), length };
}

/** HKDF-SHA-256 of RFC 5869, `len` bytes. */
const hkdf = async (salt: Uint8Array, ikm: Uint8Array, info: string | Uint8Array, len: number) =>
  new Uint8Array(
    await subtle().deriveBits(
      {
        name: 'HKDF',
        hash: 'SHA-256',
        salt: bytes(salt),
        info: bytes(typeof info === 'string' ? encode(info) : info),
      },
      await subtle().importKey('raw', bytes(ikm), 'HKDF', false, ['deriveBits']),
      len * 8,
    ),
  );

/**
 * The ECDH secret of RFC 8291 §3.1, then the content-encryption key and nonce of §3.4: ECDH
 * secret and auth secret → IKM, then salt → CEK (16 bytes) and NONCE (12 bytes).
 */
async function deriveKeys(
  privateKey: CryptoKey,
  otherPublic: Uint8Array,
  authSecret: Uint8Array,
  uaPublic: Uint8Array,
  asPublic: Uint8Array,
  salt: Uint8Array,
): Promise<{ cek: CryptoKey; iv: Uint8Array<ArrayBuffer> }> {
  point(otherPublic, 'public key');
  const other = await attempt(
    subtle().importKey('raw', bytes(otherPublic), P256, false, []),
    'BAD_KEY',
    'public key is not a P-256 point',
  );
  const secret = await attempt(
    subtle().deriveBits({ name: 'ECDH', public: other }, privateKey, 256),
    'BAD_KEY',
    'not a P-256 private key',
  );
  const ikm = await hkdf(
    authSecret,
    new Uint8Array(secret),
    concat(encode('WebPush: info\0'), uaPublic, asPublic),
    32,
  );
  const cek = await hkdf(salt, ikm, 'Content-Encoding: aes128gcm\0', 16);
  return {
    cek: await subtle().importKey('raw', cek, 'AES-GCM', false, ['encrypt', 'decrypt']),
    iv: await hkdf(salt, ikm, 'Content-Encoding: nonce\0', 12),
  };
}

/**
 * Decrypts an `aes128gcm` Web Push body (RFC 8291) with the receiver's keys.
 * @example
 * const plaintext = await decryptAes128gcm(body, keys);
 * new TextDecoder().decode(plaintext); // 'When I grow up, I want to be a watermelon'
 */
export async function decryptAes128gcm(body: Uint8Array, keys: WebPushKeys): Promise<Uint8Array> {
  const { keyId, salt, length } = parseAes128gcmHeader(body);
  const { cek, iv } = await deriveKeys(
    keys.privateKey,
    keyId,
    keys.authSecret,
    keys.publicKeyRaw,
    keyId,
    salt,
  );
  // One record, sequence number 0: its nonce is NONCE itself (RFC 8188 §2.3).
  const plain = new Uint8Array(
    await attempt(
      subtle().decrypt({ name: 'AES-GCM', iv }, cek, bytes(body.subarray(length))),
      'DECRYPT_FAILED',
      'payload does not authenticate',
    ),
  );
  // Strip the padding and check the 0x02 delimiter that ends the last (here: only) record.
  let end = plain.length - 1;
  while (plain[end] === 0) end--;
  if (plain[end] !== 2) fail('BAD_PADDING', 'no 0x02 delimiter');
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
    fail('BAD_HEADER', `plaintext of ${plaintext.length} bytes exceeds one record`);
  }
  const salt = opts.salt ?? globalThis.crypto.getRandomValues(new Uint8Array(16));
  const sender = opts.sender ?? (await newKeyPair(false));
  const { cek, iv } = await deriveKeys(
    sender.privateKey,
    to.publicKeyRaw,
    to.authSecret,
    to.publicKeyRaw,
    sender.publicKeyRaw,
    salt,
  );
  const sealed = await subtle().encrypt({ name: 'AES-GCM', iv }, cek, concat(plaintext, Uint8Array.of(2)));
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
  const { d } = await subtle().exportKey('jwk', keys.privateKey);
  return {
    p256dh: base64urlEncode(keys.publicKeyRaw),
    auth: base64urlEncode(keys.authSecret),
    d: d ?? fail('BAD_KEY', 'private key not extractable'),
  };
}

/** The inverse of {@link exportWebPushKeys}. The private key is imported extractable. */
export async function importWebPushKeys(stored: StoredWebPushKeys): Promise<WebPushKeys> {
  const publicKeyRaw = base64urlDecode(stored.p256dh);
  const authSecret = base64urlDecode(stored.auth);
  point(publicKeyRaw, 'p256dh');
  if (authSecret.length !== 16) fail('BAD_KEY', 'auth is not 16 bytes');
  const jwk: JsonWebKey = {
    kty: 'EC',
    crv: 'P-256',
    x: base64urlEncode(publicKeyRaw.subarray(1, 33)),
    y: base64urlEncode(publicKeyRaw.subarray(33)),
    d: stored.d,
    ext: true,
  };
  const privateKey = await attempt(
    subtle().importKey('jwk', jwk, P256, true, ['deriveBits']),
    'BAD_KEY',
    'd does not match p256dh',
  );
  return { privateKey, publicKeyRaw, authSecret };
}
