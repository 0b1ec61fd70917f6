import { readFileSync } from 'node:fs';
import { Command, CommanderError } from 'commander';
import { BACKUP_OPTIONS, backupCommand } from './commands/backup.js';
import { DISTRIBUTOR_OPTIONS, distributorCommand } from './commands/distributor.js';
import {
  KEYS_CREATE_OPTIONS,
  KEYS_LIST_OPTIONS,
  KEYS_REVOKE_OPTIONS,
  keysCreateCommand,
  keysListCommand,
  keysRevokeCommand,
} from './commands/keys.js';
import { LISTEN_OPTIONS, listenCommand } from './commands/listen.js';
import { PUBLISH_OPTIONS, publishCommand } from './commands/publish.js';
import { RESTORE_OPTIONS, restoreCommand } from './commands/restore.js';
import { runServe, SERVE_FILE_OPTIONS, serveOptions } from './commands/serve-options.js';
import { EXIT, type ExitStatus, exitCodesHelp, exitStatusOf } from './exit.js';
import { ApiError } from './http.js';
import { addOptions, type FlagsOf, type OptionTable } from './options.js';

export { CommandError, EXIT, EXIT_CODES, type ExitStatus } from './exit.js';
export type { FlagsOf, OptionSpec, OptionTable } from './options.js';

const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as {
  version: string;
};

/** What a command's function returns: its exit status, or nothing for 0. */
type Outcome = Promise<ExitStatus> | Promise<void>;

/** The exit status of the command that ran last. */
let status: ExitStatus = EXIT.OK;

/** `publish`, `keys create`: the command's name under `pushwire`. */
function pathOf(cmd: Command): string {
  const names: string[] = [];
  for (let c: Command | null = cmd; c?.parent; c = c.parent) names.unshift(c.name());
  return names.join(' ');
}

/** Prints what stopped a command on stderr; returns its exit status. */
function report(cmd: Command, err: unknown): ExitStatus {
  // A server's refusal is told with the command that asked (`pushwire publish: 404 UNKNOWN_DEVICE: …`).
  const who = err instanceof ApiError ? `pushwire ${pathOf(cmd)}` : 'pushwire';
  process.stderr.write(`${who}: ${err instanceof Error ? err.message : String(err)}\n`);
  return exitStatusOf(err);
}

/** Runs `run` as the action of `cmd` and keeps its exit status (a thrown error is reported here). */
function act<A extends unknown[]>(cmd: Command, run: (...args: A) => Outcome): Command {
  return cmd.action(async (...args: unknown[]) => {
    try {
      status = (await run(...(args as A))) ?? EXIT.OK; // nothing: done
    } catch (err) {
      status = report(cmd, err);
    }
  });
}

/**
 * Adds command `name` to `parent`: its options from `options` (the one place they are written),
 * run by `run` with the flags they give and the command's arguments.
 */
function command<T extends OptionTable>(
  parent: Command,
  name: string,
  description: string,
  options: T,
  run: (flags: FlagsOf<T>, ...args: string[]) => Outcome,
): Command {
  const cmd = addOptions(parent.command(name).description(description), options);
  // commander calls an action with the arguments, the options and the command.
  return act(cmd, (...args: unknown[]) => run(cmd.opts<FlagsOf<T>>(), ...(args.slice(0, -2) as string[])));
}

/** The `pushwire` command line. */
export const program = new Command('pushwire')
  .description('Self-hosted push: devices keep one resilient socket; backends publish over HTTP.')
  .version(pkg.version)
  .showHelpAfterError()
  // Usage errors come back to main() as CommanderError instead of ending the process.
  .exitOverride()
  .addHelpText('after', exitCodesHelp());

const serve = addOptions(
  program
    .command('serve')
    .description(
      'run a Pushwire node (HTTP API and WebSocket on one port; embedded SQLite store, or Redis or PostgreSQL for a cluster)',
    ),
  SERVE_FILE_OPTIONS,
);
for (const option of serveOptions()) serve.addOption(option);
act(serve, () => runServe(serve));

command(
  program,
  'publish',
  'publish a message; prints the accepted message as JSON',
  PUBLISH_OPTIONS,
  publishCommand,
);

command(
  program,
  'listen',
  'connect as a device and print each message as a JSON line',
  LISTEN_OPTIONS,
  listenCommand,
);

command(
  program,
  'distributor',
  'UnifiedPush D-Bus distributor for this machine: apps register on the bus, pushes arrive over one Pushwire session',
  DISTRIBUTOR_OPTIONS,
  distributorCommand,
);

const keys = program
  .command('keys')
  .description('scoped API keys: create, list, revoke (needs an admin key)');
command(
  keys,
  'create',
  'create a key; prints it once on stdout (the server keeps only its hash)',
  KEYS_CREATE_OPTIONS,
  keysCreateCommand,
);
command(
  keys,
  'list',
  'list keys: id, label, scopes, created, last used (never the key)',
  KEYS_LIST_OPTIONS,
  keysListCommand,
);
command(
  keys,
  'revoke',
  'revoke a key: refused at once by every node',
  KEYS_REVOKE_OPTIONS,
  keysRevokeCommand,
).argument('<id>', 'key id');

command(
  program,
  'backup',
  "copy a data dir's store (and API key) to one file, consistently, while the server runs (SQLite online backup)",
  BACKUP_OPTIONS,
  backupCommand,
);

command(
  program,
  'restore',
  "put a backup in place as a data dir's store; the server on that dir must be stopped",
  RESTORE_OPTIONS,
  restoreCommand,
);

/**
 * Runs the command line `argv` (as `process.argv`) to its end: a long-running command (`serve`,
 * `listen`, `distributor`) until it stops. Never exits the process; resolves with the exit status
 * ({@link EXIT}), which only the caller (bin.ts) turns into the process's end.
 */
export async function main(argv: readonly string[] = process.argv): Promise<ExitStatus> {
  status = EXIT.OK;
  try {
    await program.parseAsync(argv);
  } catch (err) {
    // commander has printed its own errors (usage, --help, --version); anything else is told here.
    if (err instanceof CommanderError) return err.exitCode === 0 ? EXIT.OK : EXIT.FAILURE;
    return report(program, err);
  }
  return status;
}
