import { describe, expect, it } from 'vitest';
import { StreamStates } from './streams.js';

describe('StreamStates', () => {
  it('adds, finds, deletes and lists streams in the order they were added', () => {
    const s = new StreamStates();
    const d = s.add('d:dev', 5);
    const t = s.add('t:news', 0);
    expect(s.size).toBe(2);
    expect(s.get('d:dev')).toBe(d);
    expect(s.get('t:news')).toBe(t);
    expect(s.get('t:other')).toBeUndefined();
    expect(s.has('t:news')).toBe(true);
    expect([...s.keys()]).toEqual(['d:dev', 't:news']);
    expect(d).toMatchObject({ name: 'd:dev', sent: 5, pumping: false, dirty: false });

    expect(s.delete('d:dev')).toBe(true);
    expect(s.delete('d:dev')).toBe(false);
    expect(s.has('d:dev')).toBe(false);
    expect([...s.keys()]).toEqual(['t:news']);
    expect(s.size).toBe(1);
    // A stream added again gets a new state: a replay of the old one sees it is no longer its own.
    const again = s.add('d:dev', 9);
    expect(again).not.toBe(d);
    expect([...s.keys()]).toEqual(['t:news', 'd:dev']);
  });

  it('keeps the same answers past the size where it indexes, and when it shrinks back', () => {
    const s = new StreamStates();
    const names = Array.from({ length: 40 }, (_, i) => `t:topic-${i}`);
    for (const [i, n] of names.entries()) s.add(n, i);
    for (const [i, n] of names.entries()) expect(s.get(n)?.sent).toBe(i);
    expect([...s.keys()]).toEqual(names);
    for (const n of names.slice(0, 37)) expect(s.delete(n)).toBe(true);
    expect(s.size).toBe(3);
    expect([...s.keys()]).toEqual(names.slice(37));
    for (const n of names.slice(0, 37)) expect(s.has(n)).toBe(false);
    for (const n of names.slice(37)) expect(s.has(n)).toBe(true);
    for (const n of names.slice(0, 20)) s.add(n, 0);
    expect(s.size).toBe(23);
    for (const n of names.slice(0, 20)) expect(s.has(n)).toBe(true);
  });

  it('lets its caller delete streams while iterating', () => {
    const s = new StreamStates();
    for (const n of ['a', 'b', 'c', 'd']) s.add(n, 0);
    const seen: string[] = [];
    for (const n of s.keys()) {
      seen.push(n);
      s.delete(n);
    }
    expect(seen).toEqual(['a', 'b', 'c', 'd']);
    expect(s.size).toBe(0);
    expect([...s.keys()]).toEqual([]);
  });
});
