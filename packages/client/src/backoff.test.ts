import { describe, expect, it } from 'vitest';
import { backoffDelay, DEFAULT_BACKOFF, goawayDelay, rateLimitedDelay, resolveBackoff } from './backoff.js';

describe('backoffDelay (exponential, full jitter)', () => {
  it('is random() × min(max, initial × multiplier^attempt) with the documented defaults', () => {
    expect(DEFAULT_BACKOFF).toEqual({ initial: 500, max: 30_000, multiplier: 2, stableAfter: 30_000 });
    const caps = [500, 1000, 2000, 4000, 8000, 16_000, 30_000, 30_000, 30_000];
    caps.forEach((cap, attempt) => {
      expect(backoffDelay(attempt, DEFAULT_BACKOFF, () => 0.999_999)).toBeCloseTo(cap, 0);
      expect(backoffDelay(attempt, DEFAULT_BACKOFF, () => 0.5)).toBe(cap / 2);
      expect(backoffDelay(attempt, DEFAULT_BACKOFF, () => 0)).toBe(0);
    });
  });

  it('stays within [0, cap) for any randomness, even at absurd attempt counts', () => {
    let seed = 42;
    const random = () => {
      seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31;
      return seed / 2 ** 31;
    };
    for (let attempt = 0; attempt < 2000; attempt++) {
      const d = backoffDelay(attempt, DEFAULT_BACKOFF, random);
      const cap = Math.min(30_000, 500 * 2 ** attempt);
      expect(d).toBeGreaterThanOrEqual(0);
      expect(d).toBeLessThan(cap);
    }
  });

  it('spreads a crowd over the whole window (jitter is real, not a constant)', () => {
    const delays = Array.from({ length: 1000 }, () => backoffDelay(6));
    const buckets = new Set(delays.map((d) => Math.floor(d / 3000)));
    expect(buckets.size).toBe(10); // every tenth of [0, 30 s) is hit
    expect(Math.max(...delays)).toBeLessThan(30_000);
  });

  it('clamps a misbehaving random source into [0, 1]', () => {
    expect(backoffDelay(0, DEFAULT_BACKOFF, () => 7)).toBe(500);
    expect(backoffDelay(0, DEFAULT_BACKOFF, () => -1)).toBe(0);
    expect(backoffDelay(0, DEFAULT_BACKOFF, () => Number.NaN)).toBe(0);
  });
});

describe('server-directed delays', () => {
  it('goaway waits exactly reconnectAfter plus up to 10% jitter', () => {
    expect(goawayDelay(10_000, () => 0)).toBe(10_000);
    expect(goawayDelay(10_000, () => 0.5)).toBe(10_500);
    expect(goawayDelay(10_000, () => 0.999)).toBeLessThan(11_000);
    expect(goawayDelay(-5, () => 0.5)).toBe(0);
  });

  it('RATE_LIMITED waits at least retryAfter, and at least the backoff', () => {
    expect(rateLimitedDelay(5000, 0, DEFAULT_BACKOFF, () => 0)).toBe(5000);
    expect(rateLimitedDelay(5000, 0, DEFAULT_BACKOFF, () => 0.99)).toBeGreaterThanOrEqual(5000);
    expect(rateLimitedDelay(100, 10, DEFAULT_BACKOFF, () => 0.9)).toBe(27_000); // backoff dominates
  });
});

describe('resolveBackoff', () => {
  it('fills defaults and ignores undefined fields', () => {
    expect(resolveBackoff({ max: 10_000, initial: undefined })).toEqual({ ...DEFAULT_BACKOFF, max: 10_000 });
  });
  it('refuses nonsense', () => {
    expect(() => resolveBackoff({ initial: 0 })).toThrow(RangeError);
    expect(() => resolveBackoff({ initial: 1000, max: 10 })).toThrow(RangeError);
    expect(() => resolveBackoff({ multiplier: 0.5 })).toThrow(RangeError);
  });
});
