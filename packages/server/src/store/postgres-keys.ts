import type pg from 'pg';
import { type ApiKeyRecord, type ApiKeyStore, decodeApiKey, encodeApiKey } from './api-keys.js';
import { StoreError } from './errors.js';

interface Row {
  record: string;
  last_used: string | number | null;
  revoked_at: string | number | null;
}

/** Runs one operation of the store: refused after close, errors mapped. */
type Run = <T>(what: string, op: () => Promise<T>) => Promise<T>;

/**
 * API keys in the PostgreSQL store (table `api_keys`, schema migration 2): one row per key, its
 * SHA-256 unique-indexed for the lookup every request makes. Each call is one autocommitted
 * statement, durable when it resolves; every node reads the same rows, so a revocation holds at
 * once on all of them.
 */
export class PostgresApiKeys implements ApiKeyStore {
  constructor(
    private readonly pool: pg.Pool,
    private readonly run: Run,
  ) {}

  create(key: ApiKeyRecord): Promise<void> {
    const { lastUsed: _u, revokedAt: _r, ...record } = key;
    return this.run('createApiKey', async () => {
      try {
        await this.pool.query('INSERT INTO api_keys (id, hash, record, created_at) VALUES ($1, $2, $3, $4)', [
          key.id,
          key.hash,
          encodeApiKey(record),
          key.createdAt,
        ]);
      } catch (err) {
        if ((err as { code?: string }).code === '23505')
          throw new StoreError('STORE_INVALID', `key ${JSON.stringify(key.id)} exists already`);
        throw err;
      }
    });
  }

  byHash(hash: string): Promise<ApiKeyRecord | undefined> {
    return this.run('apiKeyByHash', async () => {
      const row = (
        await this.pool.query<Row>('SELECT record, last_used, revoked_at FROM api_keys WHERE hash = $1', [
          hash,
        ])
      ).rows[0];
      return row && fromRow(row);
    });
  }

  list(): Promise<ApiKeyRecord[]> {
    return this.run('listApiKeys', async () =>
      (
        await this.pool.query<Row>(
          'SELECT record, last_used, revoked_at FROM api_keys ORDER BY created_at, id',
        )
      ).rows.flatMap((r) => fromRow(r) ?? []),
    );
  }

  revoke(id: string, at: number): Promise<boolean> {
    return this.run('revokeApiKey', async () => {
      const r = await this.pool.query(
        'UPDATE api_keys SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL',
        [at, id],
      );
      return (r.rowCount ?? 0) > 0;
    });
  }

  touch(id: string, at: number): Promise<void> {
    return this.run('touchApiKey', async () => {
      await this.pool.query(
        'UPDATE api_keys SET last_used = greatest(coalesce(last_used, 0), $1) WHERE id = $2',
        [at, id],
      );
    });
  }
}

function fromRow(r: Row): ApiKeyRecord | undefined {
  const k = decodeApiKey(r.record);
  if (!k) return undefined;
  return {
    ...k,
    ...(r.last_used !== null && { lastUsed: Number(r.last_used) }),
    ...(r.revoked_at !== null && { revokedAt: Number(r.revoked_at) }),
  };
}
