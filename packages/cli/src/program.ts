import { readFileSync } from 'node:fs';
import { Command, InvalidArgumentError, Option } from 'commander';
import { listenCommand } from './commands/listen.js';
import { publishCommand } from './commands/publish.js';
import { serveCommand } from './commands/serve.js';
import { limitOptions } from './limit-options.js';
import { wakeCliOptions } from './wake-options.js';

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
  .addOption(new Option('--host <host>', 'address to listen on').env('PUSHWIRE_HOST').default('127.0.0.1'))
  .addOption(
    new Option('--port <port>', 'port to listen on')
      .env('PUSHWIRE_PORT')
      .default(8787)
      .argParser(int('--port')),
  )
  .addOption(
    new Option('--data <dir>', 'data directory (store and API key)')
      .env('PUSHWIRE_DATA')
      .default('./pushwire-data'),
  )
  .addOption(
    new Option(
      '--api-key <key>',
      'admin API key (default: created on first start, kept in the data dir)',
    ).env('PUSHWIRE_API_KEY'),
  )
  .addOption(
    new Option('--max-payload <bytes>', 'largest data+notification of one message')
      .env('PUSHWIRE_MAX_PAYLOAD')
      .default(4096)
      .argParser(int('--max-payload', 1)),
  )
  .addOption(
    new Option('--drain-window <ms>', 'on SIGTERM, spread client reconnects over this window')
      .env('PUSHWIRE_DRAIN_WINDOW')
      .default(10_000)
      .argParser(int('--drain-window')),
  )
  .addOption(
    new Option('--admission-rate <n>', 'admission control: new sessions per second')
      .env('PUSHWIRE_ADMISSION_RATE')
      .default(5000)
      .argParser(int('--admission-rate', 1)),
  )
  .addOption(
    new Option('--admission-burst <n>', 'admission control: burst of new sessions above the rate')
      .env('PUSHWIRE_ADMISSION_BURST')
      .default(5000)
      .argParser(int('--admission-burst', 1)),
  )
  .addOption(
    new Option('--tls-cert <file>', 'PEM certificate chain: serve HTTPS and WSS on the port').env(
      'PUSHWIRE_TLS_CERT',
    ),
  )
  .addOption(new Option('--tls-key <file>', 'PEM private key of --tls-cert').env('PUSHWIRE_TLS_KEY'))
  .addOption(
    new Option(
      '--public-url <url>',
      'base URL publishers reach this server at (Web Push endpoints and VAPID audience)',
    ).env('PUSHWIRE_PUBLIC_URL'),
  )
  .addOption(
    new Option(
      '--redis <url>',
      'cluster mode: store and bus on Redis (redis://host:port); needs --api-key',
    ).env('PUSHWIRE_REDIS'),
  )
  .addOption(
    new Option('--redis-cluster', '--redis names one node of a Redis Cluster').env('PUSHWIRE_REDIS_CLUSTER'),
  )
  .addOption(
    new Option(
      '--postgres <url>',
      'cluster mode: store on PostgreSQL (postgres://user:pass@host:port/db), bus on LISTEN/NOTIFY or on --redis; needs --api-key',
    ).env('PUSHWIRE_POSTGRES'),
  )
  .addOption(
    new Option('--node-id <id>', "this node's id in the cluster (default: random)").env('PUSHWIRE_NODE_ID'),
  )
  .addOption(
    new Option('--log-level <level>', 'log level')
      .env('PUSHWIRE_LOG_LEVEL')
      .default('info')
      .choices(['trace', 'debug', 'info', 'warn', 'error', 'silent']),
  );
for (const option of limitOptions()) serve.addOption(option);
for (const option of wakeCliOptions()) serve.addOption(option);
serve.action(serveCommand);

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
  .action(listenCommand);
