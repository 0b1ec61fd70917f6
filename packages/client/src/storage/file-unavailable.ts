import { ConfigError } from '../errors.js';
import type { StateStore } from './types.js';

/**
 * `fileStorage` as the neutral (browser) entry declares it. Under Node, `@pushwire/client`
 * resolves to the Node entry (export condition `node`) and this is the real, atomic file store;
 * here, without a file system, it throws a {@link ConfigError}. Declaring it keeps
 * `import { fileStorage } from '@pushwire/client'` type-checked (types come from this entry)
 * without putting `node:fs` into browser bundles.
 */
export function fileStorage(path: string): StateStore {
  throw new ConfigError(`fileStorage(${path}) needs Node: import it from @pushwire/client/node`);
}
