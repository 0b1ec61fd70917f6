import { StorageError } from '../errors.js';
import { parseState } from './parse.js';
import type { StateStore } from './types.js';

/**
 * An asynchronous key-value store: React Native's `@react-native-async-storage/async-storage`,
 * or a wrapper around MMKV, SecureStore, a file — anything with these two methods.
 */
export interface AsyncStorageLike {
  getItem(key: string): Promise<string | null | undefined>;
  setItem(key: string, value: string): Promise<void>;
}

/**
 * Keeps the state as JSON under `key` in an {@link AsyncStorageLike}. Each save is one `setItem`,
 * and the client waits for it before acknowledging, so a killed app resumes where it stopped.
 * @example
 * import AsyncStorage from '@react-native-async-storage/async-storage';
 * createClient({ url, register: { apiKey }, storage: asyncStorage(AsyncStorage, 'pushwire') });
 */
export function asyncStorage(storage: AsyncStorageLike, key = 'pushwire'): StateStore {
  if (storage === null || typeof storage !== 'object' || typeof storage.getItem !== 'function') {
    throw new StorageError('asyncStorage needs an object with getItem and setItem');
  }
  return {
    async load() {
      let text: string | null | undefined;
      try {
        text = await storage.getItem(key);
      } catch (cause) {
        throw new StorageError(`cannot read "${key}"`, { cause });
      }
      return text === null || text === undefined ? undefined : parseState(text, `storage key "${key}"`);
    },
    async save(state) {
      try {
        await storage.setItem(key, JSON.stringify(state));
      } catch (cause) {
        throw new StorageError(`cannot write "${key}"`, { cause });
      }
    },
  };
}
