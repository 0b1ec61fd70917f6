import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { SqliteStore } from './sqlite.js';

const HOUR = 3600_000;

describe('SqliteStore delivery log (entryFate)', () => {
  let dir: string;
  let path: string;
  let store: SqliteStore;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'pushwire-delivery-'));
    path = join(dir, 'p.db');
    store = SqliteStore.open({ path });
    await store.createDevice({ id: 'd1', tokenHash: 'h', createdAt: 0, lastSeen: 0 });
  });
  afterEach(async () => {
    await store.close();
    await rm(dir, { recursive: true, force: true });
  });

  const publish = (id: string, extra: { exp?: number; collapseKey?: string; ts?: number } = {}) => {
    const ts = extra.ts ?? Date.now();
    return store.publish({ id, entries: [{ id, stream: 'd:d1', ts, exp: ts + HOUR, ...extra }] });
  };

  it('records the ack time of each entry an ack covers, not of skipped ones', async () => {
    const now = Date.now();
    await publish('m1');
    await publish('c1', { collapseKey: 'k' });
    await publish('c2', { collapseKey: 'k' });
    await publish('old', { ts: now - 2 * HOUR, exp: now - HOUR }); // long expired: skipped by reads
    await publish('m5');
    await store.ack('d1', { 'd:d1': 5 });
    const fate = async (_id: string, seq: number) => store.entryFate('d:d1', seq);

    for (const [id, seq] of [
      ['m1', 1],
      ['c2', 3],
      ['m5', 5],
    ] as const) {
      const f = await fate(id, seq);
      expect(f.ackedAt).toBeGreaterThanOrEqual(now);
      expect(f.cursor).toBe(5);
    }
    expect(await fate('c1', 2)).toMatchObject({ entry: 'collapsed', collapsedBy: { id: 'c2', seq: 3 } });
    expect((await fate('c1', 2)).ackedAt).toBeUndefined();
    expect((await fate('old', 4)).ackedAt).toBeUndefined();

    // After the sweep the entries are gone; the ack times stay.
    await store.sweep(Date.now());
    expect(await fate('m1', 1)).toMatchObject({ entry: 'gone', ackedAt: expect.any(Number) });
    expect((await fate('c1', 2)).ackedAt).toBeUndefined();
  });

  it('migrates a version-1 database (no delivery log) and keeps its data', async () => {
    await publish('m1');
    await store.close();
    const db = new Database(path);
    db.exec('DROP TABLE deliveries');
    db.pragma('user_version = 1');
    db.close();

    store = SqliteStore.open({ path });
    expect(await store.getDevice('d1')).toBeDefined();
    expect((await store.read('d:d1', 0, 10, Date.now())).map((e) => e.id)).toEqual(['m1']);
    await store.ack('d1', { 'd:d1': 1 });
    expect((await store.entryFate('d:d1', 1)).ackedAt).toBeGreaterThan(0);
  });
});
