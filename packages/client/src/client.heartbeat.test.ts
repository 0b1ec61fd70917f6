import { describe, expect, it } from 'vitest';
import { TimeoutError } from './errors.js';
import { FakeClock } from './testkit/fake-clock.js';
import { harness, RecordingStore, untilOpen } from './testkit/harness.js';

const MIN = 60_000;
const HOUR = 3_600_000;

/** Times (virtual ms) at which the server received pings. */
function pingTimes(h: ReturnType<typeof harness>): number[] {
  return h.server.log.filter((e) => e.frame?.t === 'ping').map((e) => e.at);
}

describe('fixed heartbeat', () => {
  it('keeps a healthy idle client connected for 10 h with one bare `p` per interval', async () => {
    const h = harness();
    await untilOpen(h);
    await h.clock.advance(10 * HOUR);
    expect(h.server.sockets).toHaveLength(1);
    expect(h.server.last.state).toBe('open');
    const pings = h.server.log.filter((e) => e.frame?.t === 'ping');
    expect(pings.length).toBeGreaterThanOrEqual(599);
    expect(pings.length).toBeLessThanOrEqual(601);
    expect(new Set(pings.map((p) => p.text))).toEqual(new Set(['p']));
    const times = pingTimes(h);
    const gaps = times.slice(1).map((t, i) => t - (times[i] ?? 0));
    expect(new Set(gaps)).toEqual(new Set([MIN]));
    expect(h.errors).toEqual([]);
  });

  it('declares its interval in hello and honours a lower hb from the server', async () => {
    const h = harness({
      client: { heartbeat: { interval: 120, pongTimeout: 10 } },
      server: { hbBounds: [5, 45] },
    });
    await untilOpen(h);
    expect(h.server.frames('hello')[0]?.hb).toBe(120);
    await h.clock.advance(10 * MIN);
    const times = pingTimes(h);
    expect(times.slice(1).map((t, i) => t - (times[i] ?? 0))).toEqual(Array(times.length - 1).fill(45_000));
    expect(h.server.sockets).toHaveLength(1);
  });

  it('no pong within pongTimeout: closes the half-open socket and reconnects', async () => {
    const h = harness();
    await untilOpen(h);
    await h.clock.advance(30_000);
    const died = h.clock.now();
    h.server.last.blackhole(); // the path drops everything, silently
    await h.clock.until(() => h.server.sockets.length === 2 && h.client.state === 'open');
    // next ping at +30 s, pong deadline 10 s later, backoff 250 ms, handshake
    expect(h.clock.now() - died).toBeLessThan(30_000 + 10_000 + 1000);
    expect(h.errors).toHaveLength(1);
    expect(h.errors[0]).toBeInstanceOf(TimeoutError);
    expect(h.server.sockets[0]?.closeCode).toBe(1000);
  });

  it('any frame counts as a pong', async () => {
    const h = harness({
      server: { autoPong: false },
      client: { heartbeat: { interval: 20, pongTimeout: 5 } },
    });
    await untilOpen(h);
    for (let i = 0; i < 6; i++) {
      await h.clock.until(() => pingTimes(h).length === i + 1);
      h.server.publish('d:dev1');
    }
    await h.clock.advance(30_000);
    expect(h.server.sockets).toHaveLength(2); // the last ping got nothing back
    expect(h.messages).toHaveLength(6);
  });

  it('a timer firing late after a sleep is caught: overdue ping goes out at once', async () => {
    const h = harness();
    await untilOpen(h);
    await h.clock.advance(10_000);
    h.server.last.blackhole(); // while the laptop sleeps, the NAT forgets the connection
    await h.clock.sleep(2 * HOUR);
    const woke = h.clock.now();
    expect(pingTimes(h)).toHaveLength(0); // the late ping went into the void…
    await h.clock.until(() => h.server.sockets.length === 2 && h.client.state === 'open');
    // …and its pong deadline is counted from the wake-up, not from the scheduled time
    expect(h.clock.now() - woke).toBeLessThanOrEqual(10_000 + 250 + 20);
  });

  it('a pong deadline that passed during a sleep ends the session at once on wake-up', async () => {
    const h = harness({ server: { autoPong: false } });
    await untilOpen(h);
    await h.clock.until(() => pingTimes(h).length === 1); // ping out, no pong coming
    await h.clock.sleep(HOUR);
    const woke = h.clock.now();
    await h.clock.until(() => h.server.sockets.length === 2);
    expect(h.clock.now() - woke).toBeLessThanOrEqual(250 + 10);
    expect(h.errors[0]).toBeInstanceOf(TimeoutError);
  });

  it('background: declares the longer interval with {t:"ping", hb} and pings at it; the server follows', async () => {
    const h = harness({ client: { heartbeat: { interval: 60, pongTimeout: 10, backgroundInterval: 300 } } });
    await untilOpen(h);
    h.client.setBackground(true);
    await h.clock.advance(10);
    expect(h.server.frames('ping').at(-1)).toEqual({ t: 'ping', hb: 300 });
    expect(h.server.last.hb).toBe(300);
    const from = pingTimes(h).length;
    await h.clock.advance(HOUR);
    expect(pingTimes(h).length - from).toBe(12);
    expect(h.server.sockets).toHaveLength(1);
    h.client.setBackground(false);
    await h.clock.advance(10);
    expect(h.server.frames('ping').at(-1)).toMatchObject({ hb: 60 });
  });
});

describe('adaptive heartbeat under a NAT that forgets idle connections', () => {
  // (T is not a multiple of the 60 s probe step: a probe of exactly T would see T minus the RTT.)
  it.each([290, 100, 350, 125])(
    'converges below a %i s NAT timeout (≥ 0.8 T), then stays connected',
    async (T) => {
      const clock = new FakeClock();
      const storage = new RecordingStore(clock);
      const h = harness({
        clock,
        server: { natIdleTimeout: T * 1000 },
        client: { heartbeat: 'adaptive', networkKey: 'wifi', storage },
      });
      await untilOpen(h);
      // converges within a day of virtual time (throws otherwise)
      await h.clock.until(() => storage.state?.heartbeat?.wifi?.settledAt !== undefined, 24 * HOUR);
      await untilOpen(h); // settling after a failed probe: the reconnect follows
      const interval = h.client.heartbeatInterval;
      expect(interval).toBeLessThan(T);
      expect(interval).toBeGreaterThanOrEqual(0.8 * T);
      // bounded probing: each failed probe costs one reconnect
      const failedProbes = h.server.sockets.length - 1;
      expect(failedProbes).toBeLessThanOrEqual(5);
      // converged: no reconnect until the policy re-probes (12 h later), the server follows the interval
      const sockets = h.server.sockets.length;
      await h.clock.advance(11 * HOUR);
      expect(h.server.sockets.length).toBe(sockets);
      expect(h.server.last.hb).toBe(interval);
      expect(h.server.log.some((e) => e.kind === 'close-by-server')).toBe(false);
      // remembered for this network
      expect(storage.state?.heartbeat?.wifi).toMatchObject({
        interval,
        good: interval,
        settledAt: expect.any(Number),
      });
      expect(h.errors.every((e) => e.code === 'ERR_TIMEOUT')).toBe(true);
    },
  );

  it('remembers the learned interval per network key, across network changes and restarts', async () => {
    const clock = new FakeClock();
    const storage = new RecordingStore(clock);
    const h = harness({
      clock,
      server: { natIdleTimeout: 290_000 },
      client: { heartbeat: { adaptive: { reprobeAfter: 30 * 24 * 3600 } }, networkKey: 'wifi', storage },
    });
    await untilOpen(h);
    await h.clock.advance(24 * HOUR);
    const wifi = h.client.heartbeatInterval;
    expect(wifi).toBeGreaterThanOrEqual(240);

    h.server.o.natIdleTimeout = 100_000; // a stricter carrier NAT
    h.client.networkChanged('cellular');
    expect(h.client.heartbeatInterval).toBe(60); // nothing known about this network yet
    await h.clock.advance(24 * HOUR);
    const cellular = h.client.heartbeatInterval;
    expect(cellular).toBeLessThan(100);
    expect(cellular).toBeGreaterThanOrEqual(80);

    h.server.o.natIdleTimeout = 290_000;
    const sockets = h.server.sockets.length;
    h.client.networkChanged('wifi');
    expect(h.client.heartbeatInterval).toBe(wifi); // back to what wifi taught us, at once
    await untilOpen(h);
    expect(h.server.frames('hello').at(-1)?.hb).toBe(wifi);
    await h.clock.advance(6 * HOUR);
    expect(h.server.sockets.length).toBe(sockets + 1); // no probing failures on a known network

    await h.client.close();
    expect(storage.state?.heartbeat).toMatchObject({
      wifi: { interval: wifi },
      cellular: { interval: cellular },
    });
    const restarted = h.restart({ networkKey: 'cellular' });
    await untilOpen(restarted);
    expect(restarted.server.frames('hello').at(-1)?.hb).toBe(cellular);
  });

  it('pings stay bare `p` except when declaring a new interval or carrying acks', async () => {
    const h = harness({ server: { natIdleTimeout: 300_000 }, client: { heartbeat: 'adaptive' } });
    await untilOpen(h);
    await h.clock.advance(12 * HOUR);
    const texts = h.server.log.filter((e) => e.frame?.t === 'ping').map((e) => e.text ?? '');
    const declared = texts.filter((t) => t !== 'p');
    expect(declared.every((t) => /^\{"t":"ping","hb":\d+\}$/.test(t))).toBe(true);
    expect(texts.filter((t) => t === 'p').length).toBeGreaterThan(declared.length * 2);
  });
});
