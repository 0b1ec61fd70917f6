// The hub without the gateway: followers are a fake implementing Follower, frames come from the
// encoder the hub is given. Live hand-over encodes each entry once and offers the same bytes to
// every follower of its stream.
import { describe, expect, it } from 'vitest';
import type { Store, StoredEntry } from '../store/types.js';
import type { Follower } from './follower.js';
import { Hub } from './hub.js';

class FakeFollower implements Follower {
  readonly streams = new Map<string, number>();
  readonly offered: { entry: StoredEntry; frame: Buffer }[] = [];
  readonly failed: string[] = [];
  heartbeat = 0;
  constructor(
    readonly id: string,
    readonly deviceId: string,
  ) {}
  open(stream: string, cursor: number): void {
    this.streams.set(stream, cursor);
  }
  drop(stream: string): void {
    this.streams.delete(stream);
  }
  offer(entry: StoredEntry, frame: Buffer): void {
    this.offered.push({ entry, frame });
  }
  async catchUp(): Promise<boolean> {
    return true;
  }
  fail(code: string): void {
    this.failed.push(code);
  }
}

const entry = (stream: string, seq: number): StoredEntry => ({
  id: `m${seq}`,
  stream,
  seq,
  prevSeq: seq - 1,
  ts: 1,
  exp: 1,
});

/** Dispatch, attach and detach never touch the store. */
const noStore = {} as Store;

describe('hub with injected followers and encoder', () => {
  it('encodes each entry once and offers the same frame to every follower of its stream', () => {
    const encoded: StoredEntry[] = [];
    const hub = new Hub<FakeFollower>(noStore, { now: () => 0 }, (e) => {
      encoded.push(e);
      return Buffer.from(e.id);
    });
    const a = new FakeFollower('s1', 'a');
    const b = new FakeFollower('s2', 'b');
    hub.attach(a, ['news'], {});
    hub.attach(b, ['news'], {});
    hub.dispatch([entry('t:news', 1), entry('d:a', 1), entry('t:other', 1)]);
    expect(encoded.map((e) => e.stream)).toEqual(['t:news', 'd:a']); // nobody follows t:other
    expect(a.offered.map((o) => o.entry.stream)).toEqual(['t:news', 'd:a']);
    expect(b.offered.map((o) => o.entry.stream)).toEqual(['t:news']);
    expect(a.offered[0]?.frame).toBe(b.offered[0]?.frame);
  });

  it('a newer follower of the same device replaces the older one, which is failed REPLACED', () => {
    const hub = new Hub<FakeFollower>(noStore, { now: () => 0 }, (e) => Buffer.from(e.id));
    const old = new FakeFollower('s1', 'a');
    const fresh = new FakeFollower('s2', 'a');
    hub.attach(old, ['news'], {});
    hub.attach(fresh, [], {});
    expect(old.failed).toEqual(['REPLACED']);
    expect(hub.sessionOf('a')).toBe(fresh);
    hub.dispatch([entry('t:news', 1)]);
    expect(old.offered).toEqual([]);
    hub.detach(fresh);
    expect(hub.online).toBe(0);
  });
});
