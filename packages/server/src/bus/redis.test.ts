import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { type RedisServer, startRedis } from '../../../../test/helpers/redis.js';
import { StoreError } from '../store/errors.js';
import type { StoredEntry } from '../store/types.js';
import { LocalBus } from './local.js';
import { RedisBus, type RedisBusOptions } from './redis.js';
import type { BusSink, CatchUpScope, DeviceCommand } from './types.js';

/** A node's delivery core, reduced to what the bus calls: records everything. */
class Sink implements BusSink {
  readonly entries: StoredEntry[] = [];
  readonly commands: [string, DeviceCommand][] = [];
  readonly resyncs: CatchUpScope[] = [];
  readonly held = new Set<string>();
  /** Stands in for the durable store: what a full resync reads back for the devices held here. */
  constructor(private readonly stored: StoredEntry[] = []) {}
  dispatch(entries: StoredEntry[]): void {
    this.entries.push(...entries);
  }
  command(deviceId: string, cmd: DeviceCommand): void {
    this.commands.push([deviceId, cmd]);
  }
  holds(deviceId: string): boolean {
    return this.held.has(deviceId);
  }
  async resync(scope?: CatchUpScope): Promise<number> {
    this.resyncs.push(scope);
    // Like the hub: read each held device's stream from the store, skip what was delivered.
    const seen = new Set(this.ids());
    const missed = this.stored.filter(
      (e) =>
        !seen.has(e.id) &&
        this.held.has(e.stream.slice(2)) &&
        (!scope || ('device' in scope && scope.device === e.stream.slice(2))),
    );
    if (missed.length > 0) this.dispatch(missed);
    return 0;
  }
  ids(): string[] {
    return this.entries.map((e) => e.id);
  }
}

const entry = (id: string, stream: string, seq = 1): StoredEntry => ({
  id,
  stream,
  seq,
  prevSeq: seq - 1,
  ts: 1,
  exp: 2,
  data: { id },
});

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
async function until(check: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

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

/** Attaches a device on a node and waits until its presence is confirmed (it asks for a catch-up). */
async function attach(node: { bus: RedisBus; sink: Sink }, device: string, session: string) {
  node.sink.held.add(device);
  const before = node.sink.resyncs.length;
  node.bus.attached(device, session);
  await until(() => node.sink.resyncs.length > before, 'presence confirmed');
}

describe('RedisBus', () => {
  it('routes a device entry to the node holding the device, and nowhere when it is offline', async () => {
    const [a, b, c] = await nodes(3);
    await attach(b!, 'dev1', 's1');
    await attach(c!, 'dev3', 's3');
    expect(b!.sink.resyncs).toContainEqual({ device: 'dev1' });
    const routed = a!.bus.counters.routed;
    // A marker for c's device in the same call, published after m1 on a's one connection: when c
    // has it, anything a sent before it (m2 to a wrong node) has arrived too.
    a!.bus.route([entry('m1', 'd:dev1'), entry('m2', 'd:nobody'), entry('mc', 'd:dev3')]);
    await until(() => b!.sink.entries.length === 1 && c!.sink.entries.length === 1, 'm1 on b, mc on c');
    // And a marker after m1 on b's inbox: a second copy of m1 would come before it.
    a!.bus.route([entry('mb', 'd:dev1', 2)]);
    await until(() => b!.sink.entries.length === 2, 'mb on b');
    expect(b!.sink.ids()).toEqual(['m1', 'mb']);
    expect(c!.sink.ids()).toEqual(['mc']);
    expect(a!.sink.entries).toEqual([]);
    expect(a!.bus.counters.routed - routed).toBe(3); // m1, mc, mb: nothing posted for m2
    expect(await a!.bus.isOnline('dev1')).toBe(true);
    expect(await a!.bus.isOnline('nobody')).toBe(false);
  });

  it('hands entries of local devices over in-process, without Redis', async () => {
    const [a] = await nodes(1);
    a!.sink.held.add('dev1'); // no presence in Redis at all
    a!.bus.route([entry('m1', 'd:dev1')]);
    expect(a!.sink.ids()).toEqual(['m1']); // synchronously
  });

  it('fans a topic entry out to exactly the nodes that follow it, once each', async () => {
    const [a, b, c] = await nodes(3);
    b!.bus.followed('t:news');
    c!.bus.followed('t:news');
    await until(() => b!.sink.resyncs.length + c!.sink.resyncs.length === 2, 'subscriptions confirmed');
    expect(b!.sink.resyncs).toEqual([{ stream: 't:news' }]);
    a!.bus.route([entry('m1', 't:news')]);
    b!.bus.route([entry('m2', 't:news', 2)]);
    await until(() => b!.sink.entries.length === 2 && c!.sink.entries.length === 2, 'fan-out');
    // Redis took b's m2 before c got it; a marker a publishes now reaches b after b's own m2 came
    // back from Redis (and was dropped), and reaches each node after any second copy.
    a!.bus.route([entry('mk', 't:news', 3)]);
    await until(() => b!.sink.entries.length === 3 && c!.sink.entries.length === 3, 'the marker');
    expect(b!.sink.ids().sort()).toEqual(['m1', 'm2', 'mk']); // m2 locally, not again from Redis
    expect(c!.sink.ids().sort()).toEqual(['m1', 'm2', 'mk']);
    // The publisher without followers still offers it locally (its hub finds nobody).
    expect(a!.sink.ids()).toEqual(['m1', 'mk']);

    c!.bus.unfollowed('t:news');
    // Barrier: Redis counts one subscriber of the topic channel left (b), not a sleep.
    const channel = (c!.bus as unknown as { keys: { topic(s: string): string } }).keys.topic('t:news');
    const cmd = (c!.bus as unknown as { cmd: { pubsub(...a: string[]): Promise<unknown> } }).cmd;
    for (const end = Date.now() + 5000; ; ) {
      const [, n] = (await cmd.pubsub('NUMSUB', channel)) as [string, number];
      if (n === 1) break;
      if (Date.now() > end) throw new Error(`still ${n} subscribers`);
      await sleep(10);
    }
    // m3 on the topic, then a marker for c's own device from the same connection: c has the marker,
    // so m3 would have reached c before it had c still been subscribed.
    await attach(c!, 'devc', 'sc');
    a!.bus.route([entry('m3', 't:news', 4), entry('mc', 'd:devc')]);
    await until(() => b!.sink.ids().includes('m3') && c!.sink.ids().includes('mc'), 'm3 on b, mc on c');
    expect(c!.sink.ids()).not.toContain('m3');
  });

  it('routes device commands to the holder, and tells an older holder its session was replaced', async () => {
    const [a, b] = await nodes(2);
    await attach(a!, 'dev1', 'old');
    a!.bus.send('dev1', { t: 'follow', topic: 'x', seq: 0 }); // local: applied at once
    expect(a!.sink.commands).toEqual([['dev1', { t: 'follow', topic: 'x', seq: 0 }]]);
    b!.bus.send('dev1', { t: 'unfollow', topic: 'x' });
    await until(() => a!.sink.commands.length === 2, 'command on a');
    expect(a!.sink.commands[1]).toEqual(['dev1', { t: 'unfollow', topic: 'x' }]);

    await attach(b!, 'dev1', 'new');
    await until(() => a!.sink.commands.length === 3, 'replaced on a');
    expect(a!.sink.commands[2]).toEqual(['dev1', { t: 'replaced', session: 'old' }]);
    // The old session's close (its hub detaches it) must not remove the new presence.
    a!.sink.held.delete('dev1');
    a!.bus.detached('dev1', 'old');
    // Barrier: a lookup on a's connection runs after its presence drop; the new presence stands.
    expect(await a!.bus.isOnline('dev1')).toBe(true);
    a!.bus.route([entry('m1', 'd:dev1')]);
    await until(() => b!.sink.entries.length === 1, 'm1 on b');
  });

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
