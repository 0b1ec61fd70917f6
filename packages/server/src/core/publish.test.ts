import { describe, expect, it } from 'vitest';
import { HubError } from './errors.js';
import { newEntries, spendBudget, storeLimitsOf } from './publish.js';

describe('publish entries', () => {
  it('builds one entry per stream with the same id, time and expiry', () => {
    const entries = newEntries({ to: { user: 'u' }, ttl: 60, data: { a: 1 } }, 'm1', ['d:a', 'd:b'], 1000);
    expect(entries).toEqual([
      { id: 'm1', stream: 'd:a', ts: 1000, exp: 61_000, data: { a: 1 } },
      { id: 'm1', stream: 'd:b', ts: 1000, exp: 61_000, data: { a: 1 } },
    ]);
  });

  it('ttl 0 expires at once; low urgency holds unless told not to', () => {
    const [e] = newEntries({ to: { device: 'a' }, ttl: 0, urgency: 'low' }, 'm', ['d:a'], 5);
    expect(e).toEqual({ id: 'm', stream: 'd:a', ts: 5, exp: 5, urgency: 'low', hold: true });
    const [f] = newEntries({ to: { device: 'a' }, ttl: 1, urgency: 'low', hold: false }, 'm', ['d:a'], 5);
    expect(f?.hold).toBeUndefined();
  });

  it('passes only the limits that are set, the topic TTL in ms', () => {
    expect(storeLimitsOf({})).toEqual({});
    expect(storeLimitsOf({ maxPendingPerDevice: 3, unfollowedTopicTtl: 2 })).toEqual({
      maxPending: 3,
      unfollowedTopicTtlMs: 2000,
    });
  });
});

describe('entry budget', () => {
  it('takes from a shared budget and refuses past it with TOO_MANY_ENTRIES, taking nothing', () => {
    const budget = { remaining: 5 };
    spendBudget(budget, 3, 5);
    expect(budget.remaining).toBe(2);
    const err = (() => {
      try {
        spendBudget(budget, 3, 5);
      } catch (e) {
        return e;
      }
    })();
    expect(err).toBeInstanceOf(HubError);
    expect((err as HubError).code).toBe('TOO_MANY_ENTRIES');
    expect(budget.remaining).toBe(2);
  });

  it('without a budget: the per-request maximum for this message alone, or unbounded', () => {
    expect(() => spendBudget(undefined, 11, 10)).toThrow(HubError);
    expect(() => spendBudget(undefined, 10, 10)).not.toThrow();
    expect(() => spendBudget(undefined, 1_000_000, undefined)).not.toThrow();
  });
});
