import { describe, expect, it } from 'vitest';
import { DeadlineQueue } from './deadline-queue.js';

interface Item {
  queueSlot: number;
  name: string;
}
const item = (name: string): Item => ({ queueSlot: -1, name });

describe('DeadlineQueue', () => {
  it('expires items in order once their deadline passed', () => {
    const q = new DeadlineQueue<Item>();
    const [a, b, c] = [item('a'), item('b'), item('c')];
    q.add(a, 100);
    q.add(b, 200);
    q.add(c, 200);
    const expired: string[] = [];
    q.advance(99, (i) => expired.push(i.name));
    expect(expired).toEqual([]);
    q.advance(150, (i) => expired.push(i.name));
    expect(expired).toEqual(['a']);
    q.advance(200, (i) => expired.push(i.name));
    expect(expired).toEqual(['a', 'b', 'c']);
    expect(q.size).toBe(0);
    expect(a.queueSlot).toBe(-1);
  });

  it('lets an item go before its deadline: it is no longer held and never expires', () => {
    const q = new DeadlineQueue<Item>();
    const [a, b, c] = [item('a'), item('b'), item('c')];
    q.add(a, 100);
    q.add(b, 100);
    q.add(c, 100);
    q.remove(b);
    q.remove(b); // twice: a no-op
    expect(q.size).toBe(2);
    const expired: string[] = [];
    q.advance(100, (i) => expired.push(i.name));
    expect(expired).toEqual(['a', 'c']);
    q.remove(a); // after it expired: a no-op
    expect(q.size).toBe(0);
  });

  it('keeps removal right across compaction and reuse (a long stream of handshakes)', () => {
    const q = new DeadlineQueue<Item>();
    const expired: string[] = [];
    const settled = new Set<string>();
    const live: Item[] = [];
    let t = 0;
    for (let i = 0; i < 20_000; i++) {
      t += 1;
      const it = item(`i${i}`);
      q.add(it, t + 100);
      live.push(it);
      if (i % 3 === 0 && i >= 7) {
        const recent = live[i - 7] as Item; // a handshake that settles 7 ms after it began
        q.remove(recent);
        settled.add(recent.name);
      }
      q.advance(t, (x) => expired.push(x.name));
    }
    q.advance(t + 100, (x) => expired.push(x.name));
    // Every item either settled or expired, exactly once.
    expect(new Set(expired).size).toBe(expired.length);
    expect(expired.filter((n) => settled.has(n))).toEqual([]);
    expect(expired.length + settled.size).toBe(20_000);
    expect(settled.size).toBe(6664);
    expect(q.size).toBe(0);
  });
});
