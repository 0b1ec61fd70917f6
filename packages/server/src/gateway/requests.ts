import { TokenBucket } from '../util/token-bucket.js';

/** A request run with a durable write (sub, unsub); it settles without throwing. */
export type Job = () => Promise<void>;

/**
 * One session's request limits: a token bucket (`rate` per second after a `burst`), and one durable
 * write in flight at a time with the rest queued in order. A client's churn so holds at most one
 * write in the store's queue, and publishes never wait behind thousands of its subscribes.
 * Allocated at a session's first request: most sessions never send one.
 */
export class RequestLimiter {
  private readonly bucket: TokenBucket;
  private readonly queue: Job[] = [];
  private running = false;
  /** Requests refused since the last admitted one. */
  refusedInRow = 0;

  constructor(
    private readonly rate: number,
    private readonly burst: number,
    now: number,
  ) {
    this.bucket = new TokenBucket(rate, burst, now);
  }

  /** 0 when a request may run now, else the ms to wait before sending another. */
  admit(now: number): number {
    // The queue is bounded too: a store that stalls (Redis away) must not let it grow.
    const wait = this.queue.length >= this.burst ? Math.ceil(1000 / this.rate) : this.bucket.take(now);
    if (wait === 0) this.refusedInRow = 0;
    else this.refusedInRow++;
    return wait;
  }

  /** Runs `job` after the jobs queued before it. */
  run(job: Job): void {
    this.queue.push(job);
    if (!this.running) void this.drain();
  }

  private async drain(): Promise<void> {
    this.running = true;
    for (let job = this.queue.shift(); job; job = this.queue.shift()) await job();
    this.running = false;
  }
}
