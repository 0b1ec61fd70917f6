import { readFileSync } from 'node:fs';
import { Command, InvalidArgumentError, Option } from 'commander';
import { backupCommand } from './commands/backup.js';
import { distributorCommand } from './commands/distributor.js';
import {
  keysCreateCommand,
  keysListCommand,
  keysRevokeCommand,
  parseRate,
  parseScopes,
} from './commands/keys.js';
import { listenCommand } from './commands/listen.js';
import { publishCommand } from './commands/publish.js';
import { restoreCommand } from './commands/restore.js';
import { runServe, serveOptions } from './commands/serve-options.js';

const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as {
  version: string;
};

export const int =
  (name: string, min = 0) =>
  (v: string) => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < min)
      throw new InvalidArgumentError(`${name} must be an integer ≥ ${min}`);
    return n;
  };

/** The `pushwire` command line. */
export const program = new Command('pushwire')
  .description('Self-hosted push: devices keep one resilient socket; backends publish over HTTP.')
  .version(pkg.version)
  .showHelpAfterError();

const serve = program
  .command('serve')
  .description(
    'run a Pushwire node (HTTP API and WebSocket on one port; embedded SQLite store, or Redis or PostgreSQL for a cluster)',
  )
  .addOption(
    new Option(
      '--config <file>',
      'configuration file (TOML); flags and PUSHWIRE_* variables override it',
    ).env('PUSHWIRE_CONFIG'),
  )
  .option('--print-config', 'print the effective configuration (secrets redacted) and exit');
for (const option of serveOptions()) serve.addOption(option);
serve.action((_opts: unknown, cmd: Command) => runServe(cmd));

program
  .command('publish')
  .description('publish a message; prints the accepted message as JSON')
  .requiredOption(
    '--server <url>',
    'server base URL, e.g. http://127.0.0.1:8787',
    process.env.PUSHWIRE_SERVER,
  )
  .requiredOption('--api-key <key>', 'API key', process.env.PUSHWIRE_API_KEY)
  .option('--device <id>', 'send to one device')
  .option('--user <alias>', "send to all of a user's devices")
  .option('--topic <name>', 'send to every subscriber of a topic')
  .option('--title <text>', 'notification title')
  .option('--body <text>', 'notification body')
  .option('--data <json>', 'JSON payload for the app')
  .option('--ttl <seconds>', 'time to live; 0 = only if online now', int('--ttl'))
  .option('--collapse-key <key>', 'a newer message with this key replaces an undelivered older one')
  .addOption(
    new Option('--urgency <urgency>', 'delivery urgency').choices(['very-low', 'low', 'normal', 'high']),
  )
  .option('--id <id>', 'message id (idempotency key)')
  .action(publishCommand);

program
  .command('listen')
  .description('connect as a device and print each message as a JSON line')
  .requiredOption(
    '--server <urls>',
    'server base URL, or several separated by commas (tried in turn on failure)',
    process.env.PUSHWIRE_SERVER,
  )
  .option('--api-key <key>', 'API key, to register on first run', process.env.PUSHWIRE_API_KEY)
  .requiredOption('--state <file>', 'state file: credentials, cursors, dedupe window')
  .option('--user <alias>', 'register the device for this user')
  .option(
    '--topic <name>',
    'subscribe to a topic (repeatable)',
    (v: string, all: string[]) => [...all, v],
    [] as string[],
  )
  .option('--exec <cmd>', 'run a shell command per message, with the message JSON on stdin')
  .option('--notify', 'show a desktop notification per message (notify-send)')
  .option('--heartbeat <seconds|adaptive>', 'heartbeat interval in seconds, or "adaptive"', 'adaptive')
  .option('--network-key <key>', 'name of the current network (adaptive heartbeat memory)')
  .option(
    '--webpush',
    'take Web Push messages: print the subscription for your backend as the first line, decrypt each message',
  )
  .option(
    '--vapid-key <key>',
    "your backend's VAPID public key: bind the subscription to it (implies --webpush)",
  )
  .option(
    '--rotate-token',
    'rotate the device token once connected (also on SIGHUP); the state file keeps the new one',
  )
  .action(listenCommand);

program
  .command('distributor')
  .description(
    'UnifiedPush D-Bus distributor for this machine: apps register on the bus, pushes arrive over one Pushwire session',
  )
  .requiredOption(
    '--server <url>',
    'server base URL, e.g. https://push.example.com',
    process.env.PUSHWIRE_SERVER,
  )
  .option(
    '--api-key <key>',
    'API key, to register this machine as a device on first run',
    process.env.PUSHWIRE_API_KEY,
  )
  .requiredOption('--state <file>', 'state file: device credentials, cursor, registered apps')
  .option('--bus <session|address>', 'the D-Bus to serve on: the session bus, or a D-Bus address', 'session')
  .action(distributorCommand);

const keys = program
  .command('keys')
  .description('scoped API keys: create, list, revoke (needs an admin key)');
const conn = (c: Command) =>
  c
    .requiredOption('--server <url>', 'server base URL', process.env.PUSHWIRE_SERVER)
    .requiredOption(
      '--api-key <key>',
      'admin API key (prefer PUSHWIRE_API_KEY: arguments are visible to other local users)',
      process.env.PUSHWIRE_API_KEY,
    );
conn(
  keys
    .command('create')
    .description('create a key; prints it once on stdout (the server keeps only its hash)')
    .requiredOption(
      '--scope <scopes>',
      'publish, register, status, admin (comma-separated, repeatable)',
      parseScopes,
      [] as string[],
    )
    .option(
      '--topics <pattern>',
      'publish: topic pattern it may publish to (repeatable; e.g. news/*)',
      (v: string, all: string[]) => [...all, v],
      [] as string[],
    )
    .option(
      '--subscribe <pattern>',
      'register: topic pattern its devices may subscribe to (repeatable; e.g. demo/*, user-{user}/*)',
      (v: string, all: string[]) => [...all, v],
      [] as string[],
    )
    .option('--rate <n/s>', 'requests per second (token bucket), e.g. 10/s', parseRate)
    .option('--label <text>', 'what the key is for'),
).action(keysCreateCommand);
conn(keys.command('list').description('list keys: id, label, scopes, created, last used (never the key)'))
  .option('--json', 'one JSON object per line')
  .action(keysListCommand);
conn(
  keys
    .command('revoke')
    .description('revoke a key: refused at once by every node')
    .argument('<id>', 'key id'),
).action(keysRevokeCommand);

program
  .command('backup')
  .description(
    "copy a data dir's store (and API key) to one file, consistently, while the server runs (SQLite online backup)",
  )
  .addOption(
    new Option('--data <dir>', 'data directory of the server')
      .env('PUSHWIRE_DATA')
      .default('./pushwire-data'),
  )
  .requiredOption('--out <file>', 'backup file to write (replaced atomically when complete)')
  .action(backupCommand);

program
  .command('restore')
  .description("put a backup in place as a data dir's store; the server on that dir must be stopped")
  .requiredOption('--from <file>', 'backup file written by pushwire backup')
  .addOption(
    new Option('--data <dir>', 'data directory to restore into (empty, or --force)')
      .env('PUSHWIRE_DATA')
      .default('./pushwire-data'),
  )
  .option('--force', 'replace the store the data dir holds (kept beside it as pushwire.db.before-restore-…)')
  .action(restoreCommand);
