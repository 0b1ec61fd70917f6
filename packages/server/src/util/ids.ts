import { createHash, randomBytes, randomFillSync, timingSafeEqual } from 'node:crypto';

/** A device id: 128 random bits, URL-safe. */
export const newDeviceId = (): string => randomBytes(16).toString('base64url');
/** A device token: 256 random bits, URL-safe. Only its hash is stored. */
export const newToken = (): string => randomBytes(32).toString('base64url');
const HEX = Buffer.from('0123456789abcdef', 'latin1');
/** Random bytes for 256 message ids, refilled when used up. */
const idPool = Buffer.allocUnsafe(16 * 256);
let idAt = idPool.length;
const idText = Buffer.allocUnsafe(36);

/**
 * A message id when the publisher gives none: a random (version 4) UUID, as `randomUUID()` makes,
 * written into one flat string (Node's builds it from ~20 concatenated pieces: ~550 bytes of heap
 * per id on the publish path, measured with the sampling heap profiler; this costs one string).
 */
export function newMessageId(): string {
  if (idAt === idPool.length) {
    randomFillSync(idPool);
    idAt = 0;
  }
  idPool[idAt + 6] = ((idPool[idAt + 6] as number) & 0x0f) | 0x40;
  idPool[idAt + 8] = ((idPool[idAt + 8] as number) & 0x3f) | 0x80;
  let o = 0;
  for (let i = 0; i < 16; i++) {
    if (i === 4 || i === 6 || i === 8 || i === 10) idText[o++] = 0x2d;
    const b = idPool[idAt + i] as number;
    idText[o++] = HEX[b >> 4] as number;
    idText[o++] = HEX[b & 15] as number;
  }
  idAt += 16;
  return idText.toString('latin1');
}
/** Random per process, so session ids from different processes (or restarts) do not collide. */
const SESSION_PREFIX = randomBytes(6).toString('base64url');
let sessionCount = 0;
/**
 * A session id, for logs and metrics: unique, not secret (nothing is authorised by it), so a
 * counter behind a per-process random prefix instead of random bytes per connection.
 */
export const sessionIdOf = (n: number): string => `${SESSION_PREFIX}${n.toString(36)}`;
/** The number of a new session; {@link sessionIdOf} makes its id (a session keeps the number only). */
export const nextSessionNumber = (): number => ++sessionCount;
export const newSessionId = (): string => sessionIdOf(nextSessionNumber());
/** An admin API key. */
export const newApiKey = (): string => `pw_${randomBytes(24).toString('base64url')}`;

export const sha256 = (text: string): string => createHash('sha256').update(text).digest('hex');

/**
 * Whether `token` hashes to `tokenHash` (hex SHA-256), in constant time: one digest, and the two
 * digests always have the same length, so comparing them directly leaks nothing.
 */
export function tokenMatches(tokenHash: string, token: string): boolean {
  const expected = Buffer.from(tokenHash, 'hex');
  const actual = createHash('sha256').update(token).digest();
  return expected.length === actual.length && timingSafeEqual(expected, actual);
}

/** Constant-time comparison of two secrets (by their SHA-256, so lengths never leak). */
export function secretEquals(a: string, b: string): boolean {
  return timingSafeEqual(createHash('sha256').update(a).digest(), createHash('sha256').update(b).digest());
}
