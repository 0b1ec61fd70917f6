import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll } from 'vitest';
import { type RedisServer, startRedis } from '../../../../test/helpers/redis.js';
import { RedisStore } from '../store/redis.js';
import { SqliteStore } from '../store/sqlite.js';
import { webPushRegistryContract } from './registry-contract.js';
import { SqliteWebPushRegistry } from './sqlite-registry.js';

let single: RedisServer;
let cluster: RedisServer;
let prefixes = 0;

beforeAll(async () => {
  [single, cluster] = await Promise.all([startRedis(), startRedis({ cluster: true })]);
});
afterAll(async () => {
  await Promise.all([single?.stop(), cluster?.stop()]);
});

webPushRegistryContract('SQLite', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'pushwire-wpreg-'));
  const store = SqliteStore.open({ path: join(dir, 'pushwire.db') });
  return {
    registry: SqliteWebPushRegistry.onStore(store),
    cleanup: async () => {
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
});

for (const [name, server, isCluster] of [
  ['Redis', () => single, false],
  ['Redis Cluster', () => cluster, true],
] as const) {
  webPushRegistryContract(name, async () => {
    // A fresh key prefix per test on one private redis-server.
    const store = await RedisStore.connect({
      url: server().url,
      cluster: isCluster,
      keyPrefix: `wp${++prefixes}:`,
    });
    return { registry: store.webPushRegistry, cleanup: () => store.close() };
  });
}
