import type { Clock } from './clock.js';

/**
 * Named one-shot timers on a {@link Clock}: setting a name again replaces its timer, and
 * {@link Timers.clearAll} releases every one (the cleanup of an owner in one call).
 */
export class Timers<K extends string> {
  private readonly _clock: Clock;
  private readonly _active = new Map<K, { handle: unknown; at: number }>();

  constructor(clock: Clock) {
    this._clock = clock;
  }

  /** Runs `fn` after `ms` (at least 0), replacing any timer of the same name. */
  set(name: K, ms: number, fn: () => void): void {
    this.clear(name);
    const delay = Math.max(0, ms);
    const entry = { handle: undefined as unknown, at: this._clock.now() + delay };
    entry.handle = this._clock.setTimeout(() => {
      if (this._active.get(name) !== entry) return;
      this._active.delete(name);
      fn();
    }, delay);
    this._active.set(name, entry);
  }

  /** Cancels the named timer, if set. */
  clear(name: K): void {
    const entry = this._active.get(name);
    if (entry === undefined) return;
    this._active.delete(name);
    this._clock.clearTimeout(entry.handle);
  }

  /** Whether the named timer is pending. */
  has(name: K): boolean {
    return this._active.has(name);
  }

  /** When the named timer is due (ms since the epoch), or undefined. */
  dueAt(name: K): number | undefined {
    return this._active.get(name)?.at;
  }

  /** Cancels every timer. */
  clearAll(): void {
    for (const name of [...this._active.keys()]) this.clear(name);
  }
}
