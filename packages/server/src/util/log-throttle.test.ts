import { describe, expect, it } from 'vitest';
import { LogThrottle } from './log-throttle.js';

describe('LogThrottle', () => {
  it('lets the first occurrence through, holds back the rest of the window, then reports them', () => {
    const t = new LogThrottle(1000);
    expect(t.take(0)).toBe(0);
    for (let i = 1; i <= 500; i++) expect(t.take(i)).toBeUndefined();
    expect(t.take(999)).toBeUndefined();
    expect(t.take(1000)).toBe(501);
    expect(t.take(1500)).toBeUndefined();
    expect(t.take(5000)).toBe(1);
  });
});
