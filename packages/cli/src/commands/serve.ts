import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import {
  type Bus,
  createPushwireServer,
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
  postgres?: string;
  nodeId?: string;
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

/**
 * `pushwire serve`: one node on the embedded SQLite store, or one node of a cluster on Redis
 * (--redis) or PostgreSQL (--postgres); drains on SIGTERM/SIGINT.
 */
export async function serveCommand(f: ServeFlags): Promise<void> {
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
  process.stdout.write(
    [
      `Pushwire listening on ${url}  (WebSocket ${url.replace(/^http/, 'ws')}/v1/connect)`,
      ...lines,
      `API key:  ${key}  ${keyNote}`,
      `Demo:     ${url}/demo#key=${key}   Dashboard: ${url}/dashboard#key=${key}   API docs: ${url}/docs`,
      '',
      'See a push arrive — in a second terminal:',
      `  npx pushwire listen --server ${url} --api-key ${key} --state ./device.json --user demo`,
      'and in a third:',
      `  npx pushwire publish --server ${url} --api-key ${key} --user demo --title "Hello" --body "from Pushwire"`,
      '',
    ].join('\n'),
  );
  logger.info(
    { url, ...(shared ? { node: bus?.nodeId } : { dataDir }), wake: server.wake?.providers ?? [] },
    'listening',
  );
}
