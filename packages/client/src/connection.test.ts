import { encodeFrame, type ServerFrame } from '@pushwire/protocol';
import { describe, expect, it } from 'vitest';
import { DEFAULT_BACKOFF } from './backoff.js';
import { type ConnectionHost, type ConnectionMachine, createConnectionMachine } from './connection.js';
import { ConfigError, ConnectionError, type PushwireError } from './errors.js';
import type { StateChange } from './state.js';
import { FakeClock, flush } from './testkit/fake-clock.js';
import type { Connection, Transport, TransportHandlers } from './transport/types.js';

/** One socket the machine opened, driven by the test. */
interface FakeConn {
  url: string;
  handlers: TransportHandlers;
  sent: string[];
  closed?: { code?: number; reason?: string };
}

/** A transport whose sockets open, talk and die only when the test says so. */
function fakeTransport(): Transport & { conns: FakeConn[]; last(): FakeConn } {
  const conns: FakeConn[] = [];
  return {
    conns,
    last: () => conns[conns.length - 1]!,
    connect(url, _protocol, handlers): Connection {
      const c: FakeConn = { url, handlers, sent: [] };
      conns.push(c);
      return {
        send: (text) => c.sent.push(text),
        close: (code, reason) => {
          c.closed = { code, reason };
        },
      };
    },
  };
}

const URLS = ['ws://a.test/v1/connect', 'ws://b.test/v1/connect', 'ws://c.test/v1/connect'];
const welcome: ServerFrame = {
  t: 'welcome',
  v: 1,
  session: 's',
  hb: 60,
  idle: 75,
  maxPayload: 4096,
  topics: [],
};

/** A machine on a fake clock and transport, with a host that records what it is told. */
function setup(random = 0.5, overrides: Partial<ConnectionHost> = {}) {
  const clock = new FakeClock();
  const transport = fakeTransport();
  const states: StateChange[] = [];
  const errors: PushwireError[] = [];
  const fatal: PushwireError[] = [];
  const frames: ServerFrame[] = [];
  const drops: boolean[] = [];
  const host: ConnectionHost = {
    prepare: async () => ({ deviceId: 'dev1', token: 'tok' }),
    hello: (c) => ({ t: 'hello', v: 1, device: c.deviceId, token: c.token, cursors: {}, hb: 60 }),
    welcome: () => {},
    opened: () => {},
    frame: (f) => frames.push(f),
    session: { invalid: () => {}, proof: () => {}, alive: () => {}, acksForPing: () => undefined },
    silentDeath: () => {},
    dropping: (goaway) => drops.push(goaway),
    state: (s) => states.push(s),
    report: (e) => errors.push(e),
    fatal: (e) => {
      fatal.push(e);
      machine.stop(e);
    },
    ...overrides,
  };
  const machine: ConnectionMachine = createConnectionMachine(
    {
      clock,
      transport,
      random: () => random,
      backoff: DEFAULT_BACKOFF,
      urls: URLS,
      connectTimeout: 15_000,
      pongTimeout: () => 10,
    },
    host,
  );
  /** Connects (or waits for the next attempt) and completes the handshake on the newest socket. */
  const open = async () => {
    if (machine.state === 'idle') machine.connect();
    await clock.until(
      () => machine.state === 'connecting' && transport.conns.length > 0 && !transport.last().closed,
    );
    await flush();
    const c = transport.last();
    c.handlers.onOpen();
    c.handlers.onMessage(encodeFrame(welcome));
    expect(machine.state).toBe('open');
    return c;
  };
  return { clock, transport, machine, states, errors, fatal, frames, drops, open };
}

describe('connection machine (fake clock, fake transport)', () => {
  it('idle → connecting → open: prepare, then hello on the first server, then welcome', async () => {
    const t = setup();
    const c = await t.open();
    expect(c.url).toBe(URLS[0]);
    expect(JSON.parse(c.sent[0]!)).toMatchObject({ t: 'hello', device: 'dev1', token: 'tok' });
    expect(t.states).toEqual([
      { from: 'idle', to: 'connecting' },
      { from: 'connecting', to: 'open' },
    ]);
    expect(t.machine.server).toBe(0);
  });

  it('a lost socket → backoff → reconnect to the next server, delays growing with each failure', async () => {
    const t = setup(0.5);
    const first = await t.open();
    const lostAt = t.clock.now();
    first.handlers.onClose(1006, '');
    expect(t.machine.state).toBe('backoff');
    expect(t.errors.map((e) => e.code)).toEqual(['ERR_CONNECTION']);
    expect(t.machine.server).toBe(1);
    // attempt 0: 0.5 × 500 ms, then the second server
    await t.clock.until(() => t.transport.conns.length === 2);
    expect(t.clock.now() - lostAt).toBe(250);
    expect(t.transport.last().url).toBe(URLS[1]);
    // the second server refuses: 0.5 × 1000 ms, then the third; then 0.5 × 2000 ms, the first again
    t.transport.last().handlers.onClose(1006, '');
    let at = t.clock.now();
    await t.clock.until(() => t.transport.conns.length === 3);
    expect([t.clock.now() - at, t.transport.last().url]).toEqual([500, URLS[2]]);
    t.transport.last().handlers.onError(new Error('refused'));
    at = t.clock.now();
    await t.clock.until(() => t.transport.conns.length === 4);
    expect([t.clock.now() - at, t.transport.last().url]).toEqual([1000, URLS[0]]);
    // every dropped socket was closed by the machine, and nothing of the old ones counts any more
    expect(t.transport.conns.slice(0, 3).every((c) => c.closed !== undefined)).toBe(true);
    first.handlers.onMessage(encodeFrame({ t: 'goaway', reason: 'stale', reconnectAfter: 0 }));
    expect(t.machine.state).toBe('connecting');
  });

  it('a session that stayed open stableAfter resets the backoff counter', async () => {
    const t = setup(0.5);
    t.machine.connect();
    for (let i = 0; i < 4; i++) {
      await t.clock.until(() => t.transport.conns.length === i + 1);
      t.transport.last().handlers.onClose(1006, '');
    }
    await t.open();
    await t.clock.advance(DEFAULT_BACKOFF.stableAfter);
    const at = t.clock.now();
    t.transport.last().handlers.onClose(1006, '');
    await t.clock.until(() => t.machine.state === 'connecting');
    expect(t.clock.now() - at).toBe(250);
  });

  it('goaway: acks flushed before the socket closes, reconnect after reconnectAfter + jitter, not a failure', async () => {
    const t = setup(0.5);
    const c = await t.open();
    c.handlers.onMessage(encodeFrame({ t: 'goaway', reason: 'drain', reconnectAfter: 4000 }));
    expect(t.drops.at(-1)).toBe(true);
    expect(c.closed).toEqual({ code: 1000, reason: 'goaway' });
    expect(t.errors).toEqual([]);
    const at = t.clock.now();
    await t.clock.until(() => t.transport.conns.length === 2);
    expect(t.clock.now() - at).toBe(4200); // 4000 + 0.5 × 10%
    expect(t.transport.last().url).toBe(URLS[1]);
    // not counted: the next failure still waits the first backoff step
    t.transport.last().handlers.onClose(1006, '');
    const failedAt = t.clock.now();
    await t.clock.until(() => t.transport.conns.length === 3);
    expect(t.clock.now() - failedAt).toBe(250);
  });

  it('fatal auth (UNAUTHORIZED) stops: one AuthError, closed, no further attempt', async () => {
    const t = setup();
    const c = await t.open();
    c.handlers.onMessage(
      encodeFrame({ t: 'error', code: 'UNAUTHORIZED', message: 'bad token', fatal: true }),
    );
    expect(t.frames.map((f) => f.t)).toEqual(['error']); // the host sees it first (a request may wait on it)
    expect(t.fatal.map((e) => [e.code, e.fatal])).toEqual([['ERR_AUTH', true]]);
    expect(t.errors.map((e) => e.code)).toEqual(['ERR_AUTH']);
    expect(t.machine.state).toBe('closed');
    expect(c.closed?.code).toBe(1000);
    await t.clock.advance(3_600_000);
    expect(t.transport.conns).toHaveLength(1);
    expect(t.clock.pending).toBe(0);
    t.machine.connect();
    t.machine.networkChanged();
    expect(t.transport.conns).toHaveLength(1);
  });

  it('close code 4001 is fatal too; other fatal server errors back off', async () => {
    const t = setup();
    let c = await t.open();
    c.handlers.onMessage(encodeFrame({ t: 'error', code: 'REPLACED', message: 'other', fatal: true }));
    expect(t.machine.state).toBe('backoff');
    c = await t.open();
    c.handlers.onClose(4001, 'unauthorized');
    expect(t.fatal.map((e) => e.code)).toEqual(['ERR_AUTH']);
    expect(t.machine.state).toBe('closed');
  });

  it('no welcome within connectTimeout: a TimeoutError, then the next server', async () => {
    const t = setup();
    t.machine.connect();
    await t.clock.until(() => t.machine.state === 'backoff');
    expect(t.errors.map((e) => e.code)).toEqual(['ERR_TIMEOUT']);
    expect(t.transport.conns[0]!.closed).toBeDefined();
    expect(t.machine.server).toBe(1);
  });

  it('a failed prepare is a loss: retried with backoff, or fatal when the error is', async () => {
    let calls = 0;
    const t = setup(0.5, {
      prepare: async () => {
        calls++;
        if (calls < 3) throw new Error('network down');
        throw new ConfigError('no credentials', { fatal: true });
      },
    });
    t.machine.connect();
    await t.clock.until(() => t.machine.state === 'closed');
    expect(calls).toBe(3);
    expect(t.transport.conns).toHaveLength(0);
    expect(t.errors.map((e) => e.code)).toEqual(['ERR_CONNECTION', 'ERR_CONNECTION', 'ERR_CONFIG']);
    expect(t.fatal.map((e) => e.code)).toEqual(['ERR_CONFIG']);
  });

  it('offline: backoff waits without a timer until online, which connects at once', async () => {
    const t = setup();
    const c = await t.open();
    t.machine.setOnline(false);
    expect(t.machine.state).toBe('open'); // an open socket is kept
    c.handlers.onClose(1006, '');
    expect(t.machine.state).toBe('backoff');
    await t.clock.advance(3_600_000);
    expect(t.transport.conns).toHaveLength(1);
    t.machine.setOnline(true);
    expect(t.machine.state).toBe('connecting');
    await t.clock.until(() => t.transport.conns.length === 2);
  });

  it('networkChanged drops an open session and connects at once; stop() from backoff clears the retry', async () => {
    const t = setup();
    const c = await t.open();
    t.machine.networkChanged();
    expect(c.closed).toEqual({ code: 1000, reason: 'reconnecting' });
    expect(t.machine.state).toBe('connecting');
    await t.open();
    t.transport.last().handlers.onClose(1006, '');
    expect(t.machine.state).toBe('backoff');
    t.machine.stop();
    expect(t.machine.state).toBe('closed');
    expect(t.clock.pending).toBe(0);
  });

  it('fail(): loses an open session like a failure; in backoff it is only reported', async () => {
    const t = setup();
    const c = await t.open();
    t.machine.fail(new ConnectionError('cannot decrypt now'));
    expect(t.machine.state).toBe('backoff');
    expect(c.closed).toBeDefined();
    t.machine.fail(new ConnectionError('again'));
    expect(t.machine.state).toBe('backoff');
    expect(t.errors.map((e) => e.message)).toEqual(['cannot decrypt now', 'again']);
  });
});
