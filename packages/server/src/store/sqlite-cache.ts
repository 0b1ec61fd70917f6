import type { DeviceRecord } from './types.js';

/*
 * The SQLite store's in-memory caches: stream heads (owned here: seqs are assigned from them when a
 * batch is formed) and devices (publish target checks, session auth). Internal to sqlite.ts.
 */

/** Heads a batch started from, noted the first time it touches a stream: restored when it fails. */
export type HeadRollback = Map<string, number>;

/**
 * Stream heads, least recently used first, including the seqs of the batch in flight. Streams not
 * cached are read back with `lookup` (the committed head).
 */
export class HeadCache {
  private readonly heads = new Map<string, number>();

  constructor(
    private readonly size: number,
    private readonly lookup: (stream: string) => number,
  ) {}

  /** Head of a stream as of the batch being formed, without moving it. */
  peek(stream: string): number {
    return this.heads.get(stream) ?? this.lookup(stream);
  }

  /**
   * The head of a stream as of the batch being formed; with `advance`, moves it one seq on. The
   * first time a batch touches a stream, its head is noted in `rollback`.
   */
  next(stream: string, rollback: HeadRollback, advance: boolean): number {
    let head = this.heads.get(stream);
    if (head === undefined) head = this.lookup(stream);
    else this.heads.delete(stream); // re-inserted below: most recently used
    if (!rollback.has(stream)) rollback.set(stream, head);
    this.heads.set(stream, advance ? head + 1 : head);
    return head;
  }

  /** Head of a stream, cached from now on; `trim`: keep the cache to its size (no batch in flight). */
  get(stream: string, trim: boolean): number {
    const cached = this.heads.get(stream);
    if (cached !== undefined) return cached;
    const head = this.lookup(stream);
    this.heads.set(stream, head);
    if (trim) this.trim();
    return head;
  }

  /** Puts back the heads of a batch that failed (no later seq was handed out). */
  restore(rollback: HeadRollback): void {
    for (const [stream, head] of rollback) this.heads.set(stream, head);
  }

  /** Keeps the cache to its size; only while no batch is in flight (its heads must stay). */
  trim(): void {
    while (this.heads.size > this.size) {
      const oldest = this.heads.keys().next().value;
      if (oldest === undefined) return;
      this.heads.delete(oldest);
    }
  }
}

/** Devices known to exist (deleted ones are dropped), oldest first; size 0 caches nothing. */
export class DeviceCache {
  private readonly devices = new Map<string, DeviceRecord>();

  constructor(private readonly size: number) {}

  get(id: string): DeviceRecord | undefined {
    return this.devices.get(id);
  }

  remember(id: string, device: DeviceRecord): void {
    if (this.size === 0) return;
    if (this.devices.size >= this.size) this.devices.delete(this.devices.keys().next().value!);
    this.devices.set(id, device);
  }

  forget(id: string): void {
    this.devices.delete(id);
  }

  /** A committed last-seen time, for a cached device. */
  touched(id: string, lastSeen: number): void {
    const cached = this.devices.get(id);
    if (cached) this.devices.set(id, { ...cached, lastSeen });
  }
}
