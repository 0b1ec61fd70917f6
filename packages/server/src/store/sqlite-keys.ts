import type Database from 'better-sqlite3';
import { type ApiKeyRecord, type ApiKeyStore, decodeApiKey, encodeApiKey } from './api-keys.js';
import { StoreError } from './errors.js';

interface Row {
  record: string;
  last_used: number | null;
  revoked_at: number | null;
}

/**
 * API keys in the SQLite store's file (table `api_keys`, schema migration 4): one row per key,
 * its SHA-256 unique-indexed for the lookup every request makes. Writes are durable transactions
 * on the main connection.
 */
export class SqliteApiKeys implements ApiKeyStore {
  private readonly stmts;

  constructor(
    db: Database.Database,
    private readonly transact: <T>(fn: () => T) => T,
  ) {
    this.stmts = {
      insert: db.prepare<[string, string, string, number]>(
        'INSERT INTO api_keys (id, hash, record, created_at) VALUES (?, ?, ?, ?)',
      ),
      byHash: db.prepare<[string], Row>('SELECT record, last_used, revoked_at FROM api_keys WHERE hash = ?'),
      list: db.prepare<[], Row>('SELECT record, last_used, revoked_at FROM api_keys ORDER BY created_at, id'),
      revoke: db.prepare<[number, string]>(
        'UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL',
      ),
      touch: db.prepare<[number, string]>(
        'UPDATE api_keys SET last_used = max(coalesce(last_used, 0), ?) WHERE id = ?',
      ),
    };
  }

  async create(key: ApiKeyRecord): Promise<void> {
    const { lastUsed: _u, revokedAt: _r, ...record } = key;
    try {
      this.transact(() => this.stmts.insert.run(key.id, key.hash, encodeApiKey(record), key.createdAt));
    } catch (err) {
      const e = err as { code?: string; cause?: { code?: string } };
      if (String(e.cause?.code ?? e.code).startsWith('SQLITE_CONSTRAINT'))
        throw new StoreError('STORE_INVALID', `key ${JSON.stringify(key.id)} exists already`);
      throw err;
    }
  }

  async byHash(hash: string): Promise<ApiKeyRecord | undefined> {
    const row = this.stmts.byHash.get(hash);
    return row && fromRow(row);
  }

  async list(): Promise<ApiKeyRecord[]> {
    return this.stmts.list.all().flatMap((r) => fromRow(r) ?? []);
  }

  async revoke(id: string, at: number): Promise<boolean> {
    return this.transact(() => this.stmts.revoke.run(at, id).changes > 0);
  }

  async touch(id: string, at: number): Promise<void> {
    this.transact(() => this.stmts.touch.run(at, id));
  }
}

function fromRow(r: Row): ApiKeyRecord | undefined {
  const k = decodeApiKey(r.record);
  if (!k) return undefined;
  return {
    ...k,
    ...(r.last_used !== null && { lastUsed: r.last_used }),
    ...(r.revoked_at !== null && { revokedAt: r.revoked_at }),
  };
}
