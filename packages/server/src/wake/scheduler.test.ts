import { describe, expect, it } from 'vitest';
import type { WakeToken } from '../store/wake-tokens.js';
import { DEFAULT_WAKE_POLICY, type WakeEvent, WakeScheduler } from './scheduler.js';
import type { WakeClock, WakeResult } from './types.js';

/** Virtual time: timers run, in due order, when the test advances it. */
class TestClock implements WakeClock {
  t = 0;
  private seq = 0;
  private readonly timers = new Map<number, { at: number; fn: () => void }>();
  now = () => this.t;
  setTimeout = (fn: () => void, ms: number) => {
    this.timers.set(++this.seq, { at: this.t + ms, fn });
    return this.seq;
  };
  clearTimeout = (h: unknown) => void this.timers.delete(h as number);
  async advance(ms: number): Promise<void> {
    const end = this.t + ms;
    for (;;) {
      await new Promise((r) => setImmediate(r));
      const next = [...this.timers].filter(([, x]) => x.at <= end).sort((a, b) => a[1].at - b[1].at)[0];
      if (!next) break;
      this.timers.delete(next[0]);
      this.t = next[1].at;
      next[1].fn();
    }
    this.t = end;
    await new Promise((r) => setImmediate(r));
  }
}

const TOKEN: WakeToken = { deviceId: 'd1', provider: 'apns', token: 'tok', updatedAt: 0 };

function setup(answers: WakeResult[] = [], policy = {}) {
  const clock = new TestClock();
  const world = { online: false, pending: true, token: TOKEN as WakeToken | undefined };
  const sends: number[] = [];
  const events: WakeEvent[] = [];
  const removed: string[] = [];
  const scheduler = new WakeScheduler(
    {
      clock,
      random: () => 0.5,
      isOnline: async () => world.online,
      hasPending: async () => world.pending,
      tokenOf: async () => world.token,
      removeToken: async (_d, t) => {
        removed.push(t);
        world.token = undefined;
      },
      send: async () => {
        sends.push(clock.now());
        return answers.shift() ?? { kind: 'sent' };
      },
      onEvent: (e) => events.push(e),
    },
    { ...DEFAULT_WAKE_POLICY, afterMs: 5000, ...policy },
  );
  return { clock, world, sends, events, removed, scheduler };
}

describe('WakeScheduler', () => {
  it('wakes an offline device once, wake-after after a burst of 100 messages', async () => {
    const { clock, sends, scheduler } = setup();
    for (let i = 0; i < 100; i++) {
      scheduler.entry('d1', 'normal');
      await clock.advance(10);
    }
    await clock.advance(60_000);
    expect(sends).toEqual([5000]); // armed by the first message, not pushed back by the others
    scheduler.entry('d1', 'normal'); // the device has not come yet: still the same burst
    await clock.advance(60_000);
    expect(sends).toHaveLength(1);
  });

  it('sends nothing while the device is online, or when nothing is pending', async () => {
    const { clock, world, sends, events, scheduler } = setup();
    world.online = true;
    scheduler.entry('d1', 'normal');
    await clock.advance(10_000);
    world.online = false;
    world.pending = false; // acknowledged meanwhile (e.g. by a session on another node)
    scheduler.entry('d1', 'normal');
    await clock.advance(10_000);
    expect(sends).toEqual([]);
    expect(events.map((e) => e.t === 'skipped' && e.reason)).toEqual(['online', 'nothing-pending']);
  });

  it('high urgency wakes at once, very-low never', async () => {
    const { clock, sends, scheduler } = setup();
    scheduler.entry('d1', 'very-low');
    await clock.advance(60_000);
    expect(sends).toEqual([]);
    scheduler.entry('d1', 'normal');
    await clock.advance(1000);
    scheduler.entry('d1', 'high'); // brings the armed wake forward
    await clock.advance(0);
    expect(sends).toEqual([61_000]);
  });

  it('after the device connected, the next offline message wakes again; the hourly cap holds', async () => {
    const { clock, sends, events, scheduler } = setup([], { maxPerHour: 2 });
    for (let i = 0; i < 3; i++) {
      scheduler.entry('d1', 'normal');
      await clock.advance(6000);
      scheduler.connected('d1');
    }
    expect(sends).toEqual([5000, 11_000]);
    expect(events.at(-1)).toEqual({ t: 'skipped', device: 'd1', reason: 'hourly-cap' });
    await clock.advance(3_600_000);
    scheduler.entry('d1', 'normal');
    await clock.advance(6000);
    expect(sends).toHaveLength(3);
  });

  it('a device that never came is woken again after repeatAfter', async () => {
    const { clock, sends, scheduler } = setup([], { repeatAfterMs: 60_000 });
    scheduler.entry('d1', 'normal');
    await clock.advance(30_000);
    scheduler.entry('d1', 'normal');
    await clock.advance(40_000);
    expect(sends).toHaveLength(1);
    scheduler.entry('d1', 'normal');
    await clock.advance(6000);
    expect(sends).toHaveLength(2);
  });

  it('retries 503 and 429 with growing, jittered backoff, honouring Retry-After, then succeeds', async () => {
    const { clock, sends, events, scheduler } = setup([
      { kind: 'retry', reason: '503' },
      { kind: 'retry', reason: '429', afterMs: 10_000 },
    ]);
    scheduler.entry('d1', 'high');
    await clock.advance(60_000);
    // 1st retry: 1000 ms × (0.5 + 0.5×0.5) = 750; 2nd: max(1500, Retry-After 10 s).
    expect(sends).toEqual([0, 750, 10_750]);
    expect(events.filter((e) => e.t === 'sent')).toEqual([
      { t: 'sent', device: 'd1', provider: 'apns', attempts: 3 },
    ]);
  });

  it('gives up after the bounded attempts, and removes a token the provider calls dead', async () => {
    const retry: WakeResult = { kind: 'retry', reason: '500' };
    const a = setup([retry, retry, retry, retry, retry], { attempts: 3 });
    a.scheduler.entry('d1', 'high');
    await a.clock.advance(600_000);
    expect(a.sends).toHaveLength(3);
    expect(a.events.at(-1)).toMatchObject({ t: 'failed', attempts: 3 });

    const b = setup([{ kind: 'gone', reason: 'Unregistered' }]);
    b.scheduler.entry('d1', 'high');
    await b.clock.advance(0);
    expect(b.removed).toEqual(['tok']);
    expect(b.events).toContainEqual({ t: 'removed', device: 'd1', provider: 'apns', reason: 'Unregistered' });
  });

  it('a session that ends with messages unacknowledged wakes the device; one that acked all does not', async () => {
    const { clock, world, sends, events, scheduler } = setup();
    world.online = true;
    scheduler.entry('d1', 'normal'); // handed to the session
    await clock.advance(10_000);
    world.online = false; // the app went to the background; the idle timer closed the socket
    scheduler.disconnected('d1');
    await clock.advance(10_000);
    expect(sends).toEqual([15_000]);
    scheduler.connected('d1');
    world.pending = false;
    scheduler.disconnected('d1');
    await clock.advance(10_000);
    expect(sends).toHaveLength(1);
    expect(events.at(-1)).toEqual({ t: 'skipped', device: 'd1', reason: 'nothing-pending' });
  });

  it('never throws into the publish path, even when the store fails', async () => {
    const { clock, world, events, scheduler } = setup();
    Object.defineProperty(world, 'pending', {
      get() {
        throw new Error('store down');
      },
    });
    expect(() => scheduler.entry('d1', 'high')).not.toThrow();
    await clock.advance(0);
    expect(events).toEqual([
      { t: 'failed', device: 'd1', provider: 'apns', reason: 'store down', attempts: 0 },
    ]);
  });
});
