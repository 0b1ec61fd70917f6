import { StorageError } from '../errors.js';
import { parseState } from './parse.js';
import type { StateStore } from './types.js';

/** The part of the Web Storage API the adapter uses (localStorage, sessionStorage, or a polyfill). */
export interface StorageLike {
  getItem(key: string): string | null;
  setItem(key: string, value: string): void;
}

/**
 * Keeps the state as JSON under `key` in a Web Storage object (default `globalThis.localStorage`).
 * Each save is one synchronous `setItem`, so it is atomic. Two tabs with the same key share one
 * device: the server lets only one session live (the other gets `REPLACED`), so give each tab its
 * own key, or use one tab (e.g. a SharedWorker) for the connection.
 * @example createClient({ url, register: { apiKey }, storage: localStorageStorage('pushwire:chat') })
 */
export function localStorageStorage(key = 'pushwire', storage?: StorageLike): StateStore {
  const target = (): StorageLike => {
    const s = storage ?? (globalThis as { localStorage?: StorageLike }).localStorage;
    if (!s) throw new StorageError('no localStorage here: pass a Storage');
    return s;
  };
  return {
    async load() {
      let text: string | null;
      try {
        text = target().getItem(key);
      } catch (cause) {
        throw cause instanceof StorageError ? cause : new StorageError(`cannot read "${key}"`, { cause });
      }
      return text === null ? undefined : parseState(text, `storage key "${key}"`);
    },
    async save(state) {
      try {
        target().setItem(key, JSON.stringify(state));
      } catch (cause) {
        throw cause instanceof StorageError ? cause : new StorageError(`cannot write "${key}"`, { cause });
      }
    },
  };
}
