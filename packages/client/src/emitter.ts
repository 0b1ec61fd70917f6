/** Removes what was registered; calling it twice is harmless. */
export type Disposer = () => void;

/**
 * A tiny typed event emitter. `on` returns a disposer. A listener that throws does not stop the
 * others: its error goes to `onListenerError`.
 */
export interface Emitter<Events extends object> {
  on<K extends keyof Events>(event: K, listener: (value: Events[K]) => void): Disposer;
  emit<K extends keyof Events>(event: K, value: Events[K]): void;
  /** Removes every listener. */
  clear(): void;
}

export function createEmitter<Events extends object>(
  onListenerError: (event: keyof Events, error: unknown) => void = () => {},
): Emitter<Events> {
  const listeners = new Map<keyof Events, Set<(value: never) => void>>();
  return {
    on(event, listener) {
      let set = listeners.get(event);
      if (set === undefined) {
        set = new Set();
        listeners.set(event, set);
      }
      // Wrap so the same function registered twice gets two independent registrations.
      const entry = (value: never) => listener(value);
      set.add(entry);
      return () => {
        set.delete(entry);
      };
    },
    emit(event, value) {
      for (const listener of [...(listeners.get(event) ?? [])]) {
        try {
          (listener as (v: typeof value) => void)(value);
        } catch (error) {
          onListenerError(event, error);
        }
      }
    },
    clear: () => listeners.clear(),
  };
}
