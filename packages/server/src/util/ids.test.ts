import { describe, expect, it } from 'vitest';
import { newSessionId, newToken, sha256, tokenMatches } from './ids.js';

describe('tokenMatches', () => {
  it('accepts the token whose hash is stored and refuses any other', () => {
    const token = newToken();
    const hash = sha256(token);
    expect(tokenMatches(hash, token)).toBe(true);
    expect(tokenMatches(hash, newToken())).toBe(false);
    expect(tokenMatches(hash, `${token}x`)).toBe(false);
    expect(tokenMatches(hash, '')).toBe(false);
  });

  it('refuses (does not throw) when the stored hash is damaged or of another length', () => {
    const token = newToken();
    expect(tokenMatches('', token)).toBe(false);
    expect(tokenMatches('zz', token)).toBe(false);
    expect(tokenMatches(sha256(token).slice(0, 40), token)).toBe(false);
  });
});

describe('newSessionId', () => {
  it('is unique across many calls and URL-safe', () => {
    const ids = new Set(Array.from({ length: 10_000 }, newSessionId));
    expect(ids.size).toBe(10_000);
    for (const id of [...ids].slice(0, 50)) expect(id).toMatch(/^[A-Za-z0-9_-]+$/);
  });
});
