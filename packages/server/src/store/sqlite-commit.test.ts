import { describe, expect, it } from 'vitest';
import { QuotaError, StoreError } from './errors.js';
import {
  type CommitTimers,
  type FormedBatch,
  GroupCommit,
  type GroupCommitHooks,
  type GroupCommitOptions,
} from './sqlite-commit.js';
import type { Queued } from './sqlite-queue.js';
import type { WriteBatch, WriteReply } from './sqlite-writer.js';
import type { PublishResult } from './types.js';

/** Fake time: timers fire only when the test advances it; `soon` runs on the next `tick`. */
class FakeTimers implements CommitTimers {
  time = 0;
  private timers: { at: number; fn: () => void }[] = [];
  private soonQueue: (() => void)[] = [];
  now = () => 1_000 + this.time;
  elapsed = () => this.time;
  after(ms: number, fn: () => void): () => void {
    const timer = { at: this.time + ms, fn };
    this.timers.push(timer);
    return () => {
      this.timers = this.timers.filter((t) => t !== timer);
    };
  }
  soon(fn: () => void): () => void {
    this.soonQueue.push(fn);
    return () => {
      this.soonQueue = this.soonQueue.filter((f) => f !== fn);
    };
  }
  /** Runs what was scheduled for the next macrotask. */
  tick(): void {
    const due = this.soonQueue;
    this.soonQueue = [];
    for (const fn of due) fn();
  }
  advance(ms: number): void {
    this.time += ms;
    const due = this.timers.filter((t) => t.at <= this.time);
    this.timers = this.timers.filter((t) => t.at > this.time);
    for (const t of due) t.fn();
  }
}

/** Fake writer: records batches; the test answers them. */
class FakeWriter {
  readonly batches: WriteBatch[] = [];
  send(batch: WriteBatch): void {
    this.batches.push(batch);
  }
}

const committed = (batch: WriteBatch, over: Partial<WriteReply & { ok: true }> = {}): WriteReply => ({
  n: batch.n,
  ok: true,
  results: batch.ops.map(() => ({ ok: true as const })),
  collapsed: 0,
  expired: 0,
  ms: 1,
  ...over,
});

function setup(opts: Partial<GroupCommitOptions> = {}, hooks: Partial<GroupCommitHooks> = {}) {
  const timers = new FakeTimers();
  const writer = new FakeWriter();
  const events: string[] = [];
  const commit = new GroupCommit(
    writer,
    {
      form: (items): FormedBatch => {
        const results: FormedBatch['results'] = items.map((item) =>
          item.publish
            ? { record: { id: item.publish.id, entries: [], ts: 0, exp: 0 }, duplicate: false, appended: [] }
            : undefined,
        );
        const publishes = items.filter((item) => item.publish).length;
        const ops: FormedBatch['ops'] = items.flatMap((item) => (item.op ? [[0, item.op.op]] : []));
        return { results, rollback: new Map(), publishes, durable: true, writes: [], ops };
      },
      committed: () => events.push('committed'),
      refused: (_batch, error) => events.push(`refused ${error.code}`),
      ...hooks,
    },
    { maxDelayMs: 0, softDelayMs: 25, maxSize: 4, ...opts },
    timers,
  );
  const publish = (id: string) =>
    new Promise<PublishResult>((resolve, reject) => {
      const queued: Queued = { publish: { id, entries: [], limits: undefined, rows: [], resolve, reject } };
      commit.push(queued);
    });
  const op = (k: 'barrier' | 'sweep') =>
    new Promise<unknown>((resolve, reject) => {
      commit.push({ op: { op: k === 'sweep' ? { k, now: 0, before: 0 } : { k }, resolve, reject } });
    });
  return { timers, writer, commit, publish, op, events };
}

describe('GroupCommit', () => {
  it('gathers writes queued in one tick into one batch, sent on the next macrotask', async () => {
    const { timers, writer, commit, publish } = setup();
    const a = publish('a');
    const b = publish('b');
    expect(writer.batches).toHaveLength(0);
    timers.tick();
    expect(writer.batches).toHaveLength(1);
    expect(writer.batches[0]!.now).toBe(1_000);
    timers.advance(3);
    commit.settle(committed(writer.batches[0]!));
    expect((await a).record.id).toBe('a');
    expect((await b).record.id).toBe('b');
    expect(commit.stats()).toMatchObject({
      batches: 1,
      publishes: 2,
      writes: 1,
      lastBatchSize: 2,
      lastBatchMs: 3,
    });
  });

  it('sends at once when maxSize writes are queued, and one batch at a time', () => {
    const { timers, writer, commit, publish } = setup({ maxSize: 2 });
    for (const id of ['a', 'b', 'c', 'd', 'e']) void publish(id);
    expect(writer.batches).toHaveLength(1); // the second batch waits for the first's reply
    commit.settle(committed(writer.batches[0]!));
    expect(writer.batches).toHaveLength(2); // the next batch goes before the callers hear back
    commit.settle(committed(writer.batches[1]!));
    timers.tick();
    expect(writer.batches).toHaveLength(3);
    expect(commit.stats().publishes).toBe(4);
  });

  it('waits maxDelayMs for companions when configured', () => {
    const { timers, writer, publish } = setup({ maxDelayMs: 10 });
    void publish('a');
    timers.tick();
    timers.advance(9);
    expect(writer.batches).toHaveLength(0);
    timers.advance(1);
    expect(writer.batches).toHaveLength(1);
  });

  it('lets soft writes alone wait softDelayMs, and a durable write joins them at once', async () => {
    const { timers, writer, commit, publish } = setup();
    commit.soft.touches.set('d1', 5);
    const soft = commit.softWritten();
    timers.tick();
    timers.advance(24);
    expect(writer.batches).toHaveLength(0);
    void publish('a');
    timers.tick();
    expect(writer.batches).toHaveLength(1);
    expect(writer.batches[0]!.touches).toEqual([['d1', 5]]);
    commit.settle(committed(writer.batches[0]!));
    await soft;
  });

  it('rejects every write of a refused batch with its error and goes on with the next', async () => {
    const { timers, writer, commit, publish, events } = setup();
    const a = publish('a');
    timers.tick();
    const b = publish('b');
    commit.settle({ n: 1, ok: false, code: 'STORE_IO', message: 'disk full' });
    await expect(a).rejects.toMatchObject({ code: 'STORE_IO' });
    expect(events).toEqual(['refused STORE_IO']);
    expect(writer.batches).toHaveLength(2);
    commit.settle(committed(writer.batches[1]!));
    expect((await b).record.id).toBe('b');
  });

  it('maps op results: values resolve, quota and store errors reject typed', async () => {
    const { timers, writer, commit, op } = setup();
    const swept = op('sweep');
    const refused = op('barrier');
    timers.tick();
    commit.settle(
      committed(writer.batches[0]!, {
        results: [
          { ok: true, value: 7 },
          { ok: false, code: 'STORE_QUOTA', message: 'full', quota: 'TOO_MANY_TOPICS' },
        ],
      }),
    );
    expect(await swept).toBe(7);
    const error = await refused.catch((err: unknown) => err);
    expect(error).toBeInstanceOf(QuotaError);
    expect((error as QuotaError).quota).toBe('TOO_MANY_TOPICS');
  });

  it('once failed, rejects what was queued and in flight, and every later write', async () => {
    const { timers, commit, publish } = setup();
    const a = publish('a');
    timers.tick();
    const b = publish('b');
    commit.fail(new StoreError('STORE_IO', 'writer died'));
    await expect(a).rejects.toThrow('writer died');
    await expect(b).rejects.toThrow('writer died');
    await expect(publish('c')).rejects.toThrow('writer died');
    await expect(commit.softWritten()).rejects.toThrow('writer died');
    expect(commit.broken?.message).toBe('writer died');
  });

  it('drain sends what is queued and resolves once the writer answered', async () => {
    const { writer, commit, publish } = setup({ maxDelayMs: 1_000 });
    const a = publish('a');
    let drained = false;
    const done = commit.drain().then(() => {
      drained = true;
    });
    expect(writer.batches).toHaveLength(1);
    await Promise.resolve();
    expect(drained).toBe(false);
    commit.settle(committed(writer.batches[0]!));
    await done;
    expect((await a).record.id).toBe('a');
  });

  it('reports each commit carrying publishes to onBatch', () => {
    const { timers, writer, commit, publish, op } = setup();
    const seen: [number, number][] = [];
    commit.onBatch = (n, ms) => seen.push([n, ms]);
    void op('barrier');
    timers.tick();
    commit.settle(committed(writer.batches[0]!));
    void publish('a');
    timers.tick();
    timers.advance(2);
    commit.settle(committed(writer.batches[1]!));
    expect(seen).toEqual([[1, 2]]);
  });
});
