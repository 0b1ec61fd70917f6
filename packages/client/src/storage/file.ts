import { mkdir, open, readFile, rename, unlink } from 'node:fs/promises';
import { dirname } from 'node:path';
import { StorageError } from '../errors.js';
import { parseState } from './parse.js';
import type { StateStore } from './types.js';

let tmpCounter = 0;

/**
 * Keeps the state as JSON in a file (Node only). Each save writes a temporary file next to it,
 * fsyncs it and renames it over the old one, so a crash at any moment leaves either the old or
 * the new state, never a torn one. Saves are serialised. Missing directories are created.
 * @example createClient({ url, register: { apiKey }, storage: fileStorage('./pushwire-state.json') })
 */
export function fileStorage(path: string): StateStore {
  let chain: Promise<void> = Promise.resolve();
  return {
    async load() {
      let text: string;
      try {
        text = await readFile(path, 'utf8');
      } catch (cause) {
        if ((cause as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
        throw new StorageError(`cannot read ${path}`, { cause });
      }
      return parseState(text, path);
    },
    save(state) {
      // `deviceId` also at the top level: people and scripts look for it there (`jq .deviceId`).
      const doc = state.credentials ? { deviceId: state.credentials.deviceId, ...state } : state;
      const run = chain.then(() => writeAtomically(path, JSON.stringify(doc, null, 2)));
      chain = run.catch(() => {});
      return run;
    },
  };
}

async function writeAtomically(path: string, text: string): Promise<void> {
  const tmp = `${path}.${process.pid}.${++tmpCounter}.tmp`;
  try {
    await mkdir(dirname(path), { recursive: true });
    const file = await open(tmp, 'w', 0o600);
    try {
      await file.writeFile(text, 'utf8');
      await file.sync();
    } finally {
      await file.close();
    }
    await rename(tmp, path);
  } catch (cause) {
    await unlink(tmp).catch(() => {});
    throw new StorageError(`cannot write ${path}`, { cause });
  }
}
