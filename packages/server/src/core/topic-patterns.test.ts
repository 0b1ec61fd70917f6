import { describe, expect, it } from 'vitest';
import { anyMatches, patternError, topicMatches } from './topic-patterns.js';

describe('topic patterns', () => {
  it('matches literals, one segment with *, a prefix with *, and the rest with **', () => {
    expect(topicMatches('news', 'news')).toBe(true);
    expect(topicMatches('news', 'news2')).toBe(false);
    expect(topicMatches('news/*', 'news/sport')).toBe(true);
    expect(topicMatches('news/*', 'news')).toBe(false);
    expect(topicMatches('news/*', 'news/')).toBe(false);
    expect(topicMatches('news/*', 'news/sport/live')).toBe(false);
    expect(topicMatches('news-*', 'news-fr')).toBe(true);
    expect(topicMatches('news-*', 'alerts')).toBe(false);
    expect(topicMatches('news/**', 'news/sport/live')).toBe(true);
    expect(topicMatches('news/**', 'news')).toBe(false);
    expect(topicMatches('**', 'anything/at/all')).toBe(true);
    expect(topicMatches('news/*', 'alerts')).toBe(false);
  });

  it('takes regex characters of a pattern literally', () => {
    expect(topicMatches('a.b', 'aXb')).toBe(false);
    expect(topicMatches('a.b', 'a.b')).toBe(true);
  });

  it('puts the device user in {user}, literally, and never matches without a user', () => {
    expect(topicMatches('user-{user}/*', 'user-alice/inbox', 'alice')).toBe(true);
    expect(topicMatches('user-{user}/*', 'user-bob/inbox', 'alice')).toBe(false);
    expect(topicMatches('user-{user}/*', 'user-/inbox')).toBe(false);
    expect(topicMatches('user-{user}', 'user-a.c', 'a*')).toBe(false);
    expect(topicMatches('u/{user}', 'u/a*', 'a*')).toBe(true);
  });

  it('refuses invalid patterns, which match nothing', () => {
    expect(patternError('')).toBeDefined();
    expect(patternError('a'.repeat(129))).toBeDefined();
    expect(patternError('news/{other}')).toBeDefined();
    expect(patternError('a/**/b')).toBeDefined();
    expect(patternError('a**')).toBeDefined();
    expect(patternError('news/$')).toBeDefined();
    expect(patternError('user-{user}/*')).toBeUndefined();
    expect(topicMatches('a/**/b', 'a/x/b')).toBe(false);
    expect(anyMatches([], 'news')).toBe(false);
    expect(anyMatches(['alerts', 'news/*'], 'news/x')).toBe(true);
  });
});
