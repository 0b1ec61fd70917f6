import { describe, expect, it } from 'vitest';
import type { FetchLike } from './credentials.js';
import { AuthError, ConfigError, RateLimitedError, TimeoutError } from './errors.js';
import { memoryStorage } from './storage/memory.js';
import { FakeClock } from './testkit/fake-clock.js';
import { harness, RecordingStore, untilOpen } from './testkit/harness.js';

const HOUR = 3_600_000;

describe('handshake', () => {
  it('connects on its own: idle → connecting → open, with the documented hello', async () => {
    const h = harness();
    expect(h.client.state).toBe('idle');
    await untilOpen(h);
    expect(h.states).toEqual([
      { from: 'idle', to: 'connecting' },
      { from: 'connecting', to: 'open' },
    ]);
    const s = h.server.last;
    expect(s.url).toBe('ws://push.test/v1/connect');
    expect(s.protocol).toBe('pushwire.v1');
    expect(h.server.frames('hello')).toEqual([
      { t: 'hello', v: 1, device: 'dev1', token: 'tok', cursors: {}, hb: 60 },
    ]);
    expect(h.client.deviceId).toBe('dev1');
    expect(h.errors).toEqual([]);
  });

  it('presents the cursors from storage in hello', async () => {
    const storage = memoryStorage({ cursors: { 'd:dev1': 12, 't:news': 3 }, dedupe: [] });
    const h = harness({ client: { storage } });
    await untilOpen(h);
    expect(h.server.frames('hello')[0]?.cursors).toEqual({ 'd:dev1': 12, 't:news': 3 });
  });

  it('gives up on a server that never welcomes after connectTimeout, then retries', async () => {
    const h = harness({ server: { autoWelcome: false }, client: { connectTimeout: 5000 } });
    await h.clock.until(() => h.errors.length > 0);
    expect(h.errors[0]).toBeInstanceOf(TimeoutError);
    expect(h.client.state).toBe('backoff');
    await h.clock.until(() => h.server.sockets.length === 2);
    expect(h.server.sockets[0]?.state).toBe('closed');
  });
});

describe('credentials', () => {
  const registrar = (status = 201) => {
    const calls: { url: string; init: Parameters<FetchLike>[1] }[] = [];
    const fetch: FetchLike = async (url, init) => {
      calls.push({ url, init });
      return { status, json: async () => ({ deviceId: 'reg-1', token: 'reg-token' }) };
    };
    return { calls, fetch };
  };

  it('registers with the api key when storage has no credentials, then saves them', async () => {
    const { calls, fetch } = registrar();
    const storage = memoryStorage();
    const h = harness({
      client: { credentials: undefined, register: { apiKey: 'pk', user: 'alice' }, fetch, storage },
    });
    await untilOpen(h);
    expect(calls).toHaveLength(1);
    expect(calls[0]?.url).toBe('http://push.test/v1/devices');
    expect(calls[0]?.init.method).toBe('POST');
    expect(calls[0]?.init.headers.authorization).toBe('Bearer pk');
    expect(JSON.parse(calls[0]?.init.body ?? '')).toEqual({ user: 'alice' });
    expect(h.server.frames('hello')[0]).toMatchObject({ device: 'reg-1', token: 'reg-token' });
    expect((await storage.load())?.credentials).toEqual({ deviceId: 'reg-1', token: 'reg-token' });
    expect(h.client.deviceId).toBe('reg-1');
  });

  it('stored credentials win over registering again', async () => {
    const { calls, fetch } = registrar();
    const storage = memoryStorage({ credentials: { deviceId: 'old', token: 't0' }, cursors: {}, dedupe: [] });
    const h = harness({ client: { credentials: undefined, register: { apiKey: 'pk' }, fetch, storage } });
    await untilOpen(h);
    expect(calls).toHaveLength(0);
    expect(h.server.frames('hello')[0]?.device).toBe('old');
  });

  it('a register function is called once, even across reconnects', async () => {
    let calls = 0;
    const register = async () => {
      calls++;
      return { deviceId: 'fn-dev', token: 'fn-tok' };
    };
    const h = harness({ client: { credentials: undefined, register } });
    await untilOpen(h);
    h.server.last.reset();
    await h.clock.until(() => h.server.sockets.length === 2 && h.client.state === 'open');
    expect(calls).toBe(1);
    expect(h.server.frames('hello').map((f) => f.device)).toEqual(['fn-dev', 'fn-dev']);
  });

  it('a failing registration is retried with backoff; a refused one (401) is fatal', async () => {
    let fail = 2;
    const fetch: FetchLike = async () => {
      if (fail-- > 0) throw new Error('ECONNREFUSED');
      return { status: 201, json: async () => ({ deviceId: 'd', token: 't' }) };
    };
    const h = harness({ client: { credentials: undefined, register: { apiKey: 'pk' }, fetch } });
    await untilOpen(h);
    expect(h.errors.map((e) => e.code)).toEqual(['ERR_REGISTRATION', 'ERR_REGISTRATION']);

    const refused = harness({
      client: { credentials: undefined, register: { apiKey: 'bad' }, fetch: registrar(401).fetch },
    });
    await refused.clock.until(() => refused.client.state === 'closed');
    expect(refused.errors).toHaveLength(1);
    expect(refused.errors[0]).toBeInstanceOf(AuthError);
    expect(refused.errors[0]?.fatal).toBe(true);
    expect(refused.server.sockets).toHaveLength(0);
  });

  it('without credentials, storage credentials or register: closes with a fatal ConfigError', async () => {
    const h = harness({ client: { credentials: undefined } });
    await h.clock.until(() => h.client.state === 'closed');
    expect(h.errors[0]).toBeInstanceOf(ConfigError);
    expect(h.errors[0]?.fatal).toBe(true);
  });

  it('explicit credentials of another device reset the stored cursors and window', async () => {
    const storage = memoryStorage({
      credentials: { deviceId: 'other', token: 'x' },
      cursors: { 'd:other': 9, 't:news': 4 },
      dedupe: ['m1'],
    });
    const h = harness({ client: { storage } });
    await untilOpen(h);
    expect(h.server.frames('hello')[0]?.cursors).toEqual({});
    await h.clock.advance(100);
    expect(await storage.load()).toMatchObject({
      credentials: { deviceId: 'dev1', token: 'tok' },
      cursors: {},
      dedupe: [],
    });
  });

  it('createClient-time validation throws ConfigError synchronously', () => {
    expect(() => harness({ client: { url: 'ftp://x' } })).toThrow(ConfigError);
    expect(() => harness({ client: { credentials: { deviceId: '', token: 't' } } })).toThrow(ConfigError);
    expect(() => harness({ client: { heartbeat: { interval: -1 } } })).toThrow(ConfigError);
    expect(() => harness({ client: { backoff: { initial: 0 } } })).toThrow(ConfigError);
    expect(() => harness({ client: { ackBatch: 0 } })).toThrow(ConfigError);
  });
});

describe('fatal errors stop the client (no retry loop)', () => {
  it('UNAUTHORIZED → closed, one AuthError, no second connection', async () => {
    const h = harness({ server: { devices: { dev1: 'right-token' } } });
    await h.clock.until(() => h.client.state === 'closed');
    await h.clock.advance(HOUR);
    expect(h.server.sockets).toHaveLength(1);
    expect(h.errors).toHaveLength(1);
    expect(h.errors[0]).toMatchObject({ code: 'ERR_AUTH', serverCode: 'UNAUTHORIZED', fatal: true });
    expect(h.states.at(-1)).toEqual({ from: 'connecting', to: 'closed' });
  });

  it('close code 4001 alone is enough', async () => {
    const h = harness({
      server: {
        onHello: (s) => {
          s.serverClose(4001, 'unauthorized');
          return true;
        },
      },
    });
    await h.clock.until(() => h.client.state === 'closed');
    expect(h.errors[0]).toMatchObject({ code: 'ERR_AUTH', closeCode: 4001 });
    await h.clock.advance(HOUR);
    expect(h.server.sockets).toHaveLength(1);
  });

  it('UNSUPPORTED_VERSION → closed with a VersionError', async () => {
    const h = harness({
      server: {
        onHello: (s) => {
          s.push({ t: 'error', code: 'UNSUPPORTED_VERSION', message: 'v2 only', fatal: true });
          s.serverClose(4000);
          return true;
        },
      },
    });
    await h.clock.until(() => h.client.state === 'closed');
    expect(h.errors[0]).toMatchObject({ name: 'VersionError', code: 'ERR_UNSUPPORTED_VERSION', fatal: true });
    await h.clock.advance(HOUR);
    expect(h.server.sockets).toHaveLength(1);
  });

  it('other fatal errors (SLOW_CONSUMER, REPLACED, INTERNAL) reconnect with backoff', async () => {
    const h = harness();
    await untilOpen(h);
    for (const code of ['SLOW_CONSUMER', 'REPLACED', 'INTERNAL'] as const) {
      const sockets = h.server.sockets.length;
      h.server.last.push({ t: 'error', code, message: 'x', fatal: true });
      h.server.last.serverClose(4009);
      await h.clock.until(() => h.server.sockets.length === sockets + 1 && h.client.state === 'open');
    }
    expect(h.errors.map((e) => [e.code, e.serverCode, e.fatal])).toEqual([
      ['ERR_CONNECTION', 'SLOW_CONSUMER', false],
      ['ERR_CONNECTION', 'REPLACED', false],
      ['ERR_CONNECTION', 'INTERNAL', false],
    ]);
  });
});

describe('reconnect', () => {
  it('backs off exponentially with jitter over hours of refused connections, never a tight loop', async () => {
    let refuse = true;
    const h = harness({ server: { refuse: () => refuse } });
    await h.clock.advance(6 * HOUR);
    const connects = h.server.log.filter((e) => e.kind === 'connect').map((e) => e.at);
    const gaps = connects.slice(1).map((t, i) => t - (connects[i] ?? 0));
    // random() = 0.5: gaps are half the cap (plus the 5 ms transport latency)
    expect(gaps.slice(0, 8)).toEqual([255, 505, 1005, 2005, 4005, 8005, 15_005, 15_005]);
    expect(Math.min(...gaps)).toBeGreaterThanOrEqual(250);
    expect(Math.max(...gaps)).toBeLessThanOrEqual(15_005);
    expect(connects.length).toBeLessThan((6 * HOUR) / 15_000 + 10);
    expect(h.errors.every((e) => e.code === 'ERR_CONNECTION')).toBe(true);
    refuse = false;
    await h.clock.until(() => h.client.state === 'open');
  });

  it('resets the attempt counter after a session stayed open 30 s (not on welcome)', async () => {
    let refuse = false;
    const h = harness({ server: { refuse: () => refuse } });
    await untilOpen(h);
    // A server that welcomes and drops at once: the attempts keep growing.
    for (let i = 0; i < 4; i++) {
      h.server.last.reset();
      await h.clock.until(() => h.server.sockets.length === i + 2 && h.client.state === 'open');
    }
    const quick = h.server.log.filter((e) => e.kind === 'connect').map((e) => e.at);
    const quickGaps = quick.slice(1).map((t, i) => t - (quick[i] ?? 0));
    expect(quickGaps.every((g, i) => i === 0 || g > (quickGaps[i - 1] ?? 0))).toBe(true);
    // A session that lived 30 s: the next retry is back to the smallest delay.
    await h.clock.advance(31_000);
    const before = h.clock.now();
    h.server.last.reset();
    await h.clock.until(() => h.server.sockets.length === 6);
    expect(h.clock.now() - before).toBe(5 + 250);
    refuse = true;
  });

  it('goaway: reconnects after exactly reconnectAfter (+ ≤10% jitter), not counted as a failure', async () => {
    const h = harness({ client: { random: () => 0 } });
    await untilOpen(h);
    const at = h.clock.now();
    h.server.last.push({ t: 'goaway', reason: 'draining', reconnectAfter: 20_000 });
    h.server.last.serverClose(1001);
    await h.clock.until(() => h.server.sockets.length === 2);
    expect(h.clock.now() - at).toBe(5 + 20_000);
    expect(h.errors).toEqual([]); // a drain is not an error

    const j = harness({ client: { random: () => 0.99 } });
    await untilOpen(j);
    const at2 = j.clock.now();
    j.server.last.push({ t: 'goaway', reason: 'draining', reconnectAfter: 20_000 });
    await j.clock.until(() => j.server.sockets.length === 2);
    expect(j.clock.now() - at2).toBeGreaterThan(20_000);
    expect(j.clock.now() - at2).toBeLessThanOrEqual(5 + 22_000);
  });

  it('RATE_LIMITED: waits at least retryAfter before the next attempt', async () => {
    let limited = 2;
    const h = harness({
      client: { random: () => 0 },
      server: {
        onHello: (s) => {
          if (limited-- <= 0) return false;
          s.push({ t: 'error', code: 'RATE_LIMITED', message: 'busy', fatal: true, retryAfter: 7000 });
          s.serverClose(4029);
          return true;
        },
      },
    });
    await untilOpen(h);
    const connects = h.server.log.filter((e) => e.kind === 'connect').map((e) => e.at);
    expect(connects).toHaveLength(3);
    expect((connects[1] ?? 0) - (connects[0] ?? 0)).toBeGreaterThanOrEqual(7000);
    expect((connects[2] ?? 0) - (connects[1] ?? 0)).toBeGreaterThanOrEqual(7000);
    expect(h.errors.map((e) => e.constructor)).toEqual([RateLimitedError, RateLimitedError]);
    expect(h.errors[0]).toMatchObject({ retryAfter: 7000, serverCode: 'RATE_LIMITED' });
  });

  it('close(): from every state goes to closed, sends nothing more, closes the socket with 1000', async () => {
    const idle = harness();
    await idle.client.close();
    expect(idle.states).toEqual([{ from: 'idle', to: 'closed' }]);
    await idle.clock.advance(HOUR);
    expect(idle.server.sockets).toHaveLength(0);

    const open = harness();
    await untilOpen(open);
    const frames = open.server.log.length;
    await open.client.close();
    expect(open.client.state).toBe('closed');
    expect(open.server.last.closeCode).toBe(1000);
    await open.clock.advance(HOUR);
    expect(open.server.log.slice(frames).map((e) => e.kind)).toEqual(['close-by-client']);
    expect(open.server.sockets).toHaveLength(1);

    const backoff = harness({ server: { refuse: () => true } });
    await backoff.clock.until(() => backoff.client.state === 'backoff');
    await backoff.client.close();
    await backoff.clock.advance(HOUR);
    expect(backoff.server.sockets).toHaveLength(1);
    expect(backoff.client.state).toBe('closed');

    const connecting = harness();
    await connecting.clock.until(() => connecting.server.sockets.length === 1);
    await connecting.client.close();
    await connecting.clock.advance(HOUR);
    expect(connecting.states.map((s) => s.to)).toEqual(['connecting', 'closed']);
    expect(connecting.server.frames()).toEqual([]);
  });

  it('close() resolves after the final save', async () => {
    const clock = new FakeClock();
    const storage = new RecordingStore(clock, { delay: 200 });
    const h = harness({ clock, client: { storage } });
    await untilOpen(h);
    await h.clock.advance(1000); // the credentials' first save is done
    h.server.publish('d:dev1');
    await h.clock.advance(6); // delivered, save in flight
    let closed = false;
    void h.client.close().then(() => {
      closed = true;
    });
    await h.clock.advance(100);
    expect(closed).toBe(false);
    await h.clock.advance(200);
    expect(closed).toBe(true);
    expect(storage.state?.cursors).toEqual({ 'd:dev1': 1 });
  });
});
