import { existsSync, mkdirSync, readFileSync, realpathSync, writeFileSync } from 'node:fs';
import { delimiter, join, resolve } from 'node:path';
import {
  type Bus,
  createPushwireServer,
  newApiKey,
  RedisBus,
  RedisStore,
  SqliteStore,
  type Store,
} from '@pushwire/server';
import { destination, type Logger, pino } from 'pino';
import { lockDataDir } from '../data-lock.js';
import { type LimitFlags, limitsOf } from '../limit-options.js';
import { type WakeFlags, wakeOptionsOf } from '../wake-options.js';

interface ServeFlags extends LimitFlags, WakeFlags {
  host: string;
  port: number;
  data: string;
  apiKey?: string;
  maxPayload: number;
  drainWindow: number;
  admissionRate: number;
  admissionBurst: number;
  logLevel: string;
  tlsCert?: string;
  tlsKey?: string;
  publicUrl?: string;
  redis?: string;
  redisCluster?: boolean;
  nodeId?: string;
}

/** The store and bus of this node, and what to tell the operator about them. */
interface Engine {
  store: Store;
  bus?: Bus;
  lines: string[];
}

/** SQLite in the data dir, or (with --redis) store and bus on Redis after checking its durability. */
async function openEngine(f: ServeFlags, dataDir: string, logger: Logger): Promise<Engine> {
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
    bus = await RedisBus.connect({
      url,
      cluster,
      logger,
      ...(f.nodeId !== undefined && { nodeId: f.nodeId }),
    });
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
    if (!dir) continue;
    try {
      if (realpathSync(join(dir, 'pushwire')) === self) return 'pushwire';
    } catch {}
  }
  return `${shellWord(process.execPath)} ${shellWord(self)}`;
}

/**
 * `pushwire serve`: one node on the embedded SQLite store, or (--redis) one node of a cluster on
 * Redis; drains on SIGTERM/SIGINT.
 */
export async function serveCommand(f: ServeFlags): Promise<void> {
  if (f.redis && !f.apiKey) {
    throw new Error(
      '--redis: every node of a cluster must accept the same key: give --api-key (or PUSHWIRE_API_KEY)',
    );
  }
  const dataDir = resolve(f.data);
  // Private to the service account: the database, the API key and the Web Push keys live here.
  if (!f.redis) mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const { key, created } = f.apiKey ? { key: f.apiKey, created: false } : apiKeyFor(dataDir);
  const logger = pino({ level: f.logLevel, base: { pid: process.pid } }, destination(2));
  const tls = tlsOf(f);
  const wake = wakeOptionsOf(f);
  const { store, bus, lines } = await openEngine(f, dataDir, logger);
  const limits = limitsOf(f);
  const server = createPushwireServer({
    store,
    ...(bus && { bus }),
    apiKeys: [key],
    maxPayload: f.maxPayload,
    drainWindowMs: f.drainWindow,
    admissionRate: f.admissionRate,
    admissionBurst: f.admissionBurst,
    logger,
    ...limits.server,
    ...(tls && { tls }),
    webPush: { ...limits.webPush, ...(f.publicUrl && { publicUrl: f.publicUrl }) },
    ...(wake && { wake }),
  });
  // Signals are handled from before the port opens, so a SIGTERM at any moment drains cleanly.
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) {
      logger.warn('second signal: exiting now');
      process.exit(1);
    }
    stopping = true;
    logger.info({ signal, windowMs: f.drainWindow }, 'draining');
    server.drain().then(
      () => {
        logger.info('drained, bye');
        process.exit(0);
      },
      (err: unknown) => {
        logger.error({ err }, 'drain failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));

  const url = await server.listen({ host: f.host, port: f.port });
  const keyNote = f.apiKey
    ? '(from --api-key / PUSHWIRE_API_KEY)'
    : created
      ? `(new, saved in ${join(dataDir, 'api-key')})`
      : `(from ${join(dataDir, 'api-key')})`;
  // The quick start's device state lives in the data dir (never a stray file in the clone).
  const state = f.redis ? 'pushwire-device.json' : join(dataDir, 'device.json');
  const cli = cliCommand();
  process.stdout.write(
    [
      `Pushwire listening on ${url}  (WebSocket ${url.replace(/^http/, 'ws')}/v1/connect)`,
      ...lines,
      `API key:  ${key}  ${keyNote}`,
      `Demo:     ${url}/demo#key=${key}   Dashboard: ${url}/dashboard#key=${key}   API docs: ${url}/docs`,
      '',
      'See a push arrive — in a second terminal (from any directory):',
      `  ${cli} listen --server ${url} --api-key ${key} --state ${shellWord(state)} --user demo`,
      'and in a third:',
      `  ${cli} publish --server ${url} --api-key ${key} --user demo --title "Hello" --body "from Pushwire"`,
      '',
    ].join('\n'),
  );
  logger.info(
    { url, ...(f.redis ? { node: bus?.nodeId } : { dataDir }), wake: server.wake?.providers ?? [] },
    'listening',
  );
}
