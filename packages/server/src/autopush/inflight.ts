/**
 * Notifications sent on one autopush session and not acknowledged yet, and the cumulative cursor
 * they allow. Autopush acknowledges each message (`channelID`, `version`); Pushwire keeps one
 * cursor per stream: the cursor is the seq before the oldest unacknowledged message, or the last
 * seq handled when none is outstanding. Pure: no I/O.
 */
export class Inflight {
  /** Sent messages in seq order from `head`; acked ones are removed from the front. */
  private order: { seq: number; version: string; acked: boolean }[] = [];
  private head = 0;
  private readonly byVersion = new Map<string, number>();
  /** Highest seq handed to {@link sent} or {@link skipped}. */
  private last = 0;
  private reported: number;

  constructor(start: number) {
    this.last = start;
    this.reported = start;
  }

  /** Messages sent and not acknowledged. */
  get size(): number {
    return this.byVersion.size;
  }

  /** A notification went out with this version. */
  sent(version: string, seq: number): void {
    if (seq <= this.last) return;
    this.last = seq;
    this.order.push({ seq, version, acked: false });
    this.byVersion.set(version, seq);
  }

  /** An entry of the stream that is not a notification for this client: nothing to acknowledge. */
  skipped(seq: number): void {
    if (seq > this.last) this.last = seq;
  }

  /**
   * Marks a version acknowledged; returns true when it was outstanding. Unknown versions (acked
   * twice, or forged) change nothing.
   */
  ack(version: string): boolean {
    if (!this.byVersion.has(version)) return false;
    this.byVersion.delete(version);
    for (let i = this.head; i < this.order.length; i++) {
      const item = this.order[i]!;
      if (item.version === version && !item.acked) {
        item.acked = true;
        break;
      }
    }
    while (this.head < this.order.length && this.order[this.head]!.acked) this.head++;
    if (this.head > 64 && this.head * 2 > this.order.length) {
      this.order = this.order.slice(this.head);
      this.head = 0;
    }
    return true;
  }

  /** The cursor to store when it moved since the last call, else undefined. */
  advance(): number | undefined {
    const cursor = this.head < this.order.length ? this.order[this.head]!.seq - 1 : this.last;
    if (cursor <= this.reported) return undefined;
    this.reported = cursor;
    return cursor;
  }
}
