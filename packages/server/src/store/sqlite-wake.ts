import type Database from 'better-sqlite3';
import { StoreError } from './errors.js';
import type { WakeToken, WakeTokenStore } from './wake-tokens.js';

// Its own table, created here rather than as a schema migration, like the Web Push registry's:
// the row goes with its device (foreign key, cascade; both connections enable foreign keys).
const SCHEMA = `
  CREATE TABLE IF NOT EXISTS wake_tokens (
    device_id TEXT PRIMARY KEY REFERENCES devices (id) ON DELETE CASCADE,
    provider TEXT NOT NULL,
    token TEXT NOT NULL,
    topic TEXT,
    environment TEXT,
    updated_at INTEGER NOT NULL
  ) STRICT;
`;

interface Row {
  device_id: string;
  provider: string;
  token: string;
  topic: string | null;
  environment: string | null;
  updated_at: number;
}

/** Wake tokens in the SQLite store's file; writes are durable transactions on the main connection. */
export class SqliteWakeTokens implements WakeTokenStore {
  private readonly stmts;

  constructor(
    db: Database.Database,
    private readonly transact: <T>(fn: () => T) => T,
  ) {
    db.exec(SCHEMA);
    this.stmts = {
      upsert: db.prepare<[Row]>(
        `INSERT INTO wake_tokens VALUES (@device_id, @provider, @token, @topic, @environment, @updated_at)
         ON CONFLICT (device_id) DO UPDATE SET provider = excluded.provider, token = excluded.token,
           topic = excluded.topic, environment = excluded.environment, updated_at = excluded.updated_at`,
      ),
      get: db.prepare<[string], Row>('SELECT * FROM wake_tokens WHERE device_id = ?'),
      delete: db.prepare<[string]>('DELETE FROM wake_tokens WHERE device_id = ?'),
      deleteIf: db.prepare<[string, string]>('DELETE FROM wake_tokens WHERE device_id = ? AND token = ?'),
    };
  }

  async set(t: WakeToken): Promise<void> {
    try {
      this.transact(() =>
        this.stmts.upsert.run({
          device_id: t.deviceId,
          provider: t.provider,
          token: t.token,
          topic: t.topic ?? null,
          environment: t.environment ?? null,
          updated_at: t.updatedAt,
        }),
      );
    } catch (err) {
      const e = err as { code?: string; cause?: { code?: string } };
      if ((e.cause?.code ?? e.code) === 'SQLITE_CONSTRAINT_FOREIGNKEY')
        throw new StoreError('STORE_NOT_FOUND', `no device ${JSON.stringify(t.deviceId)}`);
      throw err;
    }
  }

  async get(deviceId: string): Promise<WakeToken | undefined> {
    const r = this.stmts.get.get(deviceId);
    if (!r) return undefined;
    return {
      deviceId: r.device_id,
      provider: r.provider as WakeToken['provider'],
      token: r.token,
      ...(r.topic !== null && { topic: r.topic }),
      ...(r.environment !== null && { environment: r.environment as 'production' | 'sandbox' }),
      updatedAt: r.updated_at,
    };
  }

  async delete(deviceId: string, token?: string): Promise<boolean> {
    return this.transact(
      () =>
        (token === undefined ? this.stmts.delete.run(deviceId) : this.stmts.deleteIf.run(deviceId, token))
          .changes > 0,
    );
  }
}
