import { describe, expect, it } from 'vitest';
import { RequestLimiter } from './requests.js';

describe('RequestLimiter', () => {
  it('admits a burst, then one per 1/rate, counting refusals in a row', () => {
    const l = new RequestLimiter(10, 3, 0);
    expect([l.admit(0), l.admit(0), l.admit(0)]).toEqual([0, 0, 0]);
    expect(l.admit(0)).toBe(100);
    expect(l.admit(50)).toBe(50);
    expect(l.refusedInRow).toBe(2);
    expect(l.admit(150)).toBe(0);
    expect(l.refusedInRow).toBe(0);
  });

  it('runs jobs one at a time, in order', async () => {
    const l = new RequestLimiter(1000, 1000, 0);
    const log: string[] = [];
    let inFlight = 0;
    let most = 0;
    const done = Array.from(
      { length: 5 },
      (_, i) =>
        new Promise<void>((resolve) =>
          l.run(async () => {
            inFlight++;
            most = Math.max(most, inFlight);
            await new Promise((r) => setTimeout(r, 5));
            log.push(`job${i}`);
            inFlight--;
            resolve();
          }),
        ),
    );
    await Promise.all(done);
    expect(log).toEqual(['job0', 'job1', 'job2', 'job3', 'job4']);
    expect(most).toBe(1);
  });

  it('refuses while its queue holds a whole burst (a stalled store)', () => {
    const l = new RequestLimiter(1000, 2, 0);
    const never = () => new Promise<void>(() => {});
    expect(l.admit(0)).toBe(0);
    l.run(never);
    expect(l.admit(0)).toBe(0);
    l.run(never);
    l.run(never); // two waiting behind the running one
    expect(l.admit(10_000)).toBeGreaterThan(0);
  });
});
