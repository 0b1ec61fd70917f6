import { createHash, randomBytes, randomUUID, timingSafeEqual } from 'node:crypto';

/** A device id: 128 random bits, URL-safe. */
export const newDeviceId = (): string => randomBytes(16).toString('base64url');
/** A device token: 256 random bits, URL-safe. Only its hash is stored. */
export const newToken = (): string => randomBytes(32).toString('base64url');
/** A message id when the publisher gives none. */
export const newMessageId = (): string => randomUUID();
/** A session id, for logs. */
export const newSessionId = (): string => randomBytes(9).toString('base64url');
/** An admin API key. */
export const newApiKey = (): string => `pw_${randomBytes(24).toString('base64url')}`;

export const sha256 = (text: string): string => createHash('sha256').update(text).digest('hex');

/** Constant-time comparison of two secrets (by their SHA-256, so lengths never leak). */
export function secretEquals(a: string, b: string): boolean {
  return timingSafeEqual(createHash('sha256').update(a).digest(), createHash('sha256').update(b).digest());
}
