import { TokenBucket } from './token-bucket.js';

/**
 * Admission control for new sessions. Pure: time and jitter come in as arguments.
 *
 * A token bucket admits `rate` sessions per second after a `burst`. A refused client is not just
 * told "later": it gets its own slot, one `1/rate` after the slot handed to the client refused
 * before it, so a storm of N refused clients comes back spread over N/rate seconds, each finding
 * a token, instead of all returning within the same second to be refused again (each refusal
 * costs a TCP accept, an HTTP upgrade and a close).
 */
export class AdmissionControl {
  private readonly bucket: TokenBucket;
  private readonly spacingMs: number;
  /** The latest slot handed out (ms). */
  private lastSlot = Number.NEGATIVE_INFINITY;

  constructor(ratePerSec: number, burst: number, now: number) {
    this.bucket = new TokenBucket(ratePerSec, burst, now);
    this.spacingMs = 1000 / ratePerSec;
  }

  /**
   * 0 when the session is admitted now; otherwise how long (ms) the client should wait, its slot
   * plus `jitterMs` (late is harmless: tokens keep for the burst; early would be refused again).
   */
  admit(now: number, jitterMs = 0): number {
    const wait = this.bucket.take(now);
    if (wait === 0) return 0;
    this.lastSlot = Math.max(this.lastSlot + this.spacingMs, now + wait);
    return Math.ceil(this.lastSlot - now + jitterMs);
  }
}
