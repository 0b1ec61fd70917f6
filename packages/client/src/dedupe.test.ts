import { describe, expect, it } from 'vitest';
import { dedupeWindow } from './dedupe.js';

describe('dedupeWindow', () => {
  it('remembers the last `capacity` ids and forgets the oldest first', () => {
    const w = dedupeWindow(3);
    for (const id of ['a', 'b', 'c']) w.add(id);
    expect(w.has('a')).toBe(true);
    w.add('d');
    expect(w.has('a')).toBe(false);
    expect(w.toArray()).toEqual(['b', 'c', 'd']);
    expect(w.toArray()).toHaveLength(3);
  });

  it('adding a present id neither duplicates nor evicts', () => {
    const w = dedupeWindow(2, ['a', 'b']);
    w.add('a');
    expect(w.toArray()).toEqual(['a', 'b']);
  });

  it('restores from storage keeping only the newest ids', () => {
    const w = dedupeWindow(
      1000,
      Array.from({ length: 1500 }, (_, i) => `m${i}`),
    );
    expect(w.toArray()).toHaveLength(1000);
    expect(w.has('m499')).toBe(false);
    expect(w.has('m500')).toBe(true);
    expect(w.toArray()[0]).toBe('m500');
  });

  it('refuses a capacity below 1', () => {
    expect(() => dedupeWindow(0)).toThrow(RangeError);
  });
});
