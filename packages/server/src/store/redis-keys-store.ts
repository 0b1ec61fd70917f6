import { type ApiKeyRecord, type ApiKeyStore, decodeApiKey, encodeApiKey } from './api-keys.js';
import { StoreError } from './errors.js';
import type { RedisClient } from './redis-client.js';

/**
 * Keys of the Redis key store, all in one hash slot (`{apikeys}`) so each script is atomic on a
 * cluster too:
 *
 * ```
 * <p>{apikeys}:rec    hash  id → the key's record (JSON, without lastUsed / revokedAt)
 * <p>{apikeys}:h      hash  SHA-256 of the key → id
 * <p>{apikeys}:rev    hash  id → revocation time (ms)
 * <p>{apikeys}:used   hash  id → last use (ms)
 * ```
 */
function layout(prefix: string) {
  const base = `${prefix}{apikeys}:`;
  return { rec: `${base}rec`, hash: `${base}h`, rev: `${base}rev`, used: `${base}used` };
}

/** KEYS: rec, h. ARGV: id, hash, record. 0 when the id or hash exists. */
const CREATE = `
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1 or redis.call('HEXISTS', KEYS[2], ARGV[2]) == 1 then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
redis.call('HSET', KEYS[2], ARGV[2], ARGV[1])
return 1`;
/** KEYS: h, rec, used, rev. ARGV: hash. The record, last use and revocation, or nil. */
const BY_HASH = `
local id = redis.call('HGET', KEYS[1], ARGV[1])
if not id then return false end
return {redis.call('HGET', KEYS[2], id), redis.call('HGET', KEYS[3], id), redis.call('HGET', KEYS[4], id)}`;
/** KEYS: rec, rev. ARGV: id, at. 1 when revoked now. */
const REVOKE = `
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 then return 0 end
return redis.call('HSETNX', KEYS[2], ARGV[1], ARGV[2])`;

type Reply = [string | null, string | null, string | null] | null;

/** API keys in the Redis store: every node reads the same keys, so a revocation holds everywhere at once. */
export class RedisApiKeys implements ApiKeyStore {
  private readonly k;

  constructor(
    private readonly redis: RedisClient,
    prefix: string,
    private readonly run: <T>(what: string, op: () => Promise<T>) => Promise<T>,
  ) {
    this.k = layout(prefix);
  }

  create(key: ApiKeyRecord): Promise<void> {
    const { lastUsed: _u, revokedAt: _r, ...record } = key;
    return this.run('createKey', async () => {
      const ok = await this.redis.eval(
        CREATE,
        2,
        this.k.rec,
        this.k.hash,
        key.id,
        key.hash,
        encodeApiKey(record),
      );
      if (Number(ok) !== 1)
        throw new StoreError('STORE_INVALID', `key ${JSON.stringify(key.id)} exists already`);
    });
  }

  byHash(hash: string): Promise<ApiKeyRecord | undefined> {
    return this.run('keyByHash', async () => {
      const r = (await this.redis.eval(
        BY_HASH,
        4,
        this.k.hash,
        this.k.rec,
        this.k.used,
        this.k.rev,
        hash,
      )) as Reply;
      return r ? withUse(r[0], r[1], r[2]) : undefined;
    });
  }

  list(): Promise<ApiKeyRecord[]> {
    return this.run('listKeys', async () => {
      const [recs, used, rev] = await Promise.all([
        this.redis.hgetall(this.k.rec),
        this.redis.hgetall(this.k.used),
        this.redis.hgetall(this.k.rev),
      ]);
      return Object.entries(recs)
        .flatMap(([id, json]) => withUse(json, used[id] ?? null, rev[id] ?? null) ?? [])
        .sort((a, b) => a.createdAt - b.createdAt || (a.id < b.id ? -1 : 1));
    });
  }

  revoke(id: string, at: number): Promise<boolean> {
    return this.run(
      'revokeKey',
      async () => Number(await this.redis.eval(REVOKE, 2, this.k.rec, this.k.rev, id, at)) === 1,
    );
  }

  touch(id: string, at: number): Promise<void> {
    return this.run('touchKey', async () => {
      await this.redis.hset(this.k.used, id, at);
    });
  }
}

function withUse(json: string | null, used: string | null, rev: string | null): ApiKeyRecord | undefined {
  const k = decodeApiKey(json);
  if (!k) return undefined;
  return {
    ...k,
    ...(used !== null && { lastUsed: Number(used) }),
    ...(rev !== null && { revokedAt: Number(rev) }),
  };
}
