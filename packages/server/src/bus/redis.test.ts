import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { type RedisServer, startRedis } from '../../../../test/helpers/redis.js';
import { StoreError } from '../store/errors.js';
import type { StoredEntry } from '../store/types.js';
import { attach, busContract, entry, Sink, sleep, until } from './contract.js';
import { LocalBus } from './local.js';
import { RedisBus, type RedisBusOptions } from './redis.js';

let redis: RedisServer;
let prefixes = 0;
const buses: RedisBus[] = [];

beforeAll(async () => {
  redis = await startRedis({ appendonly: true });
});
afterAll(async () => {
  await redis?.stop();
});
afterEach(async () => {
  await Promise.all(buses.splice(0).map((b) => b.close()));
});

/** Two or more nodes on one fresh key prefix. */
async function nodes(
  n: number,
  more: Partial<RedisBusOptions> = {},
  url = redis.url,
  stored: StoredEntry[] = [],
) {
  const keyPrefix = `bus${++prefixes}:`;
  const out: { bus: RedisBus; sink: Sink }[] = [];
  for (let i = 0; i < n; i++) {
    const bus = await RedisBus.connect({ url, keyPrefix, nodeId: `n${i}`, ...more });
    const sink = new Sink(stored);
    bus.bind(sink);
    buses.push(bus);
    out.push({ bus, sink });
  }
  return out;
}

describe('RedisBus', () => {
  busContract(nodes);

  it("a dead node's presence expires within the TTL; a closed node's is removed at once", async () => {
    const [a, b, c] = await nodes(3, { presenceTtlMs: 1200 });
    await attach(a!, 'dev1', 's1');
    await attach(c!, 'dev2', 's2');
    await sleep(1500); // refreshed every 400 ms: still there after more than one TTL
    expect(await b!.bus.isOnline('dev1')).toBe(true);
    // "Kill" node a: its connections drop, nothing is cleaned up.
    (a!.bus as unknown as { timers: NodeJS.Timeout[] }).timers.forEach(clearInterval);
    (a!.bus as unknown as { cmd: { disconnect(): void } }).cmd.disconnect();
    (a!.bus as unknown as { sub: { disconnect(): void } }).sub.disconnect();
    const t0 = Date.now();
    // The bound itself, read from Redis rather than timed: the key lives at most one TTL from now.
    const bus = b!.bus as unknown as {
      keys: { presence(d: string): string };
      cmd: { pttl(k: string): Promise<number> };
    };
    const pttl = await bus.cmd.pttl(bus.keys.presence('dev1'));
    expect(pttl).toBeGreaterThan(0);
    expect(pttl).toBeLessThanOrEqual(1200);
    for (;;) {
      if (!(await b!.bus.isOnline('dev1'))) break;
      if (Date.now() - t0 > 6000) throw new Error('presence did not expire');
      await sleep(50);
    }
    // And it does go: within the TTL plus room for a loaded 2-core machine (Redis expires lazily
    // or in its 100 ms cycle; our polling and event loop may run late, never early).
    expect(Date.now() - t0).toBeLessThanOrEqual(1200 + 1500);
    await c!.bus.close();
    expect(await b!.bus.isOnline('dev2')).toBe(false);
  });

  it('after Redis restarts: resubscribes, reasserts presence and catches sessions up', async () => {
    const own = await startRedis({ appendonly: true });
    try {
      const stored: StoredEntry[] = [];
      const [a, b] = await nodes(2, {}, own.url, stored);
      await attach(b!, 'dev1', 's1');
      b!.bus.followed('t:news');
      await until(() => b!.sink.resyncs.length === 2, 'topic subscription');
      await own.kill();
      await until(() => !a!.bus.healthy, 'unhealthy');
      await expect(a!.bus.isOnline('dev1')).rejects.toMatchObject({ code: 'STORE_UNAVAILABLE' });
      await expect(a!.bus.isOnline('dev1')).rejects.toBeInstanceOf(StoreError);
      // Redis is down: the entry is stored, and its route is kept and retried once Redis is back.
      // Whether the retry reaches b before b has subscribed again is a race; b's full resync after
      // its reconnect reads the store, so the device gets it either way (the hub drops a second copy
      // by its sequence number).
      stored.push(entry('lost', 'd:dev1'));
      a!.bus.route([entry('lost', 'd:dev1')]);
      await own.start();
      await until(() => a!.bus.healthy && b!.bus.healthy, 'reconnected', 10_000);
      await until(() => b!.sink.resyncs.includes(undefined), 'full resync after reconnect', 5000);
      await until(() => b!.sink.ids().includes('lost'), 'backlog delivered', 5000);
      a!.bus.route([entry('m1', 'd:dev1', 2), entry('m2', 't:news')]);
      await until(() => b!.sink.ids().includes('m1') && b!.sink.ids().includes('m2'), 'routing again');
    } finally {
      await Promise.all(buses.splice(0).map((bus) => bus.close()));
      await own.stop();
    }
  }, 30_000);

  it('works on Redis Cluster (one node owning every slot)', async () => {
    const cluster = await startRedis({ cluster: true });
    try {
      const [a, b] = await nodes(2, { cluster: true }, cluster.url);
      await attach(b!, 'dev{1}', 's1');
      b!.bus.followed('t:a{b}c');
      await until(() => b!.sink.resyncs.length === 2, 'subscription');
      a!.bus.route([entry('m1', 'd:dev{1}'), entry('m2', 't:a{b}c')]);
      await until(() => b!.sink.entries.length === 2, 'both on b');
      expect(await a!.bus.isOnline('dev{1}')).toBe(true);
    } finally {
      await Promise.all(buses.splice(0).map((bus) => bus.close()));
      await cluster.stop();
    }
  }, 30_000);

  it('refuses a node id that could not be a presence value', async () => {
    await expect(RedisBus.connect({ url: redis.url, nodeId: 'a b' })).rejects.toThrow(/node id/);
  });

  it('rejects with STORE_UNAVAILABLE when Redis cannot be reached', async () => {
    const gone = await startRedis();
    const url = gone.url;
    await gone.stop();
    const t0 = Date.now();
    await expect(RedisBus.connect({ url, connectTimeoutMs: 500 })).rejects.toMatchObject({
      code: 'STORE_UNAVAILABLE',
    });
    expect(Date.now() - t0).toBeLessThan(3000);
  });
});

describe('LocalBus', () => {
  it('hands entries and commands straight to the hub', async () => {
    const bus = new LocalBus();
    const sink = new Sink();
    bus.bind(sink);
    bus.route([entry('m1', 'd:x')]);
    bus.send('x', { t: 'revoke' });
    expect(sink.ids()).toEqual(['m1']);
    expect(sink.commands).toEqual([['x', { t: 'revoke' }]]);
    expect(await bus.isOnline()).toBe(false);
    expect(bus.healthy).toBe(true);
  });
});
