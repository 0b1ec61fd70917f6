import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { storeContract } from './contract.js';
import { storeQuotaContract } from './contract-quotas.js';
import { StoreError } from './errors.js';
import { SCHEMA_VERSION } from './schema.js';
import { SqliteStore, type SqliteStoreOptions } from './sqlite.js';
import type { PublishBatchItem } from './types.js';

const T = 1_700_000_000_000;
const HOUR = 60 * 60 * 1000;
const REPO_ROOT = fileURLToPath(new URL('../../../../', import.meta.url));

const tempDir = () => mkdtemp(join(tmpdir(), 'pushwire-store-'));

const one = (id: string, stream: string, ts = T): PublishBatchItem => ({
  id,
  entries: [{ id, stream, ts, exp: ts + HOUR, data: { id } }],
});

storeContract('sqlite', async () => {
  const dir = await tempDir();
  const store = SqliteStore.open({ path: join(dir, 'store.db') });
  return { store, cleanup: () => rm(dir, { recursive: true, force: true }) };
});

storeQuotaContract('sqlite', async () => {
  const dir = await tempDir();
  const store = SqliteStore.open({ path: join(dir, 'store.db') });
  return { store, cleanup: () => rm(dir, { recursive: true, force: true }) };
});

describe('SqliteStore', () => {
  let dir: string;
  let path: string;
  const opened: SqliteStore[] = [];
  const open = (opts: Partial<SqliteStoreOptions> = {}) => {
    const store = SqliteStore.open({ path, ...opts });
    opened.push(store);
    return store;
  };

  beforeEach(async () => {
    dir = await tempDir();
    path = join(dir, 'store.db');
  });

  afterEach(async () => {
    for (const store of opened.splice(0)) await store.close();
    await rm(dir, { recursive: true, force: true });
  });

  describe('group commit', () => {
    it('commits 200 concurrent publishes in far fewer transactions', async () => {
      const store = open();
      await Promise.all(Array.from({ length: 200 }, (_, i) => store.publish(one(`m${i}`, `d:${i % 7}`))));
      const stats = store.stats();
      expect(stats.publishes).toBe(200);
      expect(stats.batches).toBeLessThanOrEqual(2);
      expect(stats.lastBatchSize).toBeGreaterThan(0);
      expect(stats.lastBatchMs).toBeGreaterThanOrEqual(0);
    });

    it('commits at once when a batch reaches batchMaxSize', async () => {
      const store = open({ batchMaxSize: 16 });
      await Promise.all(Array.from({ length: 100 }, (_, i) => store.publish(one(`m${i}`, 's'))));
      expect(store.stats()).toMatchObject({ batches: 7, publishes: 100, lastBatchSize: 4 });
      expect(await store.head('s')).toBe(100);
    });

    it('waits batchMaxDelayMs for companions across macrotasks', async () => {
      const store = open({ batchMaxDelayMs: 50 });
      const pending = [];
      for (let i = 0; i < 5; i++) {
        pending.push(store.publish(one(`m${i}`, 's')));
        await new Promise((resolve) => setImmediate(resolve));
      }
      await Promise.all(pending);
      expect(store.stats()).toMatchObject({ batches: 1, publishes: 5, lastBatchSize: 5 });
    });

    it('refuses data JSON cannot represent without failing the rest of the batch', async () => {
      const store = open();
      const bad: PublishBatchItem = {
        id: 'bad',
        entries: [{ id: 'bad', stream: 's', ts: T, exp: T + 1, data: 1n }],
      };
      const [good, refused] = await Promise.allSettled([store.publish(one('good', 's')), store.publish(bad)]);
      expect(good.status).toBe('fulfilled');
      expect(refused).toMatchObject({ status: 'rejected', reason: { code: 'STORE_INVALID' } });
      expect((refused as PromiseRejectedResult).reason).toBeInstanceOf(StoreError);
      expect(await store.head('s')).toBe(1);
    });

    it('fails a batch the writer cannot commit whole, and puts its heads back (no hole)', async () => {
      const store = open();
      await store.createDevice({ id: 'd1', tokenHash: 'h', createdAt: T, lastSeen: 0 });
      await store.publish(one('m1', 's'));
      // Another writer takes seq 2 of `s` behind the store's back: the next batch cannot commit.
      const raw = new Database(path);
      raw
        .prepare('INSERT INTO entries (stream, seq, prev_seq, id, ts, exp) VALUES (?, ?, ?, ?, ?, ?)')
        .run('s', 2, 1, 'intruder', T, T + HOUR);
      const outcomes = await Promise.allSettled([
        store.publish(one('m2', 's')),
        store.publish(one('m3', 'other')),
        store.publish({ ...one('mine', 's'), fresh: false }),
        store.subscribe('d1', 'news'),
      ]);
      expect(outcomes.map((o) => o.status)).toEqual(['rejected', 'rejected', 'rejected', 'rejected']);
      expect(outcomes[0]).toMatchObject({ reason: { code: 'STORE_IO' } });
      expect(await store.head('other')).toBe(0);
      expect(await store.topicsOf('d1')).toEqual([]);
      raw.prepare('DELETE FROM entries WHERE id = ?').run('intruder');
      raw.close();
      // Heads went back: the retried publishes take the seqs the failed batch had.
      expect((await store.publish(one('m2', 's'))).appended[0]).toMatchObject({ seq: 2, prevSeq: 1 });
      expect((await store.publish(one('m3', 'other'))).appended[0]).toMatchObject({ seq: 1, prevSeq: 0 });
      expect((await store.read('s', 0, 10, T)).map((e) => [e.id, e.seq])).toEqual([
        ['m1', 1],
        ['m2', 2],
      ]);
      expect(await store.getPublish('mine')).toBeUndefined();
    });

    it('answers a duplicate of a publish still being committed with the first record', async () => {
      const store = open();
      const first = store.publish(one('x', 's'));
      // Let the first batch go to the writer, then publish the same id while it commits.
      await new Promise((resolve) => setImmediate(resolve));
      const [a, b] = await Promise.all([first, store.publish(one('x', 's'))]);
      expect(a.duplicate).toBe(false);
      expect(b).toEqual({ record: a.record, duplicate: true, appended: [] });
      expect(await store.head('s')).toBe(1);
    });

    it('batches acks and touches, visible to reads before they are written', async () => {
      const store = open();
      await store.createDevice({ id: 'd1', tokenHash: 'h', createdAt: T, lastSeen: 0 });
      void store.ack('d1', { 'd:d1': 3 });
      void store.touchDevice('d1', T + 1);
      expect(await store.cursorsOf('d1')).toEqual({ 'd:d1': 3 });
      expect((await store.getDevice('d1'))?.lastSeen).toBe(T + 1);
      await store.ack('d1', { 'd:d1': 2, 't:x': 1 });
      expect(await store.cursorsOf('d1')).toEqual({ 'd:d1': 3, 't:x': 1 });
      expect(store.stats().batches).toBe(0);
    });
  });

  describe('soft writes (acks, last seen)', () => {
    it('gathers acks and touches of many ticks into one write', async () => {
      const store = open({ softWriteDelayMs: 200 });
      await store.createDevice({ id: 'd1', tokenHash: 'h', createdAt: T, lastSeen: 0 });
      const before = store.stats().writes;
      const written: Promise<void>[] = [];
      for (let i = 1; i <= 50; i++) {
        written.push(store.ack('d1', { 'd:d1': i }), store.touchDevice('d1', T + i));
        await new Promise((r) => setImmediate(r));
      }
      await Promise.all(written);
      expect(store.stats().writes - before).toBe(1);
      expect(await store.cursorsOf('d1')).toEqual({ 'd:d1': 50 });
    });

    it('does not make a publish wait for the soft delay', async () => {
      const store = open({ softWriteDelayMs: 60_000 });
      await store.createDevice({ id: 'd1', tokenHash: 'h', createdAt: T, lastSeen: 0 });
      const writes = store.stats().writes;
      const acked = store.ack('d1', { 'd:d1': 1 });
      const t0 = performance.now();
      await store.publish(one('p1', 'd:d1'));
      expect(performance.now() - t0).toBeLessThan(2000); // not the 60 s soft delay
      await acked; // the ack rode along with the publish: one write for both
      expect(store.stats().writes - writes).toBe(1);
    });

    it('writes pending soft writes on close', async () => {
      const first = open({ softWriteDelayMs: 60_000 });
      await first.createDevice({ id: 'd1', tokenHash: 'h', createdAt: T, lastSeen: 0 });
      void first.ack('d1', { 'd:d1': 7 });
      void first.touchDevice('d1', T + 5);
      await first.close();
      const second = open();
      expect(await second.cursorsOf('d1')).toEqual({ 'd:d1': 7 });
      expect((await second.getDevice('d1'))?.lastSeen).toBe(T + 5);
    });
  });

  describe('durability', () => {
    it('keeps entries, heads, devices, subscriptions and cursors across reopen', async () => {
      const first = open();
      await first.createDevice({ id: 'd1', tokenHash: 'h', user: 'u', createdAt: T, lastSeen: 0 });
      await first.publish(one('t1', 't:news'));
      await first.subscribe('d1', 'news');
      for (let i = 1; i <= 3; i++) await first.publish(one(`m${i}`, 'd:d1'));
      void first.ack('d1', { 'd:d1': 2 });
      void first.touchDevice('d1', T + 9);
      void first.publish(one('m4', 'd:d1'));
      await first.close();

      const second = open();
      expect((await second.read('d:d1', 0, 10, T)).map((e) => [e.id, e.seq, e.data])).toEqual([
        ['m1', 1, { id: 'm1' }],
        ['m2', 2, { id: 'm2' }],
        ['m3', 3, { id: 'm3' }],
        ['m4', 4, { id: 'm4' }],
      ]);
      expect(await second.getDevice('d1')).toEqual({
        id: 'd1',
        tokenHash: 'h',
        user: 'u',
        createdAt: T,
        lastSeen: T + 9,
      });
      expect(await second.topicsOf('d1')).toEqual(['news']);
      expect(await second.cursorsOf('d1')).toEqual({ 'd:d1': 2, 't:news': 1 });
      expect((await second.publish(one('m1', 'd:d1'))).duplicate).toBe(true);
      expect((await second.publish(one('m5', 'd:d1'))).appended[0]).toMatchObject({ seq: 5, prevSeq: 4 });
    });

    it('continues heads after a sweep emptied a stream and the store reopened', async () => {
      const first = open();
      await first.publish(one('m1', 's'));
      await first.publish(one('m2', 's'));
      expect(await first.sweep(T + 2 * HOUR)).toBe(2);
      await first.close();

      const second = open();
      expect(await second.head('s')).toBe(2);
      expect((await second.publish(one('m3', 's'))).appended[0]).toMatchObject({ seq: 3, prevSeq: 2 });
    });

    it('forgets publish ids after the retention period', async () => {
      const store = open({ retentionMs: 1000 });
      await store.publish(one('m1', 's'));
      await store.sweep(T + 999);
      expect(await store.getPublish('m1')).toBeDefined();
      await store.sweep(T + 1001);
      expect(await store.getPublish('m1')).toBeUndefined();
    });

    it('uses WAL, a versioned schema, and refuses a newer schema', async () => {
      await open().close();
      const db = new Database(path);
      expect(db.pragma('journal_mode', { simple: true })).toBe('wal');
      expect(db.pragma('user_version', { simple: true })).toBe(SCHEMA_VERSION);
      db.pragma('user_version = 99');
      db.close();
      expect(() => open()).toThrow(expect.objectContaining({ code: 'STORE_SCHEMA' }));
    });

    it('loses no resolved publish when the process is killed with SIGKILL', async () => {
      const child = join(dir, 'child.mjs');
      const storeUrl = new URL('./sqlite.ts', import.meta.url).href;
      await writeFile(child, CRASH_CHILD.replace('STORE_URL', storeUrl));
      const resolved = await runAndKill(child, path, 1500);
      expect(resolved.length).toBeGreaterThanOrEqual(1500);

      const store = open();
      const lost: string[] = [];
      for (const id of resolved) {
        const record = await store.getPublish(id);
        if (record?.entries.length !== 2) lost.push(id);
      }
      expect(lost).toEqual([]);
      for (const stream of ['d:crash', 't:crash']) {
        const head = await store.head(stream);
        expect(head).toBeGreaterThanOrEqual(resolved.length);
        const entries = await store.read(stream, 0, head, T);
        expect(entries.map((e) => e.seq)).toEqual(Array.from({ length: head }, (_, i) => i + 1));
      }
    });
  });
});

/** Publishes forever, 32 at a time, printing each id once its publish resolved. */
const CRASH_CHILD = `
import { SqliteStore } from 'STORE_URL';
const store = SqliteStore.open({ path: process.argv[2] });
let next = 0;
const ts = ${T};
setTimeout(() => process.exit(3), 20_000);
async function worker() {
  for (;;) {
    const id = 'm' + next++;
    const entry = (stream) => ({ id, stream, ts, exp: ts + ${HOUR}, data: { n: next } });
    await store.publish({ id, entries: [entry('d:crash'), entry('t:crash')] });
    process.stdout.write(id + '\\n');
  }
}
for (let i = 0; i < 32; i++) worker();
`;

/** Runs the child until it printed `count` resolved ids, kills it with SIGKILL, returns the ids. */
function runAndKill(script: string, dbPath: string, count: number): Promise<string[]> {
  return new Promise((resolve, reject) => {
    const proc = spawn(process.execPath, ['--import', 'tsx', script, dbPath], {
      cwd: REPO_ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    let killed = false;
    proc.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      out += chunk;
      if (!killed && out.split('\n').length > count) {
        killed = true;
        proc.kill('SIGKILL');
      }
    });
    proc.stderr.setEncoding('utf8').on('data', (chunk: string) => {
      err += chunk;
    });
    proc.on('error', reject);
    proc.on('close', (code, signal) => {
      if (signal !== 'SIGKILL') {
        reject(new Error(`child exited with ${code ?? signal} before the kill: ${err}`));
        return;
      }
      // Only complete lines were printed after their publish resolved.
      resolve(out.split('\n').slice(0, -1));
    });
  });
}
