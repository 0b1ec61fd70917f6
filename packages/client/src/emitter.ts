/** Removes what was registered; calling it twice is harmless. */
export type Disposer = () => void;

/**
 * A tiny typed event emitter. `on` returns a disposer. A listener that throws does not stop the
 * others: its error goes to `onListenerError`.
 */
export class Emitter<Events extends object> {
  readonly #listeners = new Map<keyof Events, Set<(value: never) => void>>();
  readonly #onListenerError: (event: keyof Events, error: unknown) => void;

  constructor(onListenerError: (event: keyof Events, error: unknown) => void = () => {}) {
    this.#onListenerError = onListenerError;
  }

  on<K extends keyof Events>(event: K, listener: (value: Events[K]) => void): Disposer {
    let set = this.#listeners.get(event);
    if (set === undefined) {
      set = new Set();
      this.#listeners.set(event, set);
    }
    // Wrap so the same function registered twice gets two independent registrations.
    const entry = (value: never) => listener(value as Events[K]);
    set.add(entry);
    return () => {
      set.delete(entry);
    };
  }

  emit<K extends keyof Events>(event: K, value: Events[K]): void {
    const set = this.#listeners.get(event);
    if (set === undefined) return;
    for (const listener of [...set]) {
      try {
        (listener as (v: Events[K]) => void)(value);
      } catch (error) {
        this.#onListenerError(event, error);
      }
    }
  }

  /** Number of listeners of an event. */
  count(event: keyof Events): number {
    return this.#listeners.get(event)?.size ?? 0;
  }

  /** Removes every listener. */
  clear(): void {
    this.#listeners.clear();
  }
}
