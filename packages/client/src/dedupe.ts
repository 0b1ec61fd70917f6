/**
 * The window of recently processed message ids: a bounded, insertion-ordered set. The oldest id
 * leaves when a new one would exceed the capacity. Persisted with the cursors so the app sees
 * each message once across reconnects and restarts.
 */
export interface DedupeWindow {
  has(id: string): boolean;
  /** Adds an id (no-op if present), evicting the oldest beyond the capacity. */
  add(id: string): void;
  /** Ids oldest first, for storage. */
  toArray(): string[];
}

/** @param initial ids oldest first, e.g. from storage; only the newest `capacity` are kept. */
export function dedupeWindow(capacity = 1000, initial: Iterable<string> = []): DedupeWindow {
  if (!Number.isSafeInteger(capacity) || capacity < 1) throw new RangeError('dedupe capacity must be ≥ 1');
  const ids = new Set<string>();
  const add = (id: string): void => {
    if (ids.has(id)) return;
    ids.add(id);
    if (ids.size > capacity) ids.delete(ids.values().next().value as string);
  };
  for (const id of initial) add(id);
  return { has: (id) => ids.has(id), add, toArray: () => [...ids] };
}
