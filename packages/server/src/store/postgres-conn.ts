import pg from 'pg';
import { StoreError } from './errors.js';

// Connections of the PostgreSQL engine (store and bus): a pool with the engine's settings, error
// mapping, transactions with retry, and the server's durability settings.

/** Where and how to connect; shared by {@link PostgresStore} and the LISTEN/NOTIFY bus. */
export interface PostgresConnectionOptions {
  /** `postgres://user:password@host:port/database` (libpq URL; `?sslmode=require` etc. as `pg` takes them). */
  url: string;
  /**
   * Schema holding Pushwire's tables (created when missing; default `pushwire`), so several
   * deployments can share one database. Letters, digits and `_` only.
   */
  schema?: string;
  /** A query without an answer after this long fails with `STORE_UNAVAILABLE` (default 10 000). */
  commandTimeoutMs?: number;
  /** Connecting gives up after this long (default 2000). */
  connectTimeoutMs?: number;
  /** Connections of the store's pool (default 10). */
  poolSize?: number;
}

const SCHEMA_NAME = /^[A-Za-z_][A-Za-z0-9_]{0,62}$/;

/** The schema name, checked (it is interpolated into SQL as an identifier). */
export function schemaOf(opts: { schema?: string }): string {
  const schema = opts.schema ?? 'pushwire';
  if (!SCHEMA_NAME.test(schema)) {
    throw new StoreError('STORE_INVALID', `schema ${JSON.stringify(schema)}: use letters, digits and _`);
  }
  return schema;
}

/** int8 (counts, seqs, times) as numbers: every value Pushwire stores is a safe integer. */
const types = {
  getTypeParser: ((oid: number, format?: 'text' | 'binary') =>
    oid === 20
      ? (v: string) => Number(v)
      : pg.types.getTypeParser(oid, format)) as typeof pg.types.getTypeParser,
};

/** Client settings every connection of the engine uses (search_path is the schema). */
export function clientConfig(opts: PostgresConnectionOptions): pg.ClientConfig {
  if (!/^postgres(ql)?:\/\/./.test(opts.url)) {
    throw new StoreError(
      'STORE_INVALID',
      `not a PostgreSQL URL: ${JSON.stringify(redactUrl(opts.url))} (expected postgres://user:password@host:port/database)`,
    );
  }
  return {
    connectionString: opts.url,
    connectionTimeoutMillis: opts.connectTimeoutMs ?? 2000,
    query_timeout: opts.commandTimeoutMs ?? 10_000,
    options: `-c search_path=${schemaOf(opts)}`,
    application_name: 'pushwire',
    keepAlive: true,
    types,
  };
}

/** A pool; errors of its connections (the server went away) are absorbed: the next query sees them. */
export function createPool(opts: PostgresConnectionOptions): pg.Pool {
  const pool = new pg.Pool({ ...clientConfig(opts), max: Math.max(1, opts.poolSize ?? 10) });
  pool.on('error', () => {});
  // A connection the server ends while it is checked out (a crash mid-transaction) emits 'error'
  // on the client itself: absorbed here; its query fails, and the pool drops it on release.
  pool.on('connect', (client) => client.on('error', () => {}));
  return pool;
}

/** SQLSTATEs and socket errors that mean "the server cannot be reached now" (retry later). */
const UNAVAILABLE_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EPIPE',
  'ENOTFOUND',
  'EHOSTUNREACH',
  'EAI_AGAIN',
  '57P01', // admin_shutdown
  '57P02', // crash_shutdown
  '57P03', // cannot_connect_now (starting up, recovering)
  '53300', // too_many_connections
  '40001', // serialization_failure (after retries)
  '40P01', // deadlock_detected (after retries)
  '25006', // read_only_sql_transaction (a standby, or a failover in progress)
]);

/** True when the error says the server is away (a retry later may succeed). */
export function isUnavailable(err: unknown): boolean {
  const e = err as { code?: string; message?: string };
  if (typeof e?.code === 'string' && (UNAVAILABLE_CODES.has(e.code) || e.code.startsWith('08'))) return true;
  const message = typeof e?.message === 'string' ? e.message : '';
  return /Connection terminated|connection timeout|timeout exceeded when trying to connect|Query read timeout|Client has encountered a connection error|not queryable/i.test(
    message,
  );
}

/** Hides the password of a connection URL. */
export function redactUrl(url: string): string {
  return url.replace(/\/\/([^:@/]*):[^@/]*@/, '//$1:***@');
}

/** Maps a `pg` error: the server away → `STORE_UNAVAILABLE`; a StoreError passes; else `STORE_IO`. */
export function toPostgresStoreError(err: unknown, what: string): StoreError {
  if (err instanceof StoreError) return err;
  const detail = err instanceof Error ? err.message : String(err);
  const code = isUnavailable(err) ? 'STORE_UNAVAILABLE' : 'STORE_IO';
  return new StoreError(code, `${what}: ${detail}`, { cause: err });
}

/** Serialization failures and deadlocks are retried this many times before they are reported. */
const RETRIES = 3;

/**
 * Runs `fn` in a transaction (READ COMMITTED) on one pooled connection; resolves after COMMIT
 * returned, so whatever it wrote is durable by the server's `synchronous_commit` (unless
 * `durable: false`: then a crash may lose the last such commits). A deadlock or serialization
 * failure rolls back and runs `fn` again.
 */
export async function transaction<T>(
  pool: pg.Pool,
  fn: (client: pg.PoolClient) => Promise<T>,
  opts: { durable?: boolean } = {},
): Promise<T> {
  for (let attempt = 0; ; attempt++) {
    const client = await pool.connect();
    let broken: unknown;
    try {
      // Not durable: COMMIT returns without waiting for the WAL flush (a crash may lose it).
      await client.query(opts.durable === false ? 'BEGIN; SET LOCAL synchronous_commit TO off' : 'BEGIN');
      const result = await fn(client);
      await client.query('COMMIT');
      return result;
    } catch (err) {
      broken = err;
      await client.query('ROLLBACK').catch(() => {});
      const code = (err as { code?: string }).code;
      if ((code === '40P01' || code === '40001') && attempt < RETRIES) continue;
      throw err;
    } finally {
      // A connection whose query failed at the socket level is not put back.
      client.release(broken !== undefined && isUnavailable(broken) ? (broken as Error) : undefined);
    }
  }
}

/** What a crash of PostgreSQL would lose, from the server's settings. */
export interface PostgresDurability {
  /** `SHOW fsync`. */
  fsync: string;
  /** `SHOW synchronous_commit`: `on` (or `remote_*`) waits for the WAL flush before COMMIT returns. */
  synchronousCommit: string;
  /** `SHOW synchronous_standby_names`: empty when no standby must confirm. */
  synchronousStandbys: string;
  /** `SHOW server_version`. */
  version: string;
  /** One sentence for the operator. */
  note: string;
}

/** Reads the durability settings of the server the pool connects to. */
export async function durabilityOf(pool: pg.Pool): Promise<PostgresDurability> {
  const show = async (name: string) =>
    String((await pool.query<Record<string, string>>(`SHOW ${name}`)).rows[0]?.[name] ?? '');
  const [fsync, synchronousCommit, synchronousStandbys, version] = await Promise.all([
    show('fsync'),
    show('synchronous_commit'),
    show('synchronous_standby_names'),
    show('server_version'),
  ]);
  let note: string;
  if (fsync !== 'on')
    note = 'fsync is off: a crash of the machine may corrupt the database and lose anything';
  else if (
    synchronousCommit === 'off' ||
    synchronousCommit === 'local' ||
    synchronousCommit === 'remote_write'
  ) {
    note =
      synchronousCommit === 'off'
        ? 'synchronous_commit is off: a crash of PostgreSQL may lose publishes acknowledged in the last moments (wal_writer_delay × 3)'
        : `synchronous_commit = ${synchronousCommit}: a crash of the primary loses nothing acknowledged; a failover may`;
  } else {
    note =
      synchronousStandbys === ''
        ? 'a crash of PostgreSQL loses no acknowledged publish (synchronous_commit on, fsync on); no synchronous standby: a failover may'
        : 'a crash or failover loses no acknowledged publish (synchronous commit to a standby)';
  }
  return { fsync, synchronousCommit, synchronousStandbys, version, note };
}
