import { describe, expect, it } from 'vitest';
import { AdmissionControl } from './admission.js';

describe('AdmissionControl', () => {
  it('gives refused clients successive slots at the admission rate', () => {
    const a = new AdmissionControl(10, 5, 0);
    for (let i = 0; i < 5; i++) expect(a.admit(0)).toBe(0);
    const waits = Array.from({ length: 10 }, () => a.admit(0));
    expect(waits).toEqual([100, 200, 300, 400, 500, 600, 700, 800, 900, 1000]);
  });

  it('admits every refused client that comes back at its slot: a storm costs one refusal each', () => {
    const rate = 1000;
    const a = new AdmissionControl(rate, 500, 0);
    // 5,000 clients at once; each retries at the time it was told, with up to 50 ms of lateness.
    let pending = Array.from({ length: 5000 }, (_, i) => ({ id: i, at: 0 }));
    const refusals = new Map<number, number>();
    let admitted = 0;
    let lastAdmitAt = 0;
    let rng = 7;
    const jitter = () => {
      rng = (rng * 48271) % 2147483647;
      return (rng / 2147483647) * 50;
    };
    for (let round = 0; round < 20 && pending.length > 0; round++) {
      pending.sort((x, y) => x.at - y.at);
      const next: typeof pending = [];
      for (const c of pending) {
        const wait = a.admit(c.at, jitter());
        if (wait === 0) {
          admitted++;
          lastAdmitAt = Math.max(lastAdmitAt, c.at);
        } else {
          refusals.set(c.id, (refusals.get(c.id) ?? 0) + 1);
          next.push({ id: c.id, at: c.at + wait });
        }
      }
      pending = next;
    }
    expect(admitted).toBe(5000);
    expect(Math.max(...refusals.values())).toBe(1);
    expect(refusals.size).toBe(4500);
    // 4,500 past the burst at 1,000/s: done in about 4.5 s (plus the lateness), not later.
    expect(lastAdmitAt).toBeGreaterThan(4400);
    expect(lastAdmitAt).toBeLessThan(4700);
  });

  it('starts handing out slots from the present again after a quiet spell', () => {
    const a = new AdmissionControl(10, 1, 0);
    expect(a.admit(0)).toBe(0);
    expect(a.admit(0)).toBe(100);
    expect(a.admit(0)).toBe(200);
    // Much later the bucket is full again; the old slots are in the past.
    expect(a.admit(60_000)).toBe(0);
    expect(a.admit(60_000)).toBe(100);
  });
});
