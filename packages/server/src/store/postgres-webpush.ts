import type { PostgresStore } from './postgres.js';
import { fromWebPushRow as fromRow, type WebPushRow as Row } from './rows.js';
import type { WebPushRegistry, WebPushSubscriptionRecord } from './webpush-registry.js';

/**
 * The Web Push registry on PostgreSQL: the `webpush_subscriptions` table of a {@link PostgresStore}'s
 * schema (created by its migrations), so every node of a cluster sees every subscription. Each
 * write is one autocommitted statement: durable when it resolves.
 */
export class PostgresWebPushRegistry implements WebPushRegistry {
  private constructor(private readonly store: PostgresStore) {}

  /** The registry in the store's database. */
  static onStore(store: PostgresStore): PostgresWebPushRegistry {
    return new PostgresWebPushRegistry(store);
  }

  async create(sub: WebPushSubscriptionRecord): Promise<void> {
    await this.store.query(
      'createWebPushSubscription',
      'INSERT INTO webpush_subscriptions VALUES ($1, $2, $3, $4, $5, $6, $7)',
      [
        sub.id,
        sub.deviceId,
        sub.capabilityHash,
        sub.applicationServerKey ?? null,
        sub.topicKey,
        sub.createdAt,
        sub.revokedAt ?? null,
      ],
    );
  }

  async byCapability(capabilityHash: string): Promise<WebPushSubscriptionRecord | undefined> {
    const rows = await this.store.query<Row>(
      'webPushByCapability',
      'SELECT * FROM webpush_subscriptions WHERE capability_hash = $1',
      [capabilityHash],
    );
    return rows[0] && fromRow(rows[0]);
  }

  async byId(id: string): Promise<WebPushSubscriptionRecord | undefined> {
    const rows = await this.store.query<Row>(
      'webPushById',
      'SELECT * FROM webpush_subscriptions WHERE id = $1',
      [id],
    );
    return rows[0] && fromRow(rows[0]);
  }

  async listByDevice(deviceId: string): Promise<WebPushSubscriptionRecord[]> {
    const rows = await this.store.query<Row>(
      'webPushByDevice',
      'SELECT * FROM webpush_subscriptions WHERE device_id = $1 ORDER BY created_at, id',
      [deviceId],
    );
    return rows.map(fromRow);
  }

  async revoke(id: string, at: number): Promise<boolean> {
    const rows = await this.store.query(
      'revokeWebPush',
      'UPDATE webpush_subscriptions SET revoked_at = coalesce(revoked_at, $1) WHERE id = $2 RETURNING id',
      [at, id],
    );
    return rows.length > 0;
  }

  async purgeRevoked(before: number): Promise<number> {
    const rows = await this.store.query(
      'purgeWebPush',
      'DELETE FROM webpush_subscriptions WHERE revoked_at IS NOT NULL AND revoked_at < $1 RETURNING id',
      [before],
    );
    return rows.length;
  }
}
