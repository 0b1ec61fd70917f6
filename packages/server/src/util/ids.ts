import { createHash, randomBytes, randomUUID, timingSafeEqual } from 'node:crypto';

/** A device id: 128 random bits, URL-safe. */
export const newDeviceId = (): string => randomBytes(16).toString('base64url');
/** A device token: 256 random bits, URL-safe. Only its hash is stored. */
export const newToken = (): string => randomBytes(32).toString('base64url');
/** A message id when the publisher gives none. */
export const newMessageId = (): string => randomUUID();
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
