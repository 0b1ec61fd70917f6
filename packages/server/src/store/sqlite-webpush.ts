import type Database from 'better-sqlite3';
import { fromWebPushRow as fromRow, type WebPushRow as Row } from './rows.js';
import type { SqliteStore } from './sqlite.js';
import type { WebPushRegistry, WebPushSubscriptionRecord } from './webpush-registry.js';

const SCHEMA = `
  CREATE TABLE IF NOT EXISTS webpush_subscriptions (
    id TEXT PRIMARY KEY,
    device_id TEXT NOT NULL,
    capability_hash TEXT NOT NULL UNIQUE,
    application_server_key TEXT,
    topic_key TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    revoked_at INTEGER
  ) STRICT;
  CREATE INDEX IF NOT EXISTS webpush_subscriptions_by_device ON webpush_subscriptions (device_id);
`;

/** Runs a synchronous write in a durable transaction. */
type Transact = <T>(fn: () => T) => T;

/**
 * The Web Push registry on SQLite: one table, in the store's own file when given a
 * {@link SqliteStore} (writes go through the store's durable transactions), or in any database
 * given to the constructor.
 */
export class SqliteWebPushRegistry implements WebPushRegistry {
  private readonly stmts;

  constructor(
    db: Database.Database,
    private readonly transact: Transact = (fn) => db.transaction(fn)(),
  ) {
    db.exec(SCHEMA);
    this.stmts = {
      insert: db.prepare<[Row]>(
        `INSERT INTO webpush_subscriptions VALUES
          (@id, @device_id, @capability_hash, @application_server_key, @topic_key, @created_at, @revoked_at)`,
      ),
      byCapability: db.prepare<[string], Row>(
        'SELECT * FROM webpush_subscriptions WHERE capability_hash = ?',
      ),
      byId: db.prepare<[string], Row>('SELECT * FROM webpush_subscriptions WHERE id = ?'),
      byDevice: db.prepare<[string], Row>(
        'SELECT * FROM webpush_subscriptions WHERE device_id = ? ORDER BY created_at, id',
      ),
      purgeRevoked: db.prepare<[number]>(
        'DELETE FROM webpush_subscriptions WHERE revoked_at IS NOT NULL AND revoked_at < ?',
      ),
      revoke: db.prepare<[number, string]>(
        'UPDATE webpush_subscriptions SET revoked_at = coalesce(revoked_at, ?) WHERE id = ?',
      ),
    };
  }

  /** A registry sharing the store's database file and durable transactions. */
  static onStore(store: SqliteStore): SqliteWebPushRegistry {
    return new SqliteWebPushRegistry(store.database, (fn) => store.transact(fn));
  }

  async create(sub: WebPushSubscriptionRecord): Promise<void> {
    this.transact(() =>
      this.stmts.insert.run({
        id: sub.id,
        device_id: sub.deviceId,
        capability_hash: sub.capabilityHash,
        application_server_key: sub.applicationServerKey ?? null,
        topic_key: sub.topicKey,
        created_at: sub.createdAt,
        revoked_at: sub.revokedAt ?? null,
      }),
    );
  }

  async byCapability(capabilityHash: string): Promise<WebPushSubscriptionRecord | undefined> {
    const row = this.stmts.byCapability.get(capabilityHash);
    return row && fromRow(row);
  }

  async byId(id: string): Promise<WebPushSubscriptionRecord | undefined> {
    const row = this.stmts.byId.get(id);
    return row && fromRow(row);
  }

  async listByDevice(deviceId: string): Promise<WebPushSubscriptionRecord[]> {
    return this.stmts.byDevice.all(deviceId).map(fromRow);
  }

  async revoke(id: string, at: number): Promise<boolean> {
    return this.transact(() => this.stmts.revoke.run(at, id).changes > 0);
  }

  async purgeRevoked(before: number): Promise<number> {
    return this.transact(() => this.stmts.purgeRevoked.run(before).changes);
  }
}
