import { describe, expect, it } from 'vitest';
import {
  adaptiveHeartbeat,
  DEFAULT_ADAPTIVE_HEARTBEAT,
  fixedHeartbeat,
  type HeartbeatPolicy,
  type HeartbeatState,
} from './heartbeat.js';

/** Pings at the policy's interval through a NAT that forgets connections idle ≥ T seconds. */
function simulate(policy: HeartbeatPolicy, natTimeout: number, pings: number, start = policy.start()) {
  let s = start;
  let now = 0;
  let failures = 0;
  let failuresAfterSettling = 0;
  const intervals: number[] = [];
  for (let i = 0; i < pings; i++) {
    const interval = policy.interval(s, false);
    intervals.push(interval);
    now += interval * 1000;
    if (interval < natTimeout) {
      s = policy.success(s, interval, now);
    } else {
      failures++;
      if (s.settledAt !== undefined) failuresAfterSettling++;
      s = policy.failure(s, interval, now);
    }
  }
  return { state: s, failures, failuresAfterSettling, intervals };
}

describe('fixedHeartbeat', () => {
  it('defaults to 60 s with a 10 s pong deadline and learns nothing', () => {
    const p = fixedHeartbeat();
    const s = p.start();
    expect(p.interval(s, false)).toBe(60);
    expect(p.pongTimeout).toBe(10);
    expect(p.success(s, 60, 0)).toBe(s);
    expect(p.failure(s, 60, 0)).toBe(s);
    expect(p.learned(s)).toBeUndefined();
  });

  it('uses backgroundInterval in the background', () => {
    const p = fixedHeartbeat({ interval: 30, pongTimeout: 5, backgroundInterval: 240 });
    expect(p.interval(p.start(), false)).toBe(30);
    expect(p.interval(p.start(), true)).toBe(240);
  });

  it('refuses non-positive numbers', () => {
    expect(() => fixedHeartbeat({ interval: 0 })).toThrow(RangeError);
    expect(() => fixedHeartbeat({ pongTimeout: -1 })).toThrow(RangeError);
  });
});

describe('adaptiveHeartbeat', () => {
  const policy = adaptiveHeartbeat();

  it('has the documented defaults', () => {
    expect(DEFAULT_ADAPTIVE_HEARTBEAT).toMatchObject({
      min: 30,
      max: 600,
      initial: 60,
      step: 60,
      successesToProbe: 3,
    });
    expect(policy.interval(policy.start(), false)).toBe(60);
  });

  it.each([45, 100, 125, 250, 300, 350, 480, 599])(
    'converges under a NAT timeout of %i s to an interval < T and ≥ 0.8 T, with few failed probes',
    (T) => {
      const { state, failures, failuresAfterSettling } = simulate(policy, T, 200);
      expect(state.settledAt).toBeDefined();
      expect(state.good).toBe(state.interval);
      expect(state.interval).toBeLessThan(T);
      expect(state.interval).toBeGreaterThanOrEqual(0.8 * T);
      expect(state.interval).toBeGreaterThanOrEqual(T / 1.1 - 1); // the precision bound
      expect(failures).toBeLessThanOrEqual(5); // one overshoot, then a short bisection
      expect(failuresAfterSettling).toBe(0);
    },
  );

  it('climbs to max and stays there when the NAT tolerates more', () => {
    const { state, failures, intervals } = simulate(policy, 3600, 100);
    expect(failures).toBe(0);
    expect(state.interval).toBe(600);
    expect(state.settledAt).toBeDefined();
    expect(intervals.slice(0, 7)).toEqual([60, 60, 60, 120, 120, 120, 180]); // 3 proofs per step
  });

  it('after a failed probe falls back to the last good interval at once', () => {
    let s = policy.start({ interval: 300, good: 240 });
    s = policy.failure(s, 300, 1000);
    expect(s.interval).toBe(240);
    expect(s.ceiling).toBe(300);
    // then probes between the two, not beyond
    for (let i = 0; i < 3; i++) s = policy.success(s, 240, 2000);
    expect(s.interval).toBe(270);
  });

  it('ignores evidence that says nothing about the NAT', () => {
    const s: HeartbeatState = { interval: 120, good: 120, successes: 0, failures: 0 };
    expect(policy.success(s, 30, 0)).toBe(s); // traffic broke the silence: no proof
    expect(policy.failure(s, 20, 0)).toBe(s); // died right after traffic
    expect(policy.failure(s, 7200, 0)).toBe(s); // the device slept two hours
  });

  it('halves a proven interval that keeps failing (the network changed)', () => {
    let s = policy.start({ interval: 400, good: 400, settledAt: 1 });
    s = policy.failure(s, 400, 10);
    expect(s.interval).toBe(400); // one failure may be chance
    s = policy.failure(s, 400, 20);
    expect(s.interval).toBe(200);
    expect(s.ceiling).toBe(400);
    expect(s.settledAt).toBeUndefined();
    const { state } = simulate(policy, 330, 100, s); // and it re-learns the new NAT
    expect(state.interval).toBeLessThan(330);
    expect(state.interval).toBeGreaterThanOrEqual(0.8 * 330);
  });

  it('re-probes once after reprobeAfter (NATs change), and settles again if it still fails', () => {
    const settled = policy.start({ interval: 285, good: 285, ceiling: 300, settledAt: 0 });
    const early = policy.success(settled, 285, 3_600_000);
    expect(early.interval).toBe(285);
    const later = policy.success(settled, 285, 12 * 3_600_000);
    expect(later.interval).toBe(300);
    const failed = policy.failure(later, 300, 12 * 3_600_000 + 300_000);
    expect(failed.interval).toBe(285);
    expect(failed.settledAt).toBeDefined();
  });

  it('resumes from what it learned, and round-trips it', () => {
    const learned = policy.learned(simulate(policy, 250, 200).state);
    expect(learned).toMatchObject({
      interval: expect.any(Number),
      good: expect.any(Number),
      ceiling: expect.any(Number),
    });
    const resumed = policy.start(learned);
    expect(resumed.interval).toBe(learned?.interval);
    expect(simulate(policy, 250, 50, resumed).failures).toBe(0);
  });

  it('clamps learned values into [min, max] and refuses inconsistent bounds', () => {
    const p = adaptiveHeartbeat({ min: 60, max: 300 });
    expect(p.start({ interval: 5000, good: 5000 }).interval).toBe(300);
    expect(() => adaptiveHeartbeat({ min: 100, max: 50 })).toThrow(RangeError);
    expect(() => adaptiveHeartbeat({ initial: 10 })).toThrow(RangeError);
  });
});
