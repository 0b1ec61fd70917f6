import { copyState } from './parse.js';
import type { ClientState, StateStore } from './types.js';

/**
 * Keeps the state in memory: lost when the process ends (the default; fine for short-lived
 * listeners and tests, not for an app that must not see a message twice after a restart).
 * Stores copies, so the caller's object and the stored one never alias.
 * @example createClient({ url, credentials, storage: memoryStorage() })
 */
export function memoryStorage(initial?: ClientState): StateStore {
  let saved = initial === undefined ? undefined : copyState(initial);
  return {
    load: async () => (saved === undefined ? undefined : copyState(saved)),
    save: async (state) => {
      saved = copyState(state);
    },
  };
}
