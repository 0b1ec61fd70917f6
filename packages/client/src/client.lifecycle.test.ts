import { describe, expect, it } from 'vitest';
import { ClosedError, RequestError } from './errors.js';
import { FakeClock } from './testkit/fake-clock.js';
import { harness, RecordingStore, settle, untilOpen } from './testkit/harness.js';
import type { WakeReport } from './wake.js';

const HOUR = 3_600_000;

describe('wake(deadlineMs)', () => {
  it('open: pings, waits for the pong, drains and reports well before the deadline', async () => {
    const h = harness();
    await untilOpen(h);
    await h.clock.advance(20_000);
    const pings = h.server.frames('ping').length;
    const report = await settle(h.clock, h.client.wake(5000));
    expect(h.server.frames('ping').length).toBe(pings + 1);
    expect(report).toEqual({ state: 'open', connected: true, messages: 0, durationMs: expect.any(Number) });
    expect(report.durationMs).toBeLessThan(1000); // pong + quiet period, not the whole budget
  });

  it('backoff: reconnects now (no backoff wait), drains the replay, acks it, then reports', async () => {
    let refuse = false;
    const h = harness({ server: { refuse: () => refuse } });
    await untilOpen(h);
    refuse = true;
    h.server.last.reset();
    await h.clock.advance(60_000); // several refused attempts: the backoff timer is now long
    expect(h.client.state).toBe('backoff');
    refuse = false;
    for (let i = 0; i < 5; i++) h.server.publish('d:dev1');
    const connects = h.server.sockets.length;
    const report = await settle(h.clock, h.client.wake(10_000));
    expect(h.server.sockets.length).toBe(connects + 1);
    expect(report).toMatchObject({ state: 'open', connected: true, messages: 5 });
    expect(report.durationMs).toBeLessThan(10_000);
    expect(h.server.acked.get('d:dev1')).toBe(5); // acked before the report: the OS may suspend us now
  });

  it('closed: resolves at once', async () => {
    const h = harness();
    await h.client.close();
    expect(await h.client.wake(30_000)).toEqual({
      state: 'closed',
      connected: false,
      messages: 0,
      durationMs: 0,
    });
  });

  it('server silent (half-open socket): replaces the socket after a third of the budget, then reports', async () => {
    const h = harness(); // pong deadline 10 s: longer than the whole budget
    await untilOpen(h);
    h.server.last.blackhole();
    const connects = h.server.sockets.length;
    const report = await settle(h.clock, h.client.wake(9000));
    expect(h.server.sockets.length).toBe(connects + 1);
    expect(report).toMatchObject({ state: 'open', connected: true });
    // 8550 ms budget / 3 = 2850 ms for the pong, then reconnect and a quiet period
    expect(report.durationMs).toBeGreaterThanOrEqual(2850);
    expect(report.durationMs).toBeLessThan(4000);
  });

  it('server silent and the path stays dead: resolves before the deadline with connected=false', async () => {
    const h = harness();
    await untilOpen(h);
    h.server.last.blackhole();
    h.server.o.autoWelcome = false; // new sockets open but nothing ever answers
    const report = await settle(h.clock, h.client.wake(3000));
    expect(report.connected).toBe(false);
    expect(report.durationMs).toBeLessThan(3000);
  });

  it.each([0, 1, 7, 100, 999, 4000, 30_000])(
    'never resolves after a %i ms deadline, whatever the server does',
    async (deadline) => {
      const scenarios: ((h: ReturnType<typeof harness>) => void)[] = [
        () => {}, // healthy
        (h) => h.server.last.blackhole(), // dead path
        (h) => {
          h.server.o.autoWelcome = false; // accepts sockets, never welcomes
          h.server.last.reset();
        },
        (h) => {
          h.server.o.refuse = () => true; // refuses connections
          h.server.last.reset();
        },
        (h) => {
          // floods messages during the wake
          for (let i = 0; i < 50; i++) h.clock.setTimeout(() => h.server.publish('d:dev1'), i * 20);
        },
      ];
      for (const scenario of scenarios) {
        const h = harness();
        await untilOpen(h);
        scenario(h);
        await h.clock.advance(50);
        const start = h.clock.now();
        const report: WakeReport = await settle(h.clock, h.client.wake(deadline));
        expect(report.durationMs).toBe(h.clock.now() - start);
        if (deadline > 0) expect(report.durationMs).toBeLessThan(deadline);
        else expect(report.durationMs).toBe(0);
      }
    },
  );
});

describe('networkChanged / setOnline / setBackground', () => {
  it('networkChanged(): drops the socket and reconnects at once, without backoff or error', async () => {
    const h = harness();
    await untilOpen(h);
    const at = h.clock.now();
    h.client.networkChanged();
    expect(h.client.state).toBe('connecting');
    await untilOpen(h);
    expect(h.clock.now() - at).toBeLessThanOrEqual(15); // open + hello/welcome latency only
    expect(h.server.sockets[0]?.closeCode).toBe(1000);
    expect(h.states.slice(-2).map((s) => s.to)).toEqual(['connecting', 'open']);
    expect(h.errors).toEqual([]);
  });

  it('networkChanged() during a long backoff connects now', async () => {
    let refuse = true;
    const h = harness({ server: { refuse: () => refuse } });
    await h.clock.advance(120_000);
    refuse = false;
    const at = h.clock.now();
    h.client.networkChanged('cellular');
    await untilOpen(h);
    expect(h.clock.now() - at).toBeLessThanOrEqual(15);
    expect(h.client.networkKey).toBe('cellular');
  });

  it('offline: no reconnect attempts until online, then one at once', async () => {
    const h = harness();
    await untilOpen(h);
    h.client.setOnline(false);
    h.server.last.reset(); // the socket dies with the network
    await h.clock.advance(HOUR);
    expect(h.client.state).toBe('backoff');
    expect(h.server.sockets).toHaveLength(1);
    h.client.setOnline(true);
    await untilOpen(h);
    expect(h.server.sockets).toHaveLength(2);
  });

  it('setOnline(true) while already online does not drop a healthy socket', async () => {
    const h = harness();
    await untilOpen(h);
    h.client.setOnline(true);
    await h.clock.advance(1000);
    expect(h.server.sockets).toHaveLength(1);
  });
});

describe('subscribe / unsubscribe', () => {
  it('queued while offline, sent after hello once open; sets and persists the topic cursor', async () => {
    const clock = new FakeClock();
    const storage = new RecordingStore(clock);
    let refuse = true;
    const h = harness({ clock, client: { storage }, server: { refuse: () => refuse } });
    for (let i = 0; i < 4; i++) h.server.publish('t:news'); // the topic's history before we subscribe
    await h.clock.advance(5000);
    let resolved = false;
    const sub = h.client.subscribe('news').then(() => {
      resolved = true;
    });
    await h.clock.advance(1000);
    expect(resolved).toBe(false);
    expect(h.server.frames('sub')).toEqual([]);
    refuse = false;
    await settle(h.clock, sub);
    const frames = h.server.log
      .filter((e) => e.socket === h.server.last.id && e.frame)
      .map((e) => e.frame?.t);
    expect(frames.slice(0, 2)).toEqual(['hello', 'sub']);
    expect(h.client.topics).toEqual(['news']);
    expect(storage.state?.cursors['t:news']).toBe(4); // delivery starts after the subbed seq
    h.server.publish('t:news', { id: 'fresh' });
    await h.clock.advance(100);
    expect(h.ids()).toEqual(['fresh']);
  });

  it('a request lost with its socket is sent again on the next session and resolves once', async () => {
    let swallow = true;
    const h = harness({
      server: {
        onFrame: (s, f) => {
          if (f.t !== 'sub' || !swallow) return false;
          swallow = false;
          s.reset(); // the socket dies before the answer
          return true;
        },
      },
    });
    await untilOpen(h);
    let resolutions = 0;
    const sub = h.client.subscribe('alerts').then(() => resolutions++);
    await settle(h.clock, sub);
    await h.clock.advance(1000);
    expect(resolutions).toBe(1);
    expect(h.server.frames('sub')).toHaveLength(2);
    expect(h.server.sockets).toHaveLength(2);
  });

  it('rejects with RequestError on an error frame carrying its ref', async () => {
    const h = harness({
      server: {
        onFrame: (s, f) => {
          if (f.t !== 'sub') return false;
          s.push({ t: 'error', code: 'BAD_TOPIC', message: 'not allowed', fatal: false, ref: f.ref });
          return true;
        },
      },
    });
    await untilOpen(h);
    const error = await settle(h.clock, h.client.subscribe('secret')).catch((e) => e);
    expect(error).toBeInstanceOf(RequestError);
    expect(error).toMatchObject({ code: 'ERR_REQUEST', serverCode: 'BAD_TOPIC' });
    expect(h.client.state).toBe('open');
    expect(h.errors).toEqual([]); // answered to the caller, not as an error event
  });

  it('refuses invalid topics locally, and every request once closed', async () => {
    const h = harness();
    await expect(h.client.subscribe('bad topic!')).rejects.toMatchObject({ serverCode: 'BAD_TOPIC' });
    const pending = h.client.subscribe('news');
    await h.client.close();
    await expect(pending).rejects.toBeInstanceOf(ClosedError);
    await expect(h.client.unsubscribe('news')).rejects.toBeInstanceOf(ClosedError);
    expect(h.server.frames()).toEqual([]);
  });

  it('unsubscribe forgets the topic and its cursor; welcome.topics is reflected', async () => {
    const clock = new FakeClock();
    const storage = new RecordingStore(clock);
    const h = harness({ clock, client: { storage } });
    h.server.subscriptions.set('dev1', new Set(['a', 'b']));
    await untilOpen(h);
    expect(h.client.topics.sort()).toEqual(['a', 'b']);
    h.server.publish('t:a');
    await h.clock.advance(100);
    expect(storage.state?.cursors['t:a']).toBe(1);
    await settle(h.clock, h.client.unsubscribe('a'));
    expect(h.client.topics).toEqual(['b']);
    expect(storage.state?.cursors['t:a']).toBeUndefined();
  });
});

describe('events and cleanup', () => {
  it('on() returns a disposer; a state listener may close the client', async () => {
    const h = harness();
    const seen: string[] = [];
    const off = h.client.on('state', (s) => seen.push(s.to));
    h.client.on('state', (s) => {
      if (s.to === 'open') void h.client.close();
    });
    await h.clock.advance(100);
    off();
    expect(seen).toEqual(['connecting', 'open', 'closed']);
    expect(h.client.state).toBe('closed');
    expect(h.errors).toEqual([]);
  });

  it('every transition follows the documented machine', async () => {
    const { TRANSITIONS } = await import('./state.js');
    let refuse = false;
    const h = harness({ server: { refuse: () => refuse } });
    await untilOpen(h);
    h.server.last.reset();
    refuse = true;
    await h.clock.advance(30_000);
    refuse = false;
    h.client.networkChanged();
    await untilOpen(h);
    h.client.networkChanged();
    await untilOpen(h);
    await h.client.close();
    for (const { from, to } of h.states) expect(TRANSITIONS[from]).toContain(to);
    expect(new Set(h.states.map((s) => `${s.from}>${s.to}`))).toEqual(
      new Set([
        'idle>connecting',
        'connecting>open',
        'open>backoff',
        'backoff>connecting',
        'connecting>backoff',
        'open>connecting',
        'open>closed',
      ]),
    );
  });
});
