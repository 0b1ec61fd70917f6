import { describe, expect, it } from 'vitest';
import { newMessageId, newSessionId, newToken, sha256, tokenMatches } from './ids.js';

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

describe('newMessageId', () => {
  it('is a version 4 UUID, unique across pool refills, with no visible pattern in its random bits', () => {
    const ids = Array.from({ length: 5000 }, newMessageId);
    expect(new Set(ids).size).toBe(5000);
    for (const id of ids)
      expect(id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    // Each hex digit of the first group is about equally frequent (a bias would show a skew).
    const counts = new Map<string, number>();
    for (const id of ids) for (const c of id.slice(0, 8)) counts.set(c, (counts.get(c) ?? 0) + 1);
    expect(counts.size).toBe(16);
    for (const n of counts.values()) expect(n).toBeGreaterThan((5000 * 8) / 16 / 2);
  });
});
