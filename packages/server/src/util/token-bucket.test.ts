import { describe, expect, it } from 'vitest';
import { TokenBucket } from './token-bucket.js';

describe('TokenBucket', () => {
  it('allows a burst, then the refill rate, and says how long to wait', () => {
    const b = new TokenBucket(10, 5, 0);
    for (let i = 0; i < 5; i++) expect(b.take(0)).toBe(0);
    const wait = b.take(0);
    expect(wait).toBe(100);
    expect(b.take(100)).toBe(0);
    expect(b.take(100)).toBeGreaterThan(0);
  });

  it('never holds more than the burst after a long idle period', () => {
    const b = new TokenBucket(1000, 3, 0);
    let ok = 0;
    for (let i = 0; i < 10; i++) if (b.take(1_000_000) === 0) ok++;
    expect(ok).toBe(3);
  });
});
