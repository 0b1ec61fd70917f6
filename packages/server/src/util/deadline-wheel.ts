/**
 * A bucketed deadline sweep: one shared timer for every session instead of one timer object per
 * connection. Items sit in the bucket of their deadline; activity only moves a timestamp on the
 * item (no bucket churn). When a bucket comes due, each item's real deadline is asked again: past
 * it the item expires, otherwise it moves to the bucket of its new deadline.
 *
 * Pure: the caller drives {@link DeadlineWheel.advance} with the current time.
 */
/** Something the wheel can file: it records the bucket it sits in, so a refiled item is not swept twice. */
export interface WheelItem {
  wheelSlot: number;
}

export class DeadlineWheel<T extends WheelItem> {
  private readonly buckets = new Map<number, T[]>();
  /**
   * Buckets are numbered from the one of the wheel's creation, so bucket numbers (kept on every
   * item) stay small integers: numbered from the epoch, they would be boxed doubles (16 bytes each).
   */
  private readonly origin: number;
  private cursor = 0;

  constructor(
    /** Bucket width in ms: the detection granularity. */
    private readonly tickMs: number,
    /** Current deadline of an item (ms since epoch), or `undefined` when it no longer needs one. */
    private readonly deadlineOf: (item: T) => number | undefined,
    now: number,
  ) {
    this.origin = Math.floor(now / tickMs);
  }

  /**
   * Tracks an item; its deadline is read now and again whenever its bucket comes due. Call again
   * when a deadline moved earlier (a later deadline needs no call): the item moves to the new bucket.
   */
  add(item: T): void {
    const deadline = this.deadlineOf(item);
    if (deadline === undefined) return;
    // Never file into a bucket already swept: late items go to the next one.
    const index = Math.max(Math.ceil(deadline / this.tickMs) - this.origin, this.cursor + 1);
    if (item.wheelSlot === index) return;
    item.wheelSlot = index;
    const bucket = this.buckets.get(index);
    if (bucket) bucket.push(item);
    else this.buckets.set(index, [item]);
  }

  /** Sweeps every bucket due by `now`, calling `onExpired` for items past their deadline. */
  advance(now: number, onExpired: (item: T) => void): void {
    const until = Math.floor(now / this.tickMs) - this.origin;
    for (; this.cursor < until; ) {
      this.cursor++;
      const bucket = this.buckets.get(this.cursor);
      if (!bucket) continue;
      this.buckets.delete(this.cursor);
      for (const item of bucket) {
        if (item.wheelSlot !== this.cursor) continue; // refiled elsewhere since
        item.wheelSlot = -1;
        const deadline = this.deadlineOf(item);
        if (deadline === undefined) continue;
        if (deadline <= now) onExpired(item);
        else this.add(item);
      }
    }
  }

  /** Number of items filed (including ones that will be dropped when their bucket comes due). */
  get size(): number {
    let n = 0;
    for (const b of this.buckets.values()) n += b.length;
    return n;
  }
}
