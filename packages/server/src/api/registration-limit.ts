import { addressKey } from '../util/address.js';
import { TokenBucket } from '../util/token-bucket.js';

/** Addresses whose bucket is remembered; the oldest is dropped beyond (it starts full again). */
const MAX_ADDRESSES = 100_000;

/**
 * Registrations with a `register` key per client address (IPv6: per /64): a token bucket each, so
 * a key shipped in an app cannot be used from one host to create devices without bound. Pure:
 * time comes in as an argument. Behind a reverse proxy every client has the proxy's address: set
 * Fastify's `trustProxy` there, or raise the rate.
 */
export class RegistrationLimiter {
  private readonly buckets = new Map<string, TokenBucket>();

  constructor(
    private readonly rate: number,
    private readonly burst: number,
    _now: number,
  ) {}

  /** 0 when a registration from `address` may go ahead now, else the ms until one may. */
  take(address: string | undefined, now: number): number {
    if (!(this.rate > 0)) return 0;
    const key = addressKey(address);
    let b = this.buckets.get(key);
    if (!b) {
      if (this.buckets.size >= MAX_ADDRESSES) this.buckets.delete(this.buckets.keys().next().value!);
      b = new TokenBucket(this.rate, Math.max(1, this.burst), now);
      this.buckets.set(key, b);
    }
    return b.take(now);
  }
}
