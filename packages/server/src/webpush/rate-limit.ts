import { TokenBucket } from '../util/token-bucket.js';

/**
 * One token bucket per key (a subscription), in a map bounded to `maxKeys`: past the bound the key
 * used least recently is forgotten (it starts again with a full bucket), so memory stays bounded.
 */
export class KeyedRateLimiter {
  private readonly buckets = new Map<string, TokenBucket>();

  constructor(
    private readonly ratePerSec: number,
    private readonly burst: number,
    private readonly maxKeys = 100_000,
  ) {}

  get size(): number {
    return this.buckets.size;
  }

  /** 0 when the key may go ahead, else the ms until it may. */
  take(key: string, now: number): number {
    let bucket = this.buckets.get(key);
    if (bucket) this.buckets.delete(key);
    else bucket = new TokenBucket(this.ratePerSec, this.burst, now);
    this.buckets.set(key, bucket);
    if (this.buckets.size > this.maxKeys) {
      const oldest = this.buckets.keys().next().value;
      if (oldest !== undefined) this.buckets.delete(oldest);
    }
    return bucket.take(now);
  }
}
