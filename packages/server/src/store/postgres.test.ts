import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type PostgresServer, startPostgres } from '../../../../test/helpers/postgres.js';
import { storeContract } from './contract.js';
import { storeQuotaContract } from './contract-quotas.js';
import { PostgresStore, type PostgresStoreOptions } from './postgres.js';
import type { NewEntry, PublishBatchItem } from './types.js';

const T = 1_700_000_000_000;
const HOUR = 60 * 60 * 1000;

const entry = (id: string, stream: string, extra: Partial<NewEntry> = {}): NewEntry => ({
  id,
  stream,
  ts: T,
  exp: T + HOUR,
  data: { id },
  ...extra,
});
const one = (id: string, stream: string, extra: Partial<NewEntry> = {}): PublishBatchItem => ({
  id,
  entries: [entry(id, stream, extra)],
});

let server: PostgresServer;
let schemas = 0;
const nextSchema = () => `test${++schemas}`;

beforeAll(async () => {
  server = await startPostgres();
}, 60_000);
afterAll(async () => {
  await server?.stop();
});

// A fresh schema per test store on one private PostgreSQL.
const open = (more: Partial<PostgresStoreOptions> = {}) =>
  PostgresStore.connect({ url: server.url, schema: nextSchema(), ...more });

storeContract('postgres', async () => ({ store: await open(), cleanup: async () => {} }));
storeQuotaContract('postgres', async () => ({ store: await open(), cleanup: async () => {} }));

describe('PostgresStore', () => {
  it('hands out gap-free seqs in commit order to publishes from two stores (two nodes) at once', async () => {
    const schema = nextSchema();
    const [a, b] = await Promise.all([
      PostgresStore.connect({ url: server.url, schema }),
      PostgresStore.connect({ url: server.url, schema }),
    ]);
    try {
      const n = 150;
      const results = await Promise.all(
        Array.from({ length: n }, (_, i) =>
          (i % 2 ? a : b).publish({
            id: `p${i}`,
            entries: ['s', 'd:x', `t:${i % 3}`].map((s) => entry(`p${i}`, s)),
          }),
        ),
      );
      const seqsOf = (stream: string) =>
        results
          .flatMap((r) => r.record.entries.filter((e) => e.stream === stream).map((e) => e.seq))
          .sort((x, y) => x - y);
      expect(seqsOf('s')).toEqual(Array.from({ length: n }, (_, i) => i + 1));
      expect(seqsOf('d:x')).toEqual(Array.from({ length: n }, (_, i) => i + 1));
      const read = await a.read('s', 0, 1000, T);
      expect(read.map((e) => e.seq)).toEqual(Array.from({ length: n }, (_, i) => i + 1));
      // The same entry (id) holds the seq its publish was told.
      for (const r of results) expect(read[r.record.entries[0]!.seq - 1]?.id).toBe(r.record.id);
    } finally {
      await Promise.all([a.close(), b.close()]);
    }
  });

  it('detects the same id published through two stores at once: one append, one record', async () => {
    const schema = nextSchema();
    const [a, b] = await Promise.all([
      PostgresStore.connect({ url: server.url, schema }),
      PostgresStore.connect({ url: server.url, schema }),
    ]);
    try {
      const results = await Promise.all(
        Array.from({ length: 20 }, (_, i) => (i % 2 ? a : b).publish(one(`same${i % 4}`, `s${i % 4}`))),
      );
      expect(results.filter((r) => !r.duplicate)).toHaveLength(4);
      for (let k = 0; k < 4; k++) expect(await a.head(`s${k}`)).toBe(1);
    } finally {
      await Promise.all([a.close(), b.close()]);
    }
  });

  it('group-commits publishes of one tick: collapse and backlog bounds hold inside a batch', async () => {
    const store = await open();
    try {
      await store.createDevice({ id: 'd1', tokenHash: 'h', createdAt: T, lastSeen: 0 });
      // Server-generated ids (no lookup first): the three reach the writer in one tick, one batch.
      const collapsing = await Promise.all(
        ['a', 'b', 'c'].map((id) => store.publish({ ...one(id, 's', { collapseKey: 'k' }), fresh: true })),
      );
      expect(collapsing.map((r) => r.record.entries[0]!.seq)).toEqual([1, 2, 3]);
      expect((await store.read('s', 0, 10, T)).map((e) => e.id)).toEqual(['c']);
      await store.publish(one('d', 's', { collapseKey: 'k' }));
      expect((await store.read('s', 0, 10, T)).map((e) => e.id)).toEqual(['d']);

      const limits = { maxPending: 3 };
      const settled = await Promise.allSettled(
        Array.from({ length: 8 }, (_, i) => store.publish({ ...one(`q${i}`, 'd:d1'), limits })),
      );
      expect(settled.filter((r) => r.status === 'fulfilled')).toHaveLength(3);
      for (const r of settled)
        if (r.status === 'rejected') expect(r.reason).toMatchObject({ quota: 'DEVICE_BACKLOG_FULL' });
      expect((await store.read('d:d1', 0, 10, T)).map((e) => e.seq)).toEqual([1, 2, 3]);
    } finally {
      await store.close();
    }
  });

  it('delivery status: records the ack time of each entry an ack covers, not of skipped ones', async () => {
    const store = await open();
    try {
      await store.createDevice({ id: 'd1', tokenHash: 'h', createdAt: 0, lastSeen: 0 });
      await store.createDevice({ id: 'd2', tokenHash: 'h', createdAt: 0, lastSeen: 0 });
      const now = Date.now();
      const publish = (id: string, extra: Partial<NewEntry> = {}) => {
        const ts = extra.ts ?? now;
        return store.publish({ id, entries: [{ id, stream: 'd:d1', ts, exp: ts + HOUR, ...extra }] });
      };
      await publish('m1');
      await publish('c1', { collapseKey: 'k' });
      await publish('c2', { collapseKey: 'k' });
      await publish('old', { ts: now - 2 * HOUR, exp: now - HOUR }); // long expired: skipped
      await publish('m5');
      void store.ack('d1', { 'd:d1': 5 }); // not awaited: entryFate writes pending acks first
      for (const seq of [1, 3, 5]) {
        const f = await store.entryFate('d:d1', seq);
        expect(f.ackedAt).toBeGreaterThanOrEqual(now);
        expect(f.cursor).toBe(5);
      }
      expect(await store.entryFate('d:d1', 2)).toMatchObject({
        entry: 'collapsed',
        collapsedBy: { id: 'c2', seq: 3 },
      });
      expect((await store.entryFate('d:d1', 2)).ackedAt).toBeUndefined();
      expect((await store.entryFate('d:d1', 4)).ackedAt).toBeUndefined();
      await store.sweep(Date.now());
      expect(await store.entryFate('d:d1', 1)).toMatchObject({ entry: 'gone', ackedAt: expect.any(Number) });
      await store.deleteDevice('d1');
      expect((await store.entryFate('d:d1', 5)).cursor).toBeUndefined();

      // A topic entry: subscribers at or past it, and behind it.
      await store.subscribe('d2', 'news');
      const { record } = await store.publish(one('n1', 't:news'));
      expect((await store.entryFate('t:news', 1)).subscribers).toEqual({ atOrPast: 0, behind: 1 });
      await store.ack('d2', { 't:news': record.entries[0]!.seq });
      expect((await store.entryFate('t:news', 1)).subscribers).toEqual({ atOrPast: 1, behind: 0 });
      expect((await store.recentEntries('t:news', 5)).map((e) => e.id)).toEqual(['n1']);
    } finally {
      await store.close();
    }
  });

  it('answers STORE_UNAVAILABLE while PostgreSQL is down, keeps what it acknowledged, and works again once it is back', async () => {
    const own = await startPostgres();
    try {
      const store = await PostgresStore.connect({ url: own.url, connectTimeoutMs: 1000 });
      const acknowledged = [(await store.publish(one('before', 's'))).record.id];
      await own.kill();
      // Backends may outlive their postmaster for a moment (and commit): publish until refused.
      let refused: unknown;
      for (let i = 0; refused === undefined && i < 200; i++) {
        await store.publish(one(`during${i}`, 's')).then(
          (r) => acknowledged.push(r.record.id),
          (err: unknown) => {
            refused = err;
          },
        );
      }
      expect(refused).toMatchObject({ code: 'STORE_UNAVAILABLE' });
      expect(store.connected).toBe(false);
      await own.start();
      // Every acknowledged publish survived the crash (SIGKILL), in order, and numbering continues.
      const read = await store.read('s', 0, 1000, T);
      // The refused publish may have committed (its answer lost): never more than that one.
      expect(read.map((e) => e.id).slice(0, acknowledged.length)).toEqual(acknowledged);
      expect(read.length).toBeLessThanOrEqual(acknowledged.length + 1);
      expect(store.connected).toBe(true);
      const next = await store.publish(one('after', 's'));
      expect(next.record.entries[0]!.seq).toBe(read.at(-1)!.seq + 1);
      await store.close();
    } finally {
      await own.stop();
    }
  }, 60_000);

  it('refuses a server that cannot be reached with STORE_UNAVAILABLE, naming it without the password', async () => {
    const err = await PostgresStore.connect({
      url: 'postgres://pushwire:secret@127.0.0.1:1/none',
      connectTimeoutMs: 500,
    }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'STORE_UNAVAILABLE' });
    expect(String((err as Error).message)).not.toContain('secret');
  });

  it('refuses what is not a PostgreSQL URL with STORE_INVALID', async () => {
    for (const url of ['', 'db:5432', 'redis://127.0.0.1:6379', 'mysql://u:secret@h/db']) {
      const err = await PostgresStore.connect({ url }).catch((e: unknown) => e);
      expect(err).toMatchObject({ code: 'STORE_INVALID' });
      expect(String((err as Error).message)).not.toContain('secret');
    }
  });

  it('refuses a database written by a newer Pushwire (STORE_SCHEMA) and a bad schema name', async () => {
    const schema = nextSchema();
    await (await PostgresStore.connect({ url: server.url, schema })).close();
    const client = new pg.Client({ connectionString: server.url });
    await client.connect();
    await client.query(`UPDATE ${schema}.schema_version SET version = 999`);
    await client.end();
    await expect(PostgresStore.connect({ url: server.url, schema })).rejects.toMatchObject({
      code: 'STORE_SCHEMA',
    });
    await expect(PostgresStore.connect({ url: server.url, schema: 'x; DROP TABLE y' })).rejects.toMatchObject(
      {
        code: 'STORE_INVALID',
      },
    );
  });

  it('migrates a version-2 schema: purges Web Push subscriptions of deleted devices, adds register key counts', async () => {
    const schema = nextSchema();
    const first = await PostgresStore.connect({ url: server.url, schema });
    await first.createDevice({ id: 'dev1', tokenHash: 'h', createdAt: T, lastSeen: 0 });
    await first.close();
    // Back to what version 2 left: no key column, and a subscription whose device was deleted.
    const client = new pg.Client({ connectionString: server.url });
    await client.connect();
    await client.query(`DROP TABLE ${schema}.register_keys`);
    await client.query(`ALTER TABLE ${schema}.devices DROP COLUMN key_id`);
    const sub = `INSERT INTO ${schema}.webpush_subscriptions VALUES ($1, $2, $3, NULL, 'tk', ${T}, NULL)`;
    await client.query(sub, ['s-live', 'dev1', 'a'.repeat(64)]);
    await client.query(sub, ['s-orphan', 'gone', 'b'.repeat(64)]);
    await client.query(`UPDATE ${schema}.schema_version SET version = 2`);
    await client.end();

    const store = await PostgresStore.connect({ url: server.url, schema });
    try {
      expect((await store.webPushRegistry.listByDevice('dev1')).map((s) => s.id)).toEqual(['s-live']);
      expect(await store.webPushRegistry.byId('s-orphan')).toBeUndefined();
      const made = { tokenHash: 'h', createdAt: T, lastSeen: 0, keyId: 'key_x' };
      await store.createDevice({ id: 'dev2', ...made }, { maxDevicesPerKey: 1 });
      await expect(
        store.createDevice({ id: 'dev3', ...made }, { maxDevicesPerKey: 1 }),
      ).rejects.toMatchObject({
        quota: 'DEVICE_QUOTA_EXCEEDED',
      });
    } finally {
      await store.close();
    }
  });

  it('reports the durability settings', async () => {
    const store = await open();
    const d = await store.checkDurability();
    expect(d).toMatchObject({ fsync: 'on', synchronousCommit: 'on' });
    expect(d.note).toMatch(/loses no acknowledged publish/);
    await store.close();
  });
});
