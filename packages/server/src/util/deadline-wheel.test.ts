import { describe, expect, it } from 'vitest';
import { DeadlineWheel } from './deadline-wheel.js';

interface Item {
  wheelSlot: number;
  name: string;
  deadline: number | undefined;
}
const item = (name: string, deadline: number | undefined): Item => ({ wheelSlot: -1, name, deadline });

describe('DeadlineWheel', () => {
  it('expires items once their deadline passed, within one tick', () => {
    const w = new DeadlineWheel<Item>(100, (i) => i.deadline, 0);
    const a = item('a', 250);
    const b = item('b', 1000);
    w.add(a);
    w.add(b);
    const expired: string[] = [];
    w.advance(200, (i) => expired.push(i.name));
    expect(expired).toEqual([]);
    w.advance(300, (i) => expired.push(i.name));
    expect(expired).toEqual(['a']);
    w.advance(5000, (i) => expired.push(i.name));
    expect(expired).toEqual(['a', 'b']);
  });

  it('refiles an item whose deadline moved later (activity) without expiring it', () => {
    const w = new DeadlineWheel<Item>(100, (i) => i.deadline, 0);
    const a = item('a', 300);
    w.add(a);
    a.deadline = 900; // activity: only the timestamp moves
    const expired: string[] = [];
    w.advance(400, (i) => expired.push(i.name));
    expect(expired).toEqual([]);
    w.advance(950, (i) => expired.push(i.name));
    expect(expired).toEqual(['a']);
  });

  it('moves an item whose deadline moved earlier, and never sweeps it twice', () => {
    const w = new DeadlineWheel<Item>(100, (i) => i.deadline, 0);
    const a = item('a', 60_000);
    w.add(a);
    a.deadline = 500;
    w.add(a);
    const expired: string[] = [];
    w.advance(600, (i) => expired.push(i.name));
    expect(expired).toEqual(['a']);
    w.advance(70_000, (i) => expired.push(i.name));
    expect(expired).toEqual(['a']);
  });

  it('drops items whose deadline became undefined (closed sessions)', () => {
    const w = new DeadlineWheel<Item>(100, (i) => i.deadline, 0);
    const a = item('a', 300);
    w.add(a);
    a.deadline = undefined;
    const expired: string[] = [];
    w.advance(10_000, (i) => expired.push(i.name));
    expect(expired).toEqual([]);
    expect(w.size).toBe(0);
  });

  it('holds 100k items in buckets, not timers, and sweeps them in one pass', () => {
    const w = new DeadlineWheel<Item>(250, (i) => i.deadline, 0);
    const items = Array.from({ length: 100_000 }, (_, n) => item(String(n), 1000 + (n % 50) * 100));
    for (const i of items) w.add(i);
    let n = 0;
    w.advance(10_000, () => n++);
    expect(n).toBe(100_000);
  });
});
