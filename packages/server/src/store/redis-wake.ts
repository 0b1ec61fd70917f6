import { StoreError } from './errors.js';
import type { RedisClient } from './redis-client.js';
import type { RedisKeys } from './redis-keys.js';
import type { WakeToken, WakeTokenStore } from './wake-tokens.js';

// Both keys share the device's hash tag (one slot), so each script is atomic even on a cluster.
/** KEYS: device hash, wake hash. ARGV: field/value pairs. 0 when the device does not exist. */
const SET = `
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('DEL', KEYS[2])
redis.call('HSET', KEYS[2], unpack(ARGV))
return 1`;
/** KEYS: wake hash. ARGV: the token it must still hold. */
const DELETE_IF = `
if redis.call('HGET', KEYS[1], 'token') ~= ARGV[1] then return 0 end
return redis.call('DEL', KEYS[1])`;

/** Wake tokens in the Redis store: one hash per device, beside the device's own keys. */
export class RedisWakeTokens implements WakeTokenStore {
  constructor(
    private readonly redis: RedisClient,
    private readonly keys: RedisKeys,
    private readonly run: <T>(what: string, op: () => Promise<T>) => Promise<T>,
  ) {}

  set(t: WakeToken): Promise<void> {
    return this.run('setWakeToken', async () => {
      const dk = this.keys.device(t.deviceId);
      const fields: (string | number)[] = [
        'provider',
        t.provider,
        'token',
        t.token,
        'updatedAt',
        t.updatedAt,
      ];
      if (t.topic !== undefined) fields.push('topic', t.topic);
      if (t.environment !== undefined) fields.push('environment', t.environment);
      if ((await this.redis.eval(SET, 2, dk.device, dk.wake, ...fields)) === 0)
        throw new StoreError('STORE_NOT_FOUND', `no device ${JSON.stringify(t.deviceId)}`);
    });
  }

  get(deviceId: string): Promise<WakeToken | undefined> {
    return this.run('getWakeToken', async () => {
      const h = await this.redis.hgetall(this.keys.device(deviceId).wake);
      if (h.token === undefined || (h.provider !== 'apns' && h.provider !== 'fcm')) return undefined;
      return {
        deviceId,
        provider: h.provider,
        token: h.token,
        ...(h.topic !== undefined && { topic: h.topic }),
        ...((h.environment === 'production' || h.environment === 'sandbox') && {
          environment: h.environment,
        }),
        updatedAt: Number(h.updatedAt ?? 0),
      };
    });
  }

  delete(deviceId: string, token?: string): Promise<boolean> {
    return this.run('deleteWakeToken', async () => {
      const key = this.keys.device(deviceId).wake;
      const n =
        token === undefined ? await this.redis.del(key) : await this.redis.eval(DELETE_IF, 1, key, token);
      return Number(n) > 0;
    });
  }
}
