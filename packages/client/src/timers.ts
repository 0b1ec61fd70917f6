import type { Clock } from './clock.js';

/**
 * Named one-shot timers on a {@link Clock}: setting a name again replaces its timer, and
 * `clearAll` releases every one (the cleanup of an owner in one call).
 */
export interface Timers<K extends string> {
  /** Runs `fn` after `ms` (at least 0), replacing any timer of the same name. */
  set(name: K, ms: number, fn: () => void): void;
  /** Cancels the named timer, if set. */
  clear(name: K): void;
  /** Cancels every timer. */
  clearAll(): void;
}

export function createTimers<K extends string>(clock: Clock): Timers<K> {
  /** The entry of a pending timer: an object of its own, so a stale callback never matches. */
  const active = new Map<K, { h?: unknown }>();
  const clear = (name: K): void => {
    const entry = active.get(name);
    if (entry === undefined) return;
    active.delete(name);
    clock.clearTimeout(entry.h);
  };
  return {
    set(name, ms, fn) {
      clear(name);
      const entry: { h?: unknown } = {};
      entry.h = clock.setTimeout(
        () => {
          if (active.get(name) !== entry) return;
          active.delete(name);
          fn();
        },
        Math.max(0, ms),
      );
      active.set(name, entry);
    },
    clear,
    clearAll() {
      for (const name of [...active.keys()]) clear(name);
    },
  };
}
