/**
 * A byte buffer that grows by doubling, so that bytes arriving in many small reads are copied a
 * bounded number of times in all (amortised linear), never once per read as re-concatenating
 * everything held would. One Buffer object however many reads: a slow sender of tiny TCP
 * segments costs its bytes, not an object per segment.
 */
export class GrowBuffer {
  private buf: Buffer | undefined;
  /** Bytes held. */
  length = 0;

  /** Bytes held plus spare room: the memory this buffer pins. */
  get capacity(): number {
    return this.buf?.length ?? 0;
  }

  /**
   * Appends a copy of `src`. `cap` is the most this buffer will ever need to hold (when known):
   * growth stops there instead of doubling past it.
   * @returns the number of bytes copied (appended plus moved by growth), for accounting
   */
  append(src: Buffer, cap = 0): number {
    const need = this.length + src.length;
    let copied = src.length;
    if (!this.buf || this.buf.length < need) {
      let size = Math.max(need, 2 * (this.buf?.length ?? 0), 256);
      if (cap >= need) size = Math.min(size, cap);
      const grown = Buffer.allocUnsafe(size);
      if (this.buf && this.length > 0) this.buf.copy(grown, 0, 0, this.length);
      copied += this.length;
      this.buf = grown;
    }
    src.copy(this.buf, this.length);
    this.length = need;
    return copied;
  }

  /**
   * The bytes held, as a view (no copy). Appending never writes over bytes already held, so a
   * payload delivered from a view may be kept by its receiver.
   */
  view(): Buffer {
    return this.buf ? this.buf.subarray(0, this.length) : Buffer.alloc(0);
  }
}
