import { Cluster, type Redis } from 'ioredis';
import { StoreError } from './errors.js';
import type { RedisStoreOptions } from './redis.js';
import { commandConnection } from './redis-connection.js';
import { SCRIPTS, type ScriptCommands } from './redis-lua.js';

/** Server checks and error mapping of the Redis store (connections: redis-connection.ts). */

/** The ioredis client (one server or a cluster), with the store's scripts as methods. */
export type RedisClient = (Redis | Cluster) & ScriptCommands;

const MIN_VERSION = [6, 2];

/** What a crash of Redis would lose, as found on the server(s). */
export interface DurabilityReport {
  /** Append-only file on (on every master, for a cluster). */
  aof: boolean;
  /** `always`, `everysec`, `no`, or `unknown` when CONFIG is disabled. */
  appendfsync: string;
  /** RDB snapshot schedule (`save`): `''` when disabled, `unknown` when CONFIG is disabled. */
  rdb: string;
  /** One sentence for the operator: what a Redis crash loses with these settings. */
  note: string;
}

interface NodeDurability {
  aof: boolean;
  appendfsync: string;
  rdb: string;
  config: boolean;
}

/** Reads the persistence settings of each master; CONFIG may be renamed away, INFO is the fallback. */
export async function durabilityOf(redis: Redis | Cluster): Promise<DurabilityReport> {
  const nodes = redis instanceof Cluster ? redis.nodes('master') : [redis];
  const found = await Promise.all(nodes.map(nodeDurability));
  const aof = found.every((n) => n.aof);
  const distinct = (pick: (n: NodeDurability) => string) => [...new Set(found.map(pick))].join(',');
  const appendfsync = distinct((n) => n.appendfsync);
  const rdb = distinct((n) => n.rdb);
  return {
    aof,
    appendfsync,
    rdb,
    note: noteFor(
      aof,
      appendfsync,
      rdb,
      found.every((n) => n.config),
    ),
  };
}

async function nodeDurability(node: Redis): Promise<NodeDurability> {
  const get = async (name: string) => ((await node.config('GET', name)) as string[])[1] ?? '';
  try {
    const [appendonly, appendfsync, save] = await Promise.all([
      get('appendonly'),
      get('appendfsync'),
      get('save'),
    ]);
    return { aof: appendonly === 'yes', appendfsync, rdb: save, config: true };
  } catch (err) {
    if (!isReplyError(err)) throw err;
    const info = await node.info('persistence');
    return { aof: /aof_enabled:1/.test(info), appendfsync: 'unknown', rdb: 'unknown', config: false };
  }
}

function noteFor(aof: boolean, appendfsync: string, rdb: string, config: boolean): string {
  const snapshots = rdb === '' ? 'no RDB snapshots' : `RDB snapshots (save "${rdb}")`;
  if (!aof) {
    return rdb === ''
      ? 'No persistence (AOF off, no RDB snapshots): a Redis restart loses every stored message. Set appendonly yes.'
      : `AOF off, ${snapshots}: a Redis crash loses the messages accepted since the last snapshot. Set appendonly yes.`;
  }
  if (!config) return 'AOF on; appendfsync unknown (CONFIG is disabled): check it is always or everysec.';
  switch (appendfsync) {
    case 'always':
      return 'AOF with appendfsync always: every accepted publish is on disk before Redis replies; nothing acknowledged is lost.';
    case 'everysec':
      return 'AOF with appendfsync everysec: a crash of the Redis host may lose up to about one second of accepted publishes (a Redis process crash alone loses nothing).';
    default:
      return `AOF with appendfsync ${appendfsync}: the OS flushes when it likes, so a host crash may lose up to ~30 s of accepted publishes.`;
  }
}

function isReplyError(err: unknown): err is Error {
  return err instanceof Error && err.name === 'ReplyError';
}

/** Replies that mean "not now" rather than "this command is wrong". */
const TRANSIENT_REPLY = /^(LOADING|BUSY|TRYAGAIN|CLUSTERDOWN|MASTERDOWN|READONLY|NOREPLICAS|MOVED|ASK)\b/;

/**
 * Maps a Redis client error to a StoreError: error replies are `STORE_IO` (the command was wrong
 * or Redis refused it, e.g. out of memory); everything else (refused or dropped connection,
 * timeout, a server loading its data or a cluster without quorum) is `STORE_UNAVAILABLE`.
 */
export function toRedisStoreError(err: unknown, what: string): StoreError {
  if (err instanceof StoreError) return err;
  const detail = err instanceof Error ? err.message : String(err);
  if (isReplyError(err) && !TRANSIENT_REPLY.test(detail)) {
    return new StoreError('STORE_IO', `${what}: ${detail}`, { cause: err });
  }
  return new StoreError('STORE_UNAVAILABLE', `${what}: Redis unavailable (${detail})`, { cause: err });
}

/** A client that fails fast while Redis is away and reconnects in the background. */
export function createClient(opts: RedisStoreOptions): RedisClient {
  const connection = {
    url: opts.url,
    cluster: opts.cluster ?? false,
    commandTimeoutMs: opts.commandTimeoutMs ?? 2000,
    connectTimeoutMs: opts.connectTimeoutMs ?? 2000,
  };
  return commandConnection(connection, SCRIPTS) as RedisClient;
}

/** Refuses servers older than 6.2 (XTRIM MINID, exclusive XRANGE). */
export async function checkVersion(redis: RedisClient): Promise<void> {
  const info = await redis.info('server');
  const version = /redis_version:(\d+)\.(\d+)/.exec(info);
  if (!version) return;
  const [major, minor] = [Number(version[1]), Number(version[2])];
  if (major < MIN_VERSION[0]! || (major === MIN_VERSION[0] && minor < MIN_VERSION[1]!)) {
    throw new StoreError(
      'STORE_IO',
      `Redis ${major}.${minor} is too old: Pushwire needs ${MIN_VERSION.join('.')}+`,
    );
  }
}
