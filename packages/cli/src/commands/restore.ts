import { existsSync, mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { inspectBackup, RESTORE_SEQ_GAP, restoreSqlite } from '@pushwire/server';
import { DataDirLockedError, lockDataDir } from '../data-lock.js';
import { CommandError } from '../exit.js';
import type { FlagsOf, OptionTable } from '../options.js';

/** The options of `pushwire restore`. */
export const RESTORE_OPTIONS = {
  from: { flag: '--from', arg: '<file>', help: 'backup file written by pushwire backup', required: true },
  data: {
    flag: '--data',
    arg: '<dir>',
    help: 'data directory to restore into (empty, or --force)',
    env: 'PUSHWIRE_DATA',
    default: './pushwire-data',
  },
  force: {
    flag: '--force',
    help: 'replace the store the data dir holds (kept beside it as pushwire.db.before-restore-…)',
  },
} as const satisfies OptionTable;

/**
 * `pushwire restore`: puts a `pushwire backup` file in place as a data dir's store. Refuses a data
 * dir a server is running on (its lock), and one that already holds a store unless `--force` (which
 * keeps the old one beside it). Writes the backup's API key when the dir has none.
 */
export async function restoreCommand(f: FlagsOf<typeof RESTORE_OPTIONS>): Promise<void> {
  const from = resolve(f.from);
  const dir = resolve(f.data);
  const info = inspectBackup(from); // checked before anything in the data dir changes
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  let release: () => void;
  try {
    release = lockDataDir(dir);
  } catch (err) {
    if (err instanceof DataDirLockedError) {
      throw new DataDirLockedError(
        `${dir} is the data dir of a running pushwire serve (${/pid \d+/.exec(err.message)?.[0] ?? 'see its lock file'}): stop it before restoring into it`,
      );
    }
    throw err;
  }
  try {
    const db = join(dir, 'pushwire.db');
    const stamp = new Date().toISOString().replace(/[:.]/g, '-');
    if (existsSync(db)) {
      if (!f.force) {
        throw new CommandError(
          'STORE_EXISTS',
          `${dir} already holds a store: restore into an empty data dir, or give --force`,
        );
      }
      for (const suffix of ['', '-wal', '-shm']) {
        if (existsSync(db + suffix)) renameSync(db + suffix, `${db}.before-restore-${stamp}${suffix}`);
      }
    }
    restoreSqlite(from, db);
    const keyFile = join(dir, 'api-key');
    let key = 'kept';
    if (info.apiKey !== undefined && (!existsSync(keyFile) || f.force)) {
      writeFileSync(keyFile, `${info.apiKey}\n`, { mode: 0o600 });
      key = 'restored';
    }
    const { devices, streams, entries } = info.counts;
    process.stdout.write(
      `restored ${from} (taken ${new Date(info.createdAt).toISOString()}, schema ${info.schemaVersion}) into ${db}: ` +
        `${devices} devices, ${streams} streams, ${entries} entries; API key ${info.apiKey === undefined ? 'not in the backup' : key}; ` +
        `new messages are numbered ${RESTORE_SEQ_GAP} past each stream's head\n`,
    );
  } finally {
    release();
  }
}
