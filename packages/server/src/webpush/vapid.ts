import { base64urlDecode } from '@pushwire/protocol';
import { errors, importJWK, type JWTPayload, jwtVerify } from 'jose';

/**
 * VAPID (RFC 8292): the application server proves its identity with an ES256 JWT signed by the key
 * it sends along. Pure: the clock and the expected audience come in as arguments.
 */

/** 401 for missing or invalid credentials; 403 when valid but not the key the subscription is bound to. */
export type VapidErrorCode = 'VAPID_REQUIRED' | 'BAD_VAPID' | 'VAPID_KEY_MISMATCH';

export class VapidError extends Error {
  override readonly name = 'VapidError';
  readonly status: 401 | 403;
  constructor(
    readonly code: VapidErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.status = code === 'VAPID_KEY_MISMATCH' ? 403 : 401;
  }
}

/** The token and the public key (base64url, uncompressed P-256 point) of a request. */
export interface VapidCredentials {
  token: string;
  key: string;
}

/** What the push service expects of a token. */
export interface VapidExpectation {
  /** The endpoint's origin, e.g. `https://push.example.com` (no path, no trailing slash). */
  audience: string;
  /** Now, ms since epoch. */
  now: number;
  /** The key the subscription is bound to (base64url), if any: `k` must be the same key. */
  applicationServerKey?: string | undefined;
  /** Largest `exp - now` accepted, seconds. Default 24 h, as RFC 8292 §2 says. */
  maxLifetimeSec?: number;
  /** Clock skew allowed past that bound, seconds. Default 60. */
  skewSec?: number;
}

/** A verified token: the key it was signed with and its claims. */
export interface VapidIdentity {
  key: string;
  exp: number;
  sub?: string;
}

/** Splits `a=1, b="2"` (RFC 7235 auth-params) or `a=1; b=2` (Crypto-Key) into a map. */
function params(text: string, separators: RegExp): Map<string, string> {
  const out = new Map<string, string>();
  for (const part of text.split(separators)) {
    const eq = part.indexOf('=');
    if (eq <= 0) continue;
    const name = part.slice(0, eq).trim().toLowerCase();
    const value = part
      .slice(eq + 1)
      .trim()
      .replace(/^"(.*)"$/, '$1');
    if (!out.has(name)) out.set(name, value);
  }
  return out;
}

/**
 * Reads VAPID credentials from the request headers: RFC 8292's `Authorization: vapid t=JWT, k=KEY`,
 * or the older draft's `Authorization: WebPush JWT` with `Crypto-Key: p256ecdsa=KEY`.
 * Returns undefined when the request carries no VAPID authorization at all.
 */
export function parseVapidHeaders(
  authorization: string | undefined,
  cryptoKey?: string | undefined,
): VapidCredentials | undefined {
  if (!authorization) return undefined;
  const m = /^\s*(\S+)\s+(.*)$/s.exec(authorization);
  const scheme = m?.[1]?.toLowerCase();
  const rest = m?.[2]?.trim() ?? '';
  if (scheme === 'vapid') {
    const p = params(rest, /,/);
    const token = p.get('t');
    const key = p.get('k');
    if (!token || !key) throw new VapidError('BAD_VAPID', 'Authorization: vapid needs both t= and k=');
    return { token, key };
  }
  if (scheme === 'webpush') {
    const key = params(cryptoKey ?? '', /[;,]/).get('p256ecdsa');
    if (!rest || !key) {
      throw new VapidError('BAD_VAPID', 'Authorization: WebPush needs a token and Crypto-Key: p256ecdsa=KEY');
    }
    return { token: rest, key };
  }
  throw new VapidError('BAD_VAPID', `unsupported Authorization scheme ${JSON.stringify(m?.[1] ?? '')}`);
}

/** Decodes a base64url public key; undefined unless it is a 65-byte uncompressed point. */
export function decodePublicKey(key: string): Uint8Array | undefined {
  try {
    const raw = base64urlDecode(key);
    return raw.length === 65 && raw[0] === 4 ? raw : undefined;
  } catch {
    return undefined;
  }
}

const sameBytes = (a: Uint8Array, b: Uint8Array) => a.length === b.length && a.every((x, i) => x === b[i]);

/**
 * Verifies a VAPID token: ES256 signature by `k`, `aud` equal to the endpoint's origin, `exp` in
 * the future and at most 24 h ahead, `k` equal to the subscription's key when it has one.
 * Resolves with the identity; rejects with a {@link VapidError}.
 */
export async function verifyVapid(creds: VapidCredentials, expect: VapidExpectation): Promise<VapidIdentity> {
  const raw = decodePublicKey(creds.key);
  if (!raw) throw new VapidError('BAD_VAPID', 'k is not a base64url uncompressed P-256 public key');
  if (expect.applicationServerKey !== undefined) {
    const bound = decodePublicKey(expect.applicationServerKey);
    if (!bound || !sameBytes(raw, bound)) {
      throw new VapidError(
        'VAPID_KEY_MISMATCH',
        'k is not the applicationServerKey this subscription was created with',
      );
    }
  }
  const payload = await verifySignature(creds.token, raw, expect.now);
  if (payload.aud !== expect.audience) {
    throw new VapidError(
      'BAD_VAPID',
      `aud ${JSON.stringify(payload.aud ?? null)} is not this push service's origin ${JSON.stringify(expect.audience)}`,
    );
  }
  const exp = payload.exp;
  if (typeof exp !== 'number') throw new VapidError('BAD_VAPID', 'the token has no exp claim');
  const limit = Math.floor(expect.now / 1000) + (expect.maxLifetimeSec ?? 86_400) + (expect.skewSec ?? 60);
  if (exp > limit) throw new VapidError('BAD_VAPID', 'exp is more than 24 hours ahead');
  return { key: creds.key, exp, ...(typeof payload.sub === 'string' && { sub: payload.sub }) };
}

async function verifySignature(token: string, raw: Uint8Array, now: number): Promise<JWTPayload> {
  const jwk = {
    kty: 'EC',
    crv: 'P-256',
    x: Buffer.from(raw.subarray(1, 33)).toString('base64url'),
    y: Buffer.from(raw.subarray(33, 65)).toString('base64url'),
  };
  let key: Awaited<ReturnType<typeof importJWK>>;
  try {
    key = await importJWK(jwk, 'ES256');
  } catch (cause) {
    throw new VapidError('BAD_VAPID', 'k is not a point on P-256', { cause });
  }
  try {
    const { payload } = await jwtVerify(token, key, {
      algorithms: ['ES256'],
      currentDate: new Date(now),
      requiredClaims: ['aud', 'exp'],
    });
    return payload;
  } catch (cause) {
    throw new VapidError('BAD_VAPID', reason(cause), { cause });
  }
}

function reason(err: unknown): string {
  if (err instanceof errors.JWTExpired) return 'the token has expired (exp is in the past)';
  if (err instanceof errors.JWSSignatureVerificationFailed) return 'the signature does not verify with k';
  if (err instanceof errors.JOSEAlgNotAllowed) return 'the token must be signed with ES256';
  if (err instanceof errors.JWTClaimValidationFailed) return `token claim ${err.claim}: ${err.message}`;
  return `malformed token: ${err instanceof Error ? err.message : String(err)}`;
}
