import { URGENCIES, type Urgency } from '@pushwire/protocol';
import { HttpError } from '../errors.js';

/** What a push request (RFC 8030 §5) asks for, from its headers. */
export interface PushRequestHeaders {
  /** Effective TTL, seconds: the requested one capped at the maximum. */
  ttl: number;
  urgency: Urgency;
  topic?: string;
}

type Headers = Record<string, string | string[] | undefined>;

const one = (h: Headers, name: string): string | undefined => {
  const v = h[name];
  return Array.isArray(v) ? v.join(',') : v;
};

const bad = (code: string, message: string) => new HttpError(400, code, message);

/** Topic: at most 32 characters of the URL-safe base64 alphabet (RFC 8030 §5.4). */
export const TOPIC_HEADER_PATTERN = /^[A-Za-z0-9_-]{1,32}$/;

/**
 * Reads `TTL` (required: a silent default of 0 would lose messages), `Urgency` (default normal)
 * and `Topic`. Throws a 400 {@link HttpError} saying which header is wrong.
 */
export function parsePushHeaders(h: Headers, maxTtl: number): PushRequestHeaders {
  const ttlText = one(h, 'ttl')?.trim();
  if (ttlText === undefined || ttlText === '') {
    throw bad(
      'TTL_REQUIRED',
      'the TTL header is required: seconds to keep the message (0 = only if online now)',
    );
  }
  if (!/^\d+$/.test(ttlText))
    throw bad('BAD_TTL', `TTL must be a number of seconds, not ${JSON.stringify(ttlText)}`);
  const ttl = Math.min(Number(ttlText), maxTtl);

  const urgencyText = one(h, 'urgency')?.trim();
  if (urgencyText !== undefined && !URGENCIES.includes(urgencyText as Urgency)) {
    throw bad(
      'BAD_URGENCY',
      `Urgency must be one of ${URGENCIES.join(', ')}, not ${JSON.stringify(urgencyText)}`,
    );
  }
  const topic = one(h, 'topic')?.trim();
  if (topic !== undefined && !TOPIC_HEADER_PATTERN.test(topic)) {
    throw bad(
      'BAD_TOPIC',
      'Topic must be 1 to 32 characters of the URL-safe base64 alphabet (A-Z a-z 0-9 - _)',
    );
  }
  return {
    ttl,
    urgency: (urgencyText as Urgency | undefined) ?? 'normal',
    ...(topic !== undefined && { topic }),
  };
}
