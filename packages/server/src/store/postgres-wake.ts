import type pg from 'pg';
import { StoreError } from './errors.js';
import type { WakeToken, WakeTokenStore } from './wake-tokens.js';

interface Row {
  device_id: string;
  provider: string;
  token: string;
  topic: string | null;
  environment: string | null;
  updated_at: number;
}

/** Runs one operation of the store: refused after close, errors mapped. */
type Run = <T>(what: string, op: () => Promise<T>) => Promise<T>;

/**
 * Wake tokens in the PostgreSQL store (table `wake_tokens`): one row per device, removed with its
 * device (foreign key, cascade). Each call is one autocommitted statement, durable when it resolves.
 */
export class PostgresWakeTokens implements WakeTokenStore {
  constructor(
    private readonly pool: pg.Pool,
    private readonly run: Run,
  ) {}

  set(t: WakeToken): Promise<void> {
    return this.run('setWakeToken', async () => {
      try {
        await this.pool.query(
          `INSERT INTO wake_tokens VALUES ($1, $2, $3, $4, $5, $6)
           ON CONFLICT (device_id) DO UPDATE SET provider = excluded.provider, token = excluded.token,
             topic = excluded.topic, environment = excluded.environment, updated_at = excluded.updated_at`,
          [t.deviceId, t.provider, t.token, t.topic ?? null, t.environment ?? null, t.updatedAt],
        );
      } catch (err) {
        if ((err as { code?: string }).code === '23503')
          throw new StoreError('STORE_NOT_FOUND', `no device ${JSON.stringify(t.deviceId)}`);
        throw err;
      }
    });
  }

  get(deviceId: string): Promise<WakeToken | undefined> {
    return this.run('getWakeToken', async () => {
      const r = (await this.pool.query<Row>('SELECT * FROM wake_tokens WHERE device_id = $1', [deviceId]))
        .rows[0];
      if (!r || (r.provider !== 'apns' && r.provider !== 'fcm')) return undefined;
      return {
        deviceId: r.device_id,
        provider: r.provider,
        token: r.token,
        ...(r.topic !== null && { topic: r.topic }),
        ...((r.environment === 'production' || r.environment === 'sandbox') && {
          environment: r.environment,
        }),
        updatedAt: r.updated_at,
      };
    });
  }

  delete(deviceId: string, token?: string): Promise<boolean> {
    return this.run('deleteWakeToken', async () => {
      const r =
        token === undefined
          ? await this.pool.query('DELETE FROM wake_tokens WHERE device_id = $1', [deviceId])
          : await this.pool.query('DELETE FROM wake_tokens WHERE device_id = $1 AND token = $2', [
              deviceId,
              token,
            ]);
      return (r.rowCount ?? 0) > 0;
    });
  }
}
