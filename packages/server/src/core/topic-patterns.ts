/**
 * Topic patterns of API keys (which topics a `publish` key may publish to, which topics the
 * devices a `register` key creates may subscribe to). One syntax, on `/`-separated segments:
 *
 * - a literal character matches itself (`news/sport` matches only `news/sport`);
 * - `*` matches one or more characters inside one segment (`news/*` matches `news/sport` but not
 *   `news` nor `news/sport/live`; `news-*` matches `news-fr`);
 * - `**` as the whole last segment matches one or more further segments (`news/**` matches
 *   `news/sport` and `news/sport/live`); a pattern that is only `**` matches every topic;
 * - `{user}` stands for the user of the device (subscribe patterns only): `user-{user}/*` lets the
 *   device of user `alice` follow `user-alice/inbox`. A pattern with `{user}` never matches for a
 *   device without a user, nor for a publisher (publish patterns have no user).
 *
 * Pure functions, no I/O.
 */

/** Largest number of patterns of one list, and of characters of one pattern. */
export const MAX_PATTERNS = 32;
export const MAX_PATTERN_LENGTH = 128;

/** Characters a pattern may hold: a topic's (`A-Za-z0-9._~:/-`), `*`, and the `{user}` placeholder. */
const PATTERN_SYNTAX = /^(?:[A-Za-z0-9._~:/*-]|\{user\})+$/;

/** Why a pattern is invalid, or undefined when it is valid. */
export function patternError(pattern: string): string | undefined {
  if (pattern.length === 0 || pattern.length > MAX_PATTERN_LENGTH)
    return `a pattern has 1 to ${MAX_PATTERN_LENGTH} characters`;
  if (!PATTERN_SYNTAX.test(pattern))
    return `pattern ${JSON.stringify(pattern)}: use letters, digits, ._~:/-, * and {user}`;
  const segments = pattern.split('/');
  for (let i = 0; i < segments.length; i++) {
    const seg = segments[i]!;
    if (seg.includes('**') && (seg !== '**' || i !== segments.length - 1))
      return `pattern ${JSON.stringify(pattern)}: ** is only allowed as the whole last segment`;
  }
  return undefined;
}

const escapeRegex = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

function compile(pattern: string, user: string | undefined): RegExp | undefined {
  if (pattern.includes('{user}') && (user === undefined || user === '')) return undefined;
  const segments = pattern.split('/').map((seg, i, all) => {
    if (seg === '**' && i === all.length - 1) return '.+';
    return seg
      .split('{user}')
      .map((part) => part.split('*').map(escapeRegex).join('[^/]+'))
      .join(escapeRegex(user ?? ''));
  });
  return new RegExp(`^${segments.join('/')}$`);
}

/** Whether `topic` matches `pattern` (with `{user}` as `user`). An invalid pattern matches nothing. */
export function topicMatches(pattern: string, topic: string, user?: string): boolean {
  if (patternError(pattern) !== undefined) return false;
  return compile(pattern, user)?.test(topic) ?? false;
}

/** Whether `topic` matches one of `patterns`. */
export function anyMatches(patterns: readonly string[], topic: string, user?: string): boolean {
  return patterns.some((p) => topicMatches(p, topic, user));
}
