import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { StorageError } from '../errors.js';
import { fileStorage } from './file.js';
import { localStorageStorage, type StorageLike } from './local.js';
import { memoryStorage } from './memory.js';
import type { ClientState } from './types.js';

const state: ClientState = {
  credentials: { deviceId: 'dev1', token: 'secret' },
  cursors: { 'd:dev1': 42, 't:news': 7 },
  dedupe: ['a', 'b', 'c'],
  heartbeat: { wifi: { interval: 285, good: 285, ceiling: 300, settledAt: 1_700_000_000_000 } },
};

describe('memoryStorage', () => {
  it('starts empty, round-trips, and never aliases the caller’s objects', async () => {
    const s = memoryStorage();
    expect(await s.load()).toBeUndefined();
    const mine = structuredClone(state);
    await s.save(mine);
    mine.cursors['d:dev1'] = 0;
    const loaded = await s.load();
    expect(loaded).toEqual(state);
    if (loaded) loaded.dedupe.push('x');
    expect(await s.load()).toEqual(state);
  });
});

class FakeStorage implements StorageLike {
  readonly map = new Map<string, string>();
  quota = Number.POSITIVE_INFINITY;
  getItem(k: string) {
    return this.map.get(k) ?? null;
  }
  setItem(k: string, v: string) {
    if (v.length > this.quota) throw new Error('QuotaExceededError');
    this.map.set(k, v);
  }
}

describe('localStorageStorage', () => {
  it('round-trips through any Storage-like object under its key', async () => {
    const backing = new FakeStorage();
    const s = localStorageStorage('pushwire:test', backing);
    expect(await s.load()).toBeUndefined();
    await s.save(state);
    expect(JSON.parse(backing.getItem('pushwire:test') ?? '')).toEqual(state);
    expect(await s.load()).toEqual(state);
  });

  it('drops malformed entries but keeps the rest', async () => {
    const backing = new FakeStorage();
    backing.setItem(
      'k',
      JSON.stringify({
        cursors: { a: 1, b: -1, c: 'x', d: 2.5 },
        dedupe: ['x', 3],
        credentials: { deviceId: 1 },
      }),
    );
    expect(await localStorageStorage('k', backing).load()).toEqual({ cursors: { a: 1 }, dedupe: ['x'] });
  });

  it('turns unreadable data and write failures into StorageError', async () => {
    const backing = new FakeStorage();
    backing.setItem('k', '{not json');
    await expect(localStorageStorage('k', backing).load()).rejects.toBeInstanceOf(StorageError);
    backing.setItem('k2', '[1,2]');
    await expect(localStorageStorage('k2', backing).load()).rejects.toMatchObject({ code: 'ERR_STORAGE' });
    backing.quota = 10;
    await expect(localStorageStorage('k3', backing).save(state)).rejects.toBeInstanceOf(StorageError);
  });

  it('without a localStorage in scope fails with a clear StorageError', async () => {
    await expect(localStorageStorage('k').load()).rejects.toThrow(/no localStorage/);
  });
});

describe('fileStorage (real files)', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'pushwire-client-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('round-trips atomically: the file is always complete JSON and no temp file is left', async () => {
    const path = join(dir, 'nested', 'state.json');
    const s = fileStorage(path);
    expect(await s.load()).toBeUndefined();
    await s.save(state);
    expect(JSON.parse(await readFile(path, 'utf8'))).toEqual({ deviceId: 'dev1', ...state });
    expect(await fileStorage(path).load()).toEqual(state); // a fresh adapter (a restarted process)
    expect(await readdir(join(dir, 'nested'))).toEqual(['state.json']);
  });

  it('serialises concurrent saves: the last one wins, every intermediate file was whole', async () => {
    const path = join(dir, 'state.json');
    const s = fileStorage(path);
    const saves = Array.from({ length: 20 }, (_, i) => s.save({ ...state, cursors: { 'd:dev1': i } }));
    await Promise.all(saves);
    expect((await s.load())?.cursors).toEqual({ 'd:dev1': 19 });
    expect(await readdir(dir)).toEqual(['state.json']);
  });

  it('reports a corrupt file instead of silently starting over (it may hold credentials)', async () => {
    const path = join(dir, 'state.json');
    await writeFile(path, '{"cursors": {', 'utf8');
    await expect(fileStorage(path).load()).rejects.toBeInstanceOf(StorageError);
  });

  it('a failed write leaves the previous state intact and no temp file behind', async () => {
    const path = join(dir, 'state.json');
    const s = fileStorage(path);
    await s.save(state);
    // A target that is a non-empty directory cannot be renamed over: the write fails after the
    // temp file was written, and the temp file must be cleaned up.
    const target = join(dir, 'blocked');
    await mkdir(target);
    await writeFile(join(target, 'keep'), 'x');
    await expect(fileStorage(target).save(state)).rejects.toBeInstanceOf(StorageError);
    expect(await s.load()).toEqual(state);
    expect((await readdir(dir)).filter((f) => f.endsWith('.tmp'))).toEqual([]);
  });
});
