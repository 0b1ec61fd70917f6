import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { type PostgresServer, startPostgres } from '../../../../test/helpers/postgres.js';
import { StoreError } from '../store/errors.js';
import type { StoredEntry } from '../store/types.js';
import { attach, busContract, entry, Sink, sleep, until } from './contract.js';
import { PostgresBus, type PostgresBusOptions } from './postgres.js';
import { MAX_PAYLOAD, PgChannels, packEntries, parsePgMessage } from './postgres-codec.js';

let server: PostgresServer;
let schemas = 0;
const buses: PostgresBus[] = [];

beforeAll(async () => {
  server = await startPostgres();
}, 60_000);
afterAll(async () => {
  await server?.stop();
});
afterEach(async () => {
  await Promise.all(buses.splice(0).map((b) => b.close()));
});

/** Two or more nodes on one fresh schema. */
async function nodes(n: number, more: Partial<PostgresBusOptions> = {}, url = server.url) {
  const schema = `bus${++schemas}`;
  const out: { bus: PostgresBus; sink: Sink }[] = [];
  for (let i = 0; i < n; i++) {
    const bus = await PostgresBus.connect({ url, schema, nodeId: `n${i}`, ...more });
    const sink = new Sink();
    bus.bind(sink);
    buses.push(bus);
    out.push({ bus, sink });
  }
  return out;
}

/** An entry whose JSON takes about `bytes`. */
const big = (id: string, stream: string, bytes: number, seq = 1): StoredEntry => ({
  ...entry(id, stream, seq),
  data: 'x'.repeat(bytes),
});

describe('PostgresBus', () => {
  busContract(nodes);

  it('sends an entry too large for a NOTIFY (8000 bytes) by reference: the receiver re-reads the stream', async () => {
    const [a, b] = await nodes(2);
    await attach(b!, 'dev1', 's1');
    b!.bus.followed('t:news');
    await until(() => b!.sink.resyncs.length === 2, 'topic listened to');
    const before = b!.sink.resyncs.length;
    a!.bus.route([big('huge', 'd:dev1', 12_000), big('huge', 't:news', 12_000), entry('small', 'd:dev1', 2)]);
    await until(() => b!.sink.resyncs.length >= before + 2, 'references');
    expect(b!.sink.resyncs.slice(before)).toEqual(
      expect.arrayContaining([{ device: 'dev1' }, { stream: 't:news' }]),
    );
    await until(() => b!.sink.ids().includes('small'), 'the small entry itself');
    expect(b!.sink.ids()).not.toContain('huge');
    expect(a!.bus.counters.byReference).toBe(2);
  });

  it("a dead node's presence expires within the TTL; a closed node's is removed at once", async () => {
    const [a, b, c] = await nodes(3, { presenceTtlMs: 1200 });
    await attach(a!, 'dev1', 's1');
    await attach(c!, 'dev2', 's2');
    await sleep(1500); // refreshed every 400 ms: still there after more than one TTL
    expect(await b!.bus.isOnline('dev1')).toBe(true);
    // "Kill" node a: its timers stop and its connections drop, nothing is cleaned up.
    const internals = a!.bus as unknown as {
      timers: NodeJS.Timeout[];
      closed: boolean;
      pool: { end(): Promise<void> };
    };
    internals.timers.forEach(clearInterval);
    internals.closed = true;
    await internals.pool.end();
    const t0 = Date.now();
    for (;;) {
      if (!(await b!.bus.isOnline('dev1'))) break;
      if (Date.now() - t0 > 3000) throw new Error('presence did not expire');
      await sleep(50);
    }
    expect(Date.now() - t0).toBeLessThanOrEqual(1300);
    await c!.bus.close();
    expect(await b!.bus.isOnline('dev2')).toBe(false);
  });

  it('after PostgreSQL restarts: listens again, reasserts presence and catches sessions up', async () => {
    const own = await startPostgres();
    try {
      const [a, b] = await nodes(2, { connectTimeoutMs: 1000 }, own.url);
      await attach(b!, 'dev1', 's1');
      b!.bus.followed('t:news');
      await until(() => b!.sink.resyncs.length === 2, 'topic listened to');
      const routedBefore = a!.bus.counters.routed;
      await own.kill();
      await until(() => !a!.bus.healthy, 'unhealthy', 10_000);
      await expect(a!.bus.isOnline('dev1')).rejects.toMatchObject({ code: 'STORE_UNAVAILABLE' });
      await expect(a!.bus.isOnline('dev1')).rejects.toBeInstanceOf(StoreError);
      a!.bus.route([entry('kept', 'd:dev1')]); // down: kept until the listener is back
      await own.start();
      await until(() => a!.bus.healthy && b!.bus.healthy, 'reconnected', 15_000);
      await until(() => b!.sink.resyncs.includes(undefined), 'full resync after reconnect', 5000);
      // The kept job ran once a's listener was back; b gets it live if it listened again first,
      // else through the full resync above (which the hub answers from the store).
      await until(() => a!.bus.counters.routed > routedBefore, 'kept routing sent', 10_000);
      expect(a!.bus.counters.dropped).toBe(0);
      a!.bus.route([entry('m1', 'd:dev1', 2), entry('m2', 't:news')]);
      await until(() => b!.sink.ids().includes('m1') && b!.sink.ids().includes('m2'), 'routing again');
    } finally {
      await Promise.all(buses.splice(0).map((bus) => bus.close()));
      await own.stop();
    }
  }, 60_000);

  it('refuses a node id that could not be a presence value', async () => {
    await expect(PostgresBus.connect({ url: server.url, nodeId: 'a b' })).rejects.toThrow(/node id/);
  });

  it('rejects with STORE_UNAVAILABLE when PostgreSQL cannot be reached', async () => {
    const t0 = Date.now();
    await expect(
      PostgresBus.connect({ url: 'postgres://pushwire@127.0.0.1:1/none', connectTimeoutMs: 500 }),
    ).rejects.toMatchObject({ code: 'STORE_UNAVAILABLE' });
    expect(Date.now() - t0).toBeLessThan(3000);
  });
});

describe('LISTEN/NOTIFY payloads', () => {
  it('packs entries into payloads under the limit, the oversized ones by reference', () => {
    const entries = [
      ...Array.from({ length: 30 }, (_, i) => big(`m${i}`, 't:a', 900, i + 1)),
      big('huge', 't:a', 9000, 31),
      big('huge2', 'd:x', 20_000, 1),
    ];
    const payloads = packEntries('node-a', entries);
    for (const p of payloads) expect(Buffer.byteLength(p)).toBeLessThanOrEqual(MAX_PAYLOAD);
    const parsed = payloads.map((p) => parsePgMessage(p)!);
    expect(parsed.flatMap((m) => m.e ?? []).map((e) => e.id)).toEqual(entries.slice(0, 30).map((e) => e.id));
    expect(parsed.flatMap((m) => m.r ?? []).sort()).toEqual(['d:x', 't:a']);
    expect(parsed.every((m) => m.o === 'node-a')).toBe(true);
    expect(payloads.length).toBeGreaterThan(3); // 30 × ~950 bytes do not fit one
  });

  it('ignores malformed payloads instead of throwing', () => {
    for (const bad of ['', 'not json', '[]', 'null', '{"e":[]}', '{"o":"n","e":{}}', '{"o":"n","r":[1]}']) {
      expect(parsePgMessage(bad)).toBeUndefined();
    }
  });

  it('names channels within the 63-byte identifier limit, distinct per schema and name', () => {
    const a = new PgChannels('pushwire');
    const b = new PgChannels('other');
    const long = `t:${'é'.repeat(128)}`;
    expect(Buffer.byteLength(a.topic(long))).toBeLessThanOrEqual(63);
    expect(a.topic('t:x')).not.toBe(b.topic('t:x'));
    expect(a.topic('t:x')).not.toBe(a.inbox('t:x'));
    expect(a.inbox('node-1')).toMatch(/^pw_[0-9a-f]{40}$/);
  });
});
