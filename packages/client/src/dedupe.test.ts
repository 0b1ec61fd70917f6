import { describe, expect, it } from 'vitest';
import { DedupeWindow } from './dedupe.js';

describe('DedupeWindow', () => {
  it('remembers the last `capacity` ids and forgets the oldest first', () => {
    const w = new DedupeWindow(3);
    for (const id of ['a', 'b', 'c']) w.add(id);
    expect(w.has('a')).toBe(true);
    w.add('d');
    expect(w.has('a')).toBe(false);
    expect(w.toArray()).toEqual(['b', 'c', 'd']);
    expect(w.size).toBe(3);
  });

  it('adding a present id neither duplicates nor evicts', () => {
    const w = new DedupeWindow(2, ['a', 'b']);
    w.add('a');
    expect(w.toArray()).toEqual(['a', 'b']);
  });

  it('restores from storage keeping only the newest ids', () => {
    const w = new DedupeWindow(
      1000,
      Array.from({ length: 1500 }, (_, i) => `m${i}`),
    );
    expect(w.size).toBe(1000);
    expect(w.has('m499')).toBe(false);
    expect(w.has('m500')).toBe(true);
    expect(w.toArray()[0]).toBe('m500');
  });

  it('refuses a capacity below 1', () => {
    expect(() => new DedupeWindow(0)).toThrow(RangeError);
  });
});
