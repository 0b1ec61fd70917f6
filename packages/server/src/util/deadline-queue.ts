/** Something a {@link DeadlineQueue} holds: it records its place, so that it can be taken out in O(1). */
export interface QueueItem {
  queueSlot: number;
}

/**
 * Deadlines that come in the order they were set (one fixed timeout, e.g. the handshake's): a FIFO
 * swept from its head. Unlike a deadline wheel, an item settled before its deadline is taken out
 * at once ({@link remove} leaves a hole), so it is not kept alive until the deadline passes.
 *
 * Pure: the caller drives {@link DeadlineQueue.advance} with the current time.
 */
export class DeadlineQueue<T extends QueueItem> {
  private items: (T | undefined)[] = [];
  private deadlines: number[] = [];
  /** Index of the first entry not swept yet. */
  private head = 0;
  /** Slot number of `items[0]` (slots stay valid when the arrays are compacted). */
  private base = 0;
  /** Items held (holes not counted). */
  size = 0;

  /** Adds an item due at `deadline`, which must not be earlier than the last one added. */
  add(item: T, deadline: number): void {
    item.queueSlot = this.base + this.items.length;
    this.items.push(item);
    this.deadlines.push(deadline);
    this.size++;
  }

  /** Takes an item out before its deadline (a no-op when it is not held). */
  remove(item: T): void {
    const i = item.queueSlot - this.base;
    item.queueSlot = -1;
    if (i < this.head || i >= this.items.length || this.items[i] !== item) return;
    this.items[i] = undefined;
    this.size--;
    if (this.size === 0) this.reset();
  }

  /** Removes the items due by `now` and calls `onExpired` for each, in order. */
  advance(now: number, onExpired: (item: T) => void): void {
    while (this.head < this.items.length && (this.deadlines[this.head] as number) <= now) {
      const item = this.items[this.head];
      this.items[this.head] = undefined;
      this.head++;
      if (item === undefined) continue;
      item.queueSlot = -1;
      this.size--;
      onExpired(item);
    }
    if (this.size === 0) this.reset();
    else if (this.head > 1024 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head);
      this.deadlines = this.deadlines.slice(this.head);
      this.base += this.head;
      this.head = 0;
    }
  }

  private reset(): void {
    this.base += this.items.length;
    this.items = [];
    this.deadlines = [];
    this.head = 0;
  }
}
