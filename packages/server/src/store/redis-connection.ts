import { Cluster, Redis, type RedisOptions } from 'ioredis';

/**
 * The Redis engine's one connection module, shared by its store and its bus: how a command
 * connection (one server or a cluster, with Lua scripts as methods) and a subscriber connection
 * are opened, and what they do while Redis is away (fail fast, reconnect in the background).
 */

/** Where and how to connect. */
export interface RedisConnectionOptions {
  url: string;
  cluster: boolean;
  commandTimeoutMs: number;
  connectTimeoutMs: number;
}

/** Lua scripts defined as commands on a connection (ioredis `scripts`). */
export type RedisScripts = Record<string, { numberOfKeys?: number; lua: string }>;

const retry = (times: number) => Math.min(times * 100, 1000);

function baseOptions(o: RedisConnectionOptions): RedisOptions {
  return {
    lazyConnect: true,
    // Fail fast instead of queueing while Redis is away (the API answers 503 at once; the bus
    // decides what to do), reconnect in the background.
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    autoResendUnfulfilledCommands: false,
    commandTimeout: o.commandTimeoutMs,
    connectTimeout: o.connectTimeoutMs,
    retryStrategy: retry,
  };
}

function credentialsOf(url: URL): Partial<RedisOptions> {
  return {
    ...(url.username && { username: decodeURIComponent(url.username) }),
    ...(url.password && { password: decodeURIComponent(url.password) }),
    ...(url.protocol === 'rediss:' && { tls: {} }),
  };
}

/** Opens (lazily) a command connection with `scripts` as methods; the caller types them. */
export function commandConnection(o: RedisConnectionOptions, scripts: RedisScripts): Redis | Cluster {
  let client: Redis | Cluster;
  if (o.cluster) {
    const url = new URL(o.url);
    client = new Cluster([{ host: url.hostname, port: Number(url.port || 6379) }], {
      lazyConnect: true,
      enableAutoPipelining: true,
      enableOfflineQueue: false,
      scripts,
      clusterRetryStrategy: retry,
      redisOptions: { ...baseOptions(o), ...credentialsOf(url) },
    });
  } else {
    client = new Redis(o.url, { ...baseOptions(o), enableAutoPipelining: true, scripts });
  }
  // Connection errors surface as rejected commands; the event itself is noise.
  client.on('error', () => {});
  return client;
}

/**
 * Opens (lazily) a subscriber connection: always one plain connection (to the URL's node in a
 * cluster, where plain pub/sub reaches every node). Subscriptions are not restored by ioredis
 * after a reconnect: the bus restores them itself, so that it knows when they are back.
 */
export function subscriberConnection(o: RedisConnectionOptions): Redis {
  const url = new URL(o.url);
  const sub = o.cluster
    ? new Redis({
        ...baseOptions(o),
        host: url.hostname,
        port: Number(url.port || 6379),
        ...credentialsOf(url),
        autoResubscribe: false,
      })
    : new Redis(o.url, { ...baseOptions(o), autoResubscribe: false });
  sub.on('error', () => {});
  return sub;
}

/** `redis_version` from INFO server, e.g. `7.0.15` (empty when hidden). */
export async function serverVersion(redis: Redis | Cluster): Promise<string> {
  const node = redis instanceof Cluster ? redis.nodes('master')[0] : redis;
  const info = node ? await node.info('server') : '';
  return /redis_version:([^\r\n]+)/.exec(info)?.[1] ?? '';
}

/** The URL without its password, for messages. */
export function redact(url: string): string {
  return url.replace(/\/\/([^:@/]*):[^@/]*@/, '//$1:***@');
}
