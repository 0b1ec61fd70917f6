import { existsSync, mkdirSync, readFileSync, realpathSync, writeFileSync } from 'node:fs';
import { delimiter, join, resolve } from 'node:path';
import {
  type Bus,
  createPushwireServer,
  ensureDemoKey,
  newApiKey,
  PostgresBus,
  PostgresStore,
  RedisBus,
  RedisStore,
  SqliteStore,
  type Store,
} from '@pushwire/server';
import { destination, type Logger, pino } from 'pino';
import { lockDataDir } from '../data-lock.js';
import { EXIT, type ExitStatus } from '../exit.js';
import { SETTINGS } from '../serve-settings.js';
import { type WakeFlags, wakeOptionsOf } from '../wake-options.js';

/** The resolved settings of `pushwire serve` (serve-settings.ts), by name. */
export interface ServeFlags extends WakeFlags {
  host: string;
  port: number;
  data: string;
  apiKey?: string;
  drainWindow: number;
  logLevel: string;
  tlsCert?: string;
  tlsKey?: string;
  publicUrl?: string;
  redis?: string;
  redisCluster?: boolean;
  postgres?: string;
  nodeId?: string;
  webPush: boolean;
  autopush?: boolean;
  /** Every other setting, passed to the server through its `option`. */
  [setting: string]: unknown;
}

/** Server options of the settings that name one (`webPush.x` for a Web Push option). */
export function serverOptionsOf(f: ServeFlags): {
  server: Record<string, unknown>;
  webPush: Record<string, unknown>;
} {
  const server: Record<string, unknown> = {};
  const webPush: Record<string, unknown> = {};
  for (const s of SETTINGS) {
    const value = f[s.name];
    if (s.option === undefined || value === undefined) continue;
    if (s.option.startsWith('webPush.')) webPush[s.option.slice('webPush.'.length)] = value;
    else server[s.option] = value;
  }
  return { server, webPush };
}

/** The store and bus of this node, and what to tell the operator about them. */
interface Engine {
  store: Store;
  bus?: Bus;
  lines: string[];
}

/**
 * SQLite in the data dir; with --postgres the store on PostgreSQL (bus on LISTEN/NOTIFY, or on
 * Redis with --redis too); with --redis alone store and bus on Redis. Durability is checked.
 */
async function openEngine(f: ServeFlags, dataDir: string, logger: Logger): Promise<Engine> {
  if (f.postgres) return openPostgres(f, f.postgres, logger);
  if (!f.redis) {
    const path = join(dataDir, 'pushwire.db');
    lockDataDir(dataDir);
    return { store: SqliteStore.open({ path }), lines: [`Data dir: ${dataDir}  (SQLite store)`] };
  }
  const url = f.redis;
  const cluster = f.redisCluster === true;
  const store = await RedisStore.connect({ url, cluster });
  let bus: RedisBus | undefined;
  try {
    bus = await redisBus(f, url, logger);
    const d = await store.checkDurability();
    const rdb = d.rdb === '' ? 'off' : d.rdb === 'unknown' ? 'unknown' : `save "${d.rdb}"`;
    const where = `${url.replace(/\/\/([^:@/]*):[^@/]*@/, '//$1:***@')}${cluster ? ' (Redis Cluster)' : ''}`;
    logger.info({ redis: where, version: bus.version, node: bus.nodeId, ...d }, 'redis');
    if (!d.aof) logger.warn(d.note);
    return {
      store,
      bus,
      lines: [
        `Redis ${bus.version || '(version hidden)'} at ${where}: AOF ${d.aof ? 'on' : 'off'}, appendfsync ${d.appendfsync}, RDB ${rdb}`,
        `          ${d.note}`,
        `Node id:  ${bus.nodeId}`,
      ],
    };
  } catch (err) {
    await bus?.close();
    await store.close();
    throw err;
  }
}

/** A connection URL with its password hidden. */
const hidePassword = (url: string) => url.replace(/\/\/([^:@/]*):[^@/]*@/, '//$1:***@');

/** The Redis bus of this node. */
function redisBus(f: ServeFlags, url: string, logger: Logger): Promise<RedisBus> {
  return RedisBus.connect({
    url,
    cluster: f.redisCluster === true,
    logger,
    ...(f.nodeId !== undefined && { nodeId: f.nodeId }),
  });
}

/** The store on PostgreSQL; the bus on LISTEN/NOTIFY, or on Redis when --redis is given too. */
async function openPostgres(f: ServeFlags, url: string, logger: Logger): Promise<Engine> {
  const store = await PostgresStore.connect({ url });
  let bus: Bus | undefined;
  try {
    const d = await store.checkDurability();
    const where = hidePassword(url);
    const onRedis = f.redis ? await redisBus(f, f.redis, logger) : undefined;
    bus =
      onRedis ??
      (await PostgresBus.connect({ url, logger, ...(f.nodeId !== undefined && { nodeId: f.nodeId }) }));
    logger.info({ postgres: where, node: bus.nodeId, ...d }, 'postgres');
    if (d.fsync !== 'on' || d.synchronousCommit === 'off') logger.warn(d.note);
    return {
      store,
      bus,
      lines: [
        `PostgreSQL ${d.version} at ${where} (schema ${store.schema}): fsync ${d.fsync}, synchronous_commit ${d.synchronousCommit}`,
        `          ${d.note}`,
        `Bus:      ${onRedis ? `Redis at ${hidePassword(f.redis!)}` : 'PostgreSQL LISTEN/NOTIFY'}`,
        `Node id:  ${bus.nodeId}`,
      ],
    };
  } catch (err) {
    await bus?.close();
    await store.close();
    throw err;
  }
}

/** Reads --tls-cert and --tls-key: both or neither. */
function tlsOf(f: ServeFlags): { cert: Buffer; key: Buffer } | undefined {
  if (!f.tlsCert && !f.tlsKey) return undefined;
  if (!f.tlsCert || !f.tlsKey) throw new Error('--tls-cert and --tls-key go together');
  return { cert: readFileSync(f.tlsCert), key: readFileSync(f.tlsKey) };
}

/** Reads the data dir's API key, or creates one on first start. */
function apiKeyFor(dataDir: string): { key: string; created: boolean } {
  const file = join(dataDir, 'api-key');
  if (existsSync(file)) return { key: readFileSync(file, 'utf8').trim(), created: false };
  const key = newApiKey();
  writeFileSync(file, `${key}\n`, { mode: 0o600 });
  return { key, created: true };
}

/** Quotes a shell word when it needs it. */
const shellWord = (w: string): string => (/^[\w@%+=:,./-]+$/.test(w) ? w : `'${w.replace(/'/g, `'\\''`)}'`);

/**
 * How to run this very CLI from any directory: `pushwire` when that name on the PATH is this
 * program (a global install), else `node /full/path/to/bin/pushwire.js`. (`npx pushwire` only works
 * inside the clone or the project that installed it; elsewhere npx would fetch an unrelated package.)
 */
export function cliCommand(): string {
  let self: string;
  try {
    self = realpathSync(process.argv[1] ?? '');
  } catch {
    return 'npx pushwire';
  }
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    // npm scripts (`npm start`) put node_modules/.bin on PATH for themselves only: a pushwire found
    // there is not one the user's other terminals have.
    if (!dir || /[\\/]node_modules[\\/]\.bin$/.test(dir)) continue;
    try {
      if (realpathSync(join(dir, 'pushwire')) === self) return 'pushwire';
    } catch {}
  }
  return `${shellWord(process.execPath)} ${shellWord(self)}`;
}

/**
 * `pushwire serve`: one node on the embedded SQLite store, or one node of a cluster on Redis
 * (--redis) or PostgreSQL (--postgres); drains on SIGTERM/SIGINT. Resolves when it has stopped: 0
 * once drained, 1 when the drain failed or a second signal came first.
 */
export async function serveCommand(f: ServeFlags): Promise<ExitStatus> {
  const shared = f.postgres ? '--postgres' : f.redis ? '--redis' : undefined;
  if (shared && !f.apiKey) {
    throw new Error(
      `${shared}: every node of a cluster must accept the same key: give --api-key (or PUSHWIRE_API_KEY)`,
    );
  }
  const dataDir = resolve(f.data);
  // Private to the service account: the database, the API key and the Web Push keys live here.
  if (!shared) mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const { key, created } = f.apiKey ? { key: f.apiKey, created: false } : apiKeyFor(dataDir);
  const logger = pino({ level: f.logLevel, base: { pid: process.pid } }, destination(2));
  const tls = tlsOf(f);
  const wake = wakeOptionsOf(f);
  const { store, bus, lines } = await openEngine(f, dataDir, logger);
  const options = serverOptionsOf(f);
  // The demo page's key (register scope, demo/* topics): made once, kept in the data dir.
  if (shared) mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const demo = store.apiKeys
    ? await ensureDemoKey(store.apiKeys, join(dataDir, 'demo-key'), Date.now())
    : undefined;
  const server = createPushwireServer({
    ...options.server,
    store,
    ...(bus && { bus }),
    apiKeys: [key],
    ...(demo && { demoKey: demo.key }),
    logger,
    ...(tls && { tls }),
    webPush: f.webPush && options.webPush,
    ...(wake && { wake }),
    ...(f.autopush && { autopush: true }),
  });
  // Signals are handled from before the port opens, so a SIGTERM at any moment drains cleanly.
  let stopping = false;
  let finish!: (status: ExitStatus) => void;
  const stopped = new Promise<ExitStatus>((resolve) => {
    finish = resolve;
  });
  const stop = (signal: string) => {
    if (stopping) {
      logger.warn('second signal: exiting now');
      finish(EXIT.FAILURE);
      return;
    }
    stopping = true;
    logger.info({ signal, windowMs: f.drainWindow }, 'draining');
    server.drain().then(
      () => {
        logger.info('drained, bye');
        finish(EXIT.OK);
      },
      (err: unknown) => {
        logger.error({ err }, 'drain failed');
        finish(EXIT.FAILURE);
      },
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));

  const url = await server.listen({ host: f.host, port: f.port });
  // The admin key is printed only when it was generated now (once); otherwise where it is.
  const keyFile = join(dataDir, 'api-key');
  const keyLine = f.apiKey
    ? 'Admin key: from --api-key / PUSHWIRE_API_KEY (not shown)'
    : created
      ? `Admin key: ${key}  (new, saved in ${keyFile}; shown only this once)`
      : `Admin key: in ${keyFile}`;
  // The quick start's device state lives in the data dir (never a stray file in the clone).
  const state = f.redis ? 'pushwire-device.json' : join(dataDir, 'device.json');
  const cli = cliCommand();
  process.stdout.write(
    [
      `Pushwire listening on ${url}  (WebSocket ${url.replace(/^http/, 'ws')}/v1/connect)`,
      ...lines,
      ...(server.autopush
        ? [`Autopush: ${url.replace(/^http/, 'ws')}/v1/autopush  (Firefox dom.push.serverURL)`]
        : []),
      keyLine,
      `Demo:      ${url}/demo   Dashboard: ${url}/dashboard (asks for a key)   API docs: ${url}/docs`,
      '',
      'See a push arrive — in two more terminals, from any directory. The admin key goes in',
      'PUSHWIRE_API_KEY, not on the command line (arguments are visible to other local users):',
      ...(f.apiKey ? [] : [`  export PUSHWIRE_API_KEY=$(cat ${shellWord(keyFile)})`]),
      `  ${cli} listen --server ${url} --state ${shellWord(state)} --user demo`,
      `  ${cli} publish --server ${url} --user demo --title "Hello" --body "from Pushwire"`,
      `Scoped keys (publish, register, status): ${cli} keys create --help`,
      '',
    ].join('\n'),
  );
  if (!f.publicUrl && ['0.0.0.0', '::', '[::]'].includes(f.host)) {
    logger.warn(
      { url },
      'no --public-url: Web Push endpoints and the VAPID audience use the listen address; set --public-url to the address publishers reach',
    );
  }
  logger.info(
    { url, ...(shared ? { node: bus?.nodeId } : { dataDir }), wake: server.wake?.providers ?? [] },
    'listening',
  );
  return stopped;
}
