import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { backupSqlite } from '@pushwire/server';
import { CommandError } from '../exit.js';
import type { FlagsOf, OptionTable } from '../options.js';

/** The options of `pushwire backup`. */
export const BACKUP_OPTIONS = {
  data: {
    flag: '--data',
    arg: '<dir>',
    help: 'data directory of the server',
    env: 'PUSHWIRE_DATA',
    default: './pushwire-data',
  },
  out: {
    flag: '--out',
    arg: '<file>',
    help: 'backup file to write (replaced atomically when complete)',
    required: true,
  },
} as const satisfies OptionTable;

/**
 * `pushwire backup`: a consistent copy of a data dir's store (and its API key) in one file, taken
 * while the server runs (SQLite's online backup API); `pushwire restore` puts it back.
 */
export async function backupCommand(f: FlagsOf<typeof BACKUP_OPTIONS>): Promise<void> {
  const dir = resolve(f.data);
  const db = join(dir, 'pushwire.db');
  if (!existsSync(db)) throw new CommandError('NO_STORE', `${dir} holds no Pushwire store (no pushwire.db)`);
  const out = resolve(f.out);
  const keyFile = join(dir, 'api-key');
  const apiKey = existsSync(keyFile) ? readFileSync(keyFile, 'utf8').trim() : undefined;
  const started = Date.now();
  const info = await backupSqlite(db, out, apiKey === undefined ? {} : { apiKey });
  const { devices, streams, entries } = info.counts;
  process.stdout.write(
    `backup of ${db} written to ${out}: ${info.bytes} bytes, schema ${info.schemaVersion}, ` +
      `${devices} devices, ${streams} streams, ${entries} entries${apiKey ? ', API key' : ''} ` +
      `(${Date.now() - started} ms)\n`,
  );
}
