/** Removes what was registered; calling it twice is harmless. */
export type Disposer = () => void;

/**
 * A tiny typed event emitter. `on` returns a disposer. A listener that throws does not stop the
 * others: its error goes to `onListenerError`.
 */
export class Emitter<Events extends object> {
  private readonly _listeners = new Map<keyof Events, Set<(value: never) => void>>();
  private readonly _onListenerError: (event: keyof Events, error: unknown) => void;

  constructor(onListenerError: (event: keyof Events, error: unknown) => void = () => {}) {
    this._onListenerError = onListenerError;
  }

  on<K extends keyof Events>(event: K, listener: (value: Events[K]) => void): Disposer {
    let set = this._listeners.get(event);
    if (set === undefined) {
      set = new Set();
      this._listeners.set(event, set);
    }
    // Wrap so the same function registered twice gets two independent registrations.
    const entry = (value: never) => listener(value as Events[K]);
    set.add(entry);
    return () => {
      set.delete(entry);
    };
  }

  emit<K extends keyof Events>(event: K, value: Events[K]): void {
    const set = this._listeners.get(event);
    if (set === undefined) return;
    for (const listener of [...set]) {
      try {
        (listener as (v: Events[K]) => void)(value);
      } catch (error) {
        this._onListenerError(event, error);
      }
    }
  }

  /** Number of listeners of an event. */
  count(event: keyof Events): number {
    return this._listeners.get(event)?.size ?? 0;
  }

  /** Removes every listener. */
  clear(): void {
    this._listeners.clear();
  }
}
