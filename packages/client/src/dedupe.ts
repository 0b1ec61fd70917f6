/**
 * The window of recently processed message ids: a bounded, insertion-ordered set. The oldest id
 * leaves when a new one would exceed the capacity. Persisted with the cursors so the app sees
 * each message once across reconnects and restarts.
 */
export class DedupeWindow {
  readonly capacity: number;
  private readonly _ids = new Set<string>();

  /** @param initial ids oldest first, e.g. from storage; only the newest `capacity` are kept. */
  constructor(capacity = 1000, initial: Iterable<string> = []) {
    if (!Number.isSafeInteger(capacity) || capacity < 1) throw new RangeError('dedupe capacity must be ≥ 1');
    this.capacity = capacity;
    for (const id of initial) this.add(id);
  }

  has(id: string): boolean {
    return this._ids.has(id);
  }

  /** Adds an id (no-op if present), evicting the oldest beyond the capacity. */
  add(id: string): void {
    if (this._ids.has(id)) return;
    this._ids.add(id);
    if (this._ids.size > this.capacity) {
      const oldest = this._ids.values().next().value;
      if (oldest !== undefined) this._ids.delete(oldest);
    }
  }

  get size(): number {
    return this._ids.size;
  }

  /** Ids oldest first, for storage. */
  toArray(): string[] {
    return [...this._ids];
  }
}
