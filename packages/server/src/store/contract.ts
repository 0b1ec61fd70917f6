import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { accessContract } from './contract-keys.js';
import type { DeviceRecord, NewEntry, PublishBatchItem, Store } from './types.js';
import { wakeTokenContract } from './wake-contract.js';
import { webPushDeviceContract } from './webpush-contract.js';

/** Publish time used by the suite: a fixed instant, so expiry is exact. */
const T = 1_700_000_000_000;
const HOUR = 60 * 60 * 1000;

const device = (id: string, user?: string): DeviceRecord => ({
  id,
  tokenHash: `hash-${id}`,
  ...(user !== undefined && { user }),
  createdAt: T,
  lastSeen: 0,
});

const entry = (id: string, stream: string, extra: Partial<NewEntry> = {}): NewEntry => ({
  id,
  stream,
  ts: T,
  exp: T + HOUR,
  ...extra,
});

const one = (id: string, stream: string, extra: Partial<NewEntry> = {}): PublishBatchItem => ({
  id,
  entries: [entry(id, stream, extra)],
});

/**
 * The semantics every {@link Store} engine keeps, tested through the interface only. Each test gets
 * a fresh, empty store from `makeStore`; `cleanup` runs after the store is closed.
 */
export function storeContract(
  name: string,
  makeStore: () => Promise<{ store: Store; cleanup: () => Promise<void> }>,
): void {
  describe(`Store contract: ${name}`, () => {
    let store: Store;
    let cleanup: () => Promise<void>;

    beforeEach(async () => {
      ({ store, cleanup } = await makeStore());
    });

    afterEach(async () => {
      await store.close();
      await cleanup();
    });

    const seqsOf = async (stream: string, now = T) =>
      (await store.read(stream, 0, 1000, now)).map((e) => e.seq);

    describe('devices', () => {
      it('creates, gets, lists by user and touches devices', async () => {
        await store.createDevice(device('d1', 'alice'));
        await store.createDevice(device('d2', 'alice'));
        await store.createDevice(device('d3'));
        expect(await store.getDevice('d1')).toEqual(device('d1', 'alice'));
        expect(await store.getDevice('d3')).toEqual(device('d3'));
        expect(await store.getDevice('nope')).toBeUndefined();
        expect((await store.devicesOfUser('alice')).sort()).toEqual(['d1', 'd2']);
        expect(await store.devicesOfUser('bob')).toEqual([]);

        await store.touchDevice('d1', T + 5);
        expect((await store.getDevice('d1'))?.lastSeen).toBe(T + 5);
      });

      it('deletes a device with its stream entries, cursors and subscriptions', async () => {
        await store.createDevice(device('d1', 'alice'));
        await store.createDevice(device('d2', 'alice'));
        await store.publish(one('m1', 'd:d1'));
        await store.publish(one('m2', 'd:d2'));
        await store.subscribe('d1', 'news');
        await store.ack('d1', { 'd:d1': 1 });

        await store.deleteDevice('d1');

        expect(await store.getDevice('d1')).toBeUndefined();
        expect(await store.devicesOfUser('alice')).toEqual(['d2']);
        expect(await store.read('d:d1', 0, 10, T)).toEqual([]);
        expect(await store.cursorsOf('d1')).toEqual({});
        expect(await store.topicsOf('d1')).toEqual([]);
        expect(await seqsOf('d:d2')).toEqual([1]);
      });
    });

    wakeTokenContract(() => store);
    webPushDeviceContract(() => store);
    accessContract(() => store);

    describe('publish and read', () => {
      it('numbers each stream 1, 2, 3… and links prevSeq', async () => {
        expect(await store.head('s')).toBe(0);
        for (let i = 1; i <= 5; i++) {
          const result = await store.publish(one(`m${i}`, 's'));
          expect(result.duplicate).toBe(false);
          expect(result.record.entries).toEqual([{ stream: 's', seq: i }]);
          expect(result.appended).toMatchObject([{ id: `m${i}`, stream: 's', seq: i, prevSeq: i - 1 }]);
        }
        await store.publish(one('other', 'o'));
        expect(await store.head('s')).toBe(5);
        expect(await store.head('o')).toBe(1);
        const read = await store.read('s', 0, 100, T);
        expect(read.map((e) => [e.seq, e.prevSeq])).toEqual([
          [1, 0],
          [2, 1],
          [3, 2],
          [4, 3],
          [5, 4],
        ]);
      });

      it('stores payload, notification, urgency and collapse key', async () => {
        const data = { n: 1, nested: { list: [1, 'two', null] } };
        const notification = { title: 'Hi', body: 'there', extra: 3 };
        await store.publish(one('m1', 's', { data, notification, urgency: 'high', collapseKey: 'k' }));
        await store.publish(one('m2', 's', { data: null }));
        const [first, second] = await store.read('s', 0, 10, T);
        expect(first).toEqual({
          id: 'm1',
          stream: 's',
          seq: 1,
          prevSeq: 0,
          ts: T,
          exp: T + HOUR,
          data,
          notification,
          urgency: 'high',
          collapseKey: 'k',
        });
        expect(second?.data).toBeNull();
      });

      it('appends one publish to several streams atomically and records it', async () => {
        await store.publish(one('first', 'd:b'));
        const item: PublishBatchItem = {
          id: 'multi',
          entries: ['d:a', 'd:b', 'd:c'].map((stream) => entry('multi', stream)),
        };
        const result = await store.publish(item);
        const entries = [
          { stream: 'd:a', seq: 1 },
          { stream: 'd:b', seq: 2 },
          { stream: 'd:c', seq: 1 },
        ];
        expect(result.record).toEqual({ id: 'multi', entries, ts: T, exp: T + HOUR });
        expect(result.appended).toHaveLength(3);
        expect(await store.getPublish('multi')).toEqual(result.record);
        expect(await store.getPublish('unknown')).toBeUndefined();
      });

      it('records a publish with no entries (a user without devices)', async () => {
        const result = await store.publish({ id: 'empty', entries: [] });
        expect(result.duplicate).toBe(false);
        expect(result.record.entries).toEqual([]);
        expect(result.appended).toEqual([]);
        expect((await store.getPublish('empty'))?.entries).toEqual([]);
        expect((await store.publish({ id: 'empty', entries: [] })).duplicate).toBe(true);
      });

      it('reads after a seq, oldest first, at most limit', async () => {
        for (let i = 1; i <= 10; i++) await store.publish(one(`m${i}`, 's'));
        expect((await store.read('s', 3, 4, T)).map((e) => e.seq)).toEqual([4, 5, 6, 7]);
        expect((await store.read('s', 8, 100, T)).map((e) => e.seq)).toEqual([9, 10]);
        expect(await store.read('s', 10, 100, T)).toEqual([]);
        expect(await store.read('s', 0, 0, T)).toEqual([]);
        expect(await store.read('empty', 0, 10, T)).toEqual([]);
      });
    });

    describe('idempotency', () => {
      it('appends nothing for an id published before and returns the first record', async () => {
        const first = await store.publish(one('m1', 's', { data: 1 }));
        const again = await store.publish(one('m1', 's', { data: 2 }));
        expect(again).toEqual({ record: first.record, duplicate: true, appended: [] });
        expect(await store.head('s')).toBe(1);
        expect((await store.read('s', 0, 10, T)).map((e) => e.data)).toEqual([1]);
      });

      it('detects duplicates among concurrent publishes', async () => {
        const results = await Promise.all([
          store.publish(one('m1', 's')),
          store.publish(one('m1', 's')),
          store.publish(one('m2', 's')),
          store.publish(one('m1', 'other')),
        ]);
        expect(results.map((r) => r.duplicate)).toEqual([false, true, false, true]);
        expect(results[1]?.record).toEqual(results[0]?.record);
        expect(results[3]?.record).toEqual(results[0]?.record);
        expect(await store.head('s')).toBe(2);
        expect(await store.head('other')).toBe(0);
      });
    });

    describe('collapse', () => {
      it('hides older entries with the same key, keeping seqs and prevSeq', async () => {
        await store.publish(one('a', 's', { collapseKey: 'k' }));
        await store.publish(one('b', 's', { collapseKey: 'other' }));
        await store.publish(one('c', 's'));
        await store.publish(one('d', 's', { collapseKey: 'k' }));
        await store.publish(one('x', 't', { collapseKey: 'k' }));

        const read = await store.read('s', 0, 10, T);
        expect(read.map((e) => e.id)).toEqual(['b', 'c', 'd']);
        expect(read.at(-1)).toMatchObject({ seq: 4, prevSeq: 3 });
        // The key of another stream is not touched.
        expect((await store.read('t', 0, 10, T)).map((e) => e.id)).toEqual(['x']);

        const e = await store.publish(one('e', 's', { collapseKey: 'k' }));
        expect(e.appended[0]).toMatchObject({ seq: 5, prevSeq: 4 });
        expect((await store.read('s', 0, 10, T)).map((x) => x.id)).toEqual(['b', 'c', 'e']);
      });
    });

    describe('expiry', () => {
      it('never reads an entry whose exp <= now', async () => {
        await store.publish(one('short', 's', { exp: T + 1000 }));
        await store.publish(one('long', 's', { exp: T + 5000 }));
        expect(await seqsOf('s', T)).toEqual([1, 2]);
        expect(await seqsOf('s', T + 999)).toEqual([1, 2]);
        expect(await seqsOf('s', T + 1000)).toEqual([2]);
        expect(await seqsOf('s', T + 5000)).toEqual([]);
      });

      it('never reads an entry published with ttl 0 (exp <= ts)', async () => {
        const zero = await store.publish(one('zero', 's', { exp: T }));
        expect(zero.appended).toMatchObject([{ seq: 1 }]);
        await store.publish(one('past', 's', { exp: T - 10 }));
        await store.publish(one('kept', 's'));
        expect(await seqsOf('s', T - 1000)).toEqual([3]);
        expect(await seqsOf('s', T)).toEqual([3]);
        expect(await store.head('s')).toBe(3);
      });
    });

    describe('cursors and subscriptions', () => {
      beforeEach(async () => {
        await store.createDevice(device('d1'));
      });

      it('moves cursors forward only', async () => {
        expect(await store.cursorsOf('d1')).toEqual({});
        await store.ack('d1', { 'd:d1': 5, 't:a': 2 });
        await store.ack('d1', { 'd:d1': 3 });
        expect(await store.cursorsOf('d1')).toEqual({ 'd:d1': 5, 't:a': 2 });
        await store.ack('d1', { 'd:d1': 7, 't:a': 1 });
        expect(await store.cursorsOf('d1')).toEqual({ 'd:d1': 7, 't:a': 2 });
      });

      it('shows an ack to reads issued right after it, awaited or not', async () => {
        void store.ack('d1', { 'd:d1': 4 });
        expect(await store.cursorsOf('d1')).toEqual({ 'd:d1': 4 });
      });

      it('subscribes at the head of the topic and keeps the cursor when subscribed again', async () => {
        for (let i = 1; i <= 3; i++) await store.publish(one(`n${i}`, 't:news'));
        expect(await store.subscribe('d1', 'news')).toBe(3);
        expect(await store.cursorsOf('d1')).toEqual({ 't:news': 3 });
        expect(await store.subscribe('d1', 'empty')).toBe(0);
        expect(await store.topicsOf('d1')).toEqual(['empty', 'news']);

        await store.publish(one('n4', 't:news'));
        await store.publish(one('n5', 't:news'));
        expect(await store.subscribe('d1', 'news')).toBe(3);
        await store.ack('d1', { 't:news': 4 });
        expect(await store.subscribe('d1', 'news')).toBe(4);

        await store.unsubscribe('d1', 'news');
        expect(await store.topicsOf('d1')).toEqual(['empty']);
        expect(await store.subscribe('d1', 'news')).toBe(5);
      });

      it('counts the devices following a topic (optional subscriberCount)', async () => {
        if (!store.subscriberCount) return;
        await store.createDevice(device('d2'));
        expect(await store.subscriberCount('news')).toBe(0);
        await store.subscribe('d1', 'news');
        await store.subscribe('d2', 'news');
        await store.subscribe('d2', 'other');
        expect(await store.subscriberCount('news')).toBe(2);
        await store.unsubscribe('d1', 'news');
        expect(await store.subscriberCount('news')).toBe(1);
        await store.deleteDevice('d2');
        expect(await store.subscriberCount('news')).toBe(0);
      });

      it('counts deliverable entries after the cursors of the device and its topics', async () => {
        await store.createDevice(device('d2'));
        await store.publish(one('old', 't:news'));
        await store.subscribe('d1', 'news');
        expect(await store.pendingCount('d1', T)).toBe(0);

        await store.publish(one('m1', 'd:d1'));
        await store.publish(one('m2', 'd:d1', { exp: T + 10 }));
        await store.publish(one('m3', 'd:d1', { collapseKey: 'k' }));
        await store.publish(one('m4', 'd:d1', { collapseKey: 'k' }));
        await store.publish(one('m5', 'd:d2'));
        await store.publish(one('n1', 't:news'));
        await store.publish(one('n2', 't:news', { exp: T }));
        await store.publish(one('x1', 't:unsubscribed'));

        // d:d1 → m1, m2, m4 (m3 collapsed); t:news → n1 (n2 has ttl 0).
        expect(await store.pendingCount('d1', T)).toBe(4);
        expect(await store.pendingCount('d1', T + 10)).toBe(3);
        await store.ack('d1', { 'd:d1': 2, 't:news': 2 });
        expect(await store.pendingCount('d1', T)).toBe(1);
        expect(await store.pendingCount('d2', T)).toBe(1);
      });
    });

    describe('sweep', () => {
      it('removes expired, collapsed and acknowledged device entries, never moving heads back', async () => {
        await store.createDevice(device('d1'));
        await store.publish(one('exp', 's', { exp: T + 10 }));
        await store.publish(one('zero', 's', { exp: T }));
        await store.publish(one('c1', 's', { collapseKey: 'k' }));
        await store.publish(one('c2', 's', { collapseKey: 'k' }));
        await store.publish(one('live', 's'));
        await store.publish(one('m1', 'd:d1'));
        await store.publish(one('m2', 'd:d1'));
        await store.publish(one('m3', 'd:d1'));
        await store.ack('d1', { 'd:d1': 2 });

        const before = await store.read('s', 0, 100, T + 10);
        const removed = await store.sweep(T + 10);
        // exp, zero, c1 from s; m1, m2 from d:d1.
        expect(removed).toBe(5);
        expect(await store.read('s', 0, 100, T + 10)).toEqual(before);
        expect((await store.read('d:d1', 0, 100, T + 10)).map((e) => e.id)).toEqual(['m3']);
        expect(await store.head('s')).toBe(5);
        expect(await store.sweep(T + 10)).toBe(0);

        // Everything gone: heads stay, the next entry continues the numbering.
        expect(await store.sweep(T + 2 * HOUR)).toBe(3);
        expect(await store.read('s', 0, 100, T)).toEqual([]);
        expect(await store.head('s')).toBe(5);
        expect(await store.head('d:d1')).toBe(3);
        const next = await store.publish(one('after', 's'));
        expect(next.appended[0]).toMatchObject({ seq: 6, prevSeq: 5 });
      });

      it('keeps recent publish records, so ids stay idempotent', async () => {
        await store.publish(one('m1', 's', { exp: T + 10 }));
        await store.sweep(T + 20);
        expect(await store.getPublish('m1')).toBeDefined();
        expect((await store.publish(one('m1', 's'))).duplicate).toBe(true);
      });
    });

    describe('concurrency', () => {
      it('gives 200 parallel publishes contiguous seqs and distinct results', async () => {
        const n = 200;
        const results = await Promise.all(
          Array.from({ length: n }, (_, i) => store.publish(one(`p${i}`, 's', { data: i }))),
        );
        expect(results.every((r) => !r.duplicate)).toBe(true);
        const seqs = results.map((r) => r.record.entries[0]?.seq);
        expect(new Set(seqs).size).toBe(n);
        expect([...seqs].sort((a, b) => a! - b!)).toEqual(Array.from({ length: n }, (_, i) => i + 1));
        expect(await store.head('s')).toBe(n);
        const read = await store.read('s', 0, 1000, T);
        expect(read.map((e) => e.seq)).toEqual(Array.from({ length: n }, (_, i) => i + 1));
        for (const r of results) {
          const seq = r.record.entries[0]!.seq;
          expect(read[seq - 1]?.id).toBe(r.record.id);
        }
      });
    });

    describe('close', () => {
      it('commits what is pending and then refuses work', async () => {
        const pending = store.publish(one('m1', 's'));
        await store.close();
        await expect(pending).resolves.toMatchObject({ duplicate: false });
        await expect(store.publish(one('m2', 's'))).rejects.toMatchObject({ code: 'STORE_CLOSED' });
        await expect(store.read('s', 0, 10, T)).rejects.toMatchObject({ code: 'STORE_CLOSED' });
        await store.close();
      });
    });
  });
}
