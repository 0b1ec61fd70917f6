import { describe, expect, it, vi } from 'vitest';
import { wireBrowserEvents } from './browser.js';
import { createClient } from './index.js';
import { FakeClock } from './testkit/fake-clock.js';
import { FakeServer } from './testkit/fake-server.js';

class FakeTarget {
  readonly listeners = new Map<string, Set<() => void>>();
  addEventListener(type: string, fn: () => void) {
    const set = this.listeners.get(type) ?? new Set();
    set.add(fn);
    this.listeners.set(type, set);
  }
  removeEventListener(type: string, fn: () => void) {
    this.listeners.get(type)?.delete(fn);
  }
  dispatch(type: string) {
    for (const fn of this.listeners.get(type) ?? []) fn();
  }
  get count() {
    return [...this.listeners.values()].reduce((n, s) => n + s.size, 0);
  }
}

function environment(onLine = true, visibilityState = 'visible') {
  const window = Object.assign(new FakeTarget(), { navigator: { onLine } });
  const document = Object.assign(new FakeTarget(), { visibilityState });
  return { window, document };
}

describe('wireBrowserEvents', () => {
  it('maps offline/online/visibilitychange to the client and removes every listener on dispose', () => {
    const calls: string[] = [];
    const client = {
      setOnline: (on: boolean) => calls.push(`online:${on}`),
      networkChanged: () => calls.push('networkChanged'),
      setBackground: (on: boolean) => calls.push(`background:${on}`),
    };
    const env = environment();
    const dispose = wireBrowserEvents(client, env);
    env.window.dispatch('offline');
    env.window.dispatch('online');
    env.document.visibilityState = 'hidden';
    env.document.dispatch('visibilitychange');
    env.document.visibilityState = 'visible';
    env.document.dispatch('visibilitychange');
    expect(calls).toEqual(['online:false', 'networkChanged', 'background:true', 'background:false']);
    dispose();
    expect(env.window.count + env.document.count).toBe(0);
  });

  it('applies the initial offline and hidden states', () => {
    const calls: string[] = [];
    const client = {
      setOnline: (on: boolean) => calls.push(`online:${on}`),
      networkChanged: () => calls.push('networkChanged'),
      setBackground: (on: boolean) => calls.push(`background:${on}`),
    };
    wireBrowserEvents(client, environment(false, 'hidden'));
    expect(calls).toEqual(['online:false', 'background:true']);
  });
});

describe('browser entry createClient', () => {
  it('wires the environment: offline stops retrying, online reconnects; close removes the listeners', async () => {
    const clock = new FakeClock();
    const server = new FakeServer(clock);
    const env = environment();
    const client = createClient({
      url: 'https://push.test',
      credentials: { deviceId: 'dev1', token: 'tok' },
      transport: server.transport,
      clock,
      random: () => 0.5,
      browserEvents: env,
    });
    expect(env.window.count).toBe(2);
    expect(env.document.count).toBe(1);
    await clock.until(() => client.state === 'open');
    expect(server.last.url).toBe('wss://push.test/v1/connect');
    env.window.dispatch('offline');
    server.last.reset();
    await clock.advance(3_600_000);
    expect(server.sockets).toHaveLength(1);
    env.window.dispatch('online');
    await clock.until(() => client.state === 'open');
    expect(server.sockets).toHaveLength(2);
    await client.close();
    expect(env.window.count + env.document.count).toBe(0);
  });

  it('without a transport and without a global WebSocket, closes with a fatal ConfigError', async () => {
    // Runs on every Node: the global WebSocket (Node ≥ 22 has one, 20 has none) is hidden for the
    // test instead of the test returning early where it exists.
    vi.stubGlobal('WebSocket', undefined);
    try {
      const client = createClient({
        url: 'http://x',
        credentials: { deviceId: 'd', token: 't' },
        browserEvents: false,
      });
      const errors: unknown[] = [];
      client.on('error', (e) => errors.push(e));
      const closed = new Promise<void>((resolve) =>
        client.on('state', (e) => {
          if (e.to === 'closed') resolve();
        }),
      );
      await closed;
      expect(client.state).toBe('closed');
      expect(errors).toHaveLength(1);
      expect(errors[0]).toMatchObject({ code: 'ERR_CONFIG', fatal: true });
    } finally {
      vi.unstubAllGlobals();
    }
  });
});
