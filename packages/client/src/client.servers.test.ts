import { describe, expect, it } from 'vitest';
import type { FetchLike } from './credentials.js';
import { ConfigError } from './errors.js';
import { FakeClock } from './testkit/fake-clock.js';
import { FakeServer } from './testkit/fake-server.js';
import { harness, untilOpen } from './testkit/harness.js';
import type { Transport } from './transport/types.js';

/** Two nodes of a cluster in virtual time, each with its own fake server, picked by host. */
function cluster(down: { a: boolean; b: boolean } = { a: false, b: false }) {
  const clock = new FakeClock();
  const a = new FakeServer(clock, { refuse: () => down.a });
  const b = new FakeServer(clock, { refuse: () => down.b });
  const transport: Transport = {
    connect: (url, protocol, handlers) =>
      (new URL(url).host === 'a.test' ? a : b).transport.connect(url, protocol, handlers),
  };
  return { clock, a, b, transport, down };
}

const URLS = ['http://a.test', 'http://b.test'];

describe('server list', () => {
  it('starts with the first server and stays there while it works', async () => {
    const c = cluster();
    const h = harness({ clock: c.clock, client: { url: URLS, transport: c.transport } });
    await untilOpen(h);
    expect(c.a.sockets).toHaveLength(1);
    expect(c.a.last.url).toBe('ws://a.test/v1/connect');
    expect(c.b.sockets).toHaveLength(0);
  });

  it('moves to the next server when the first refuses, without waiting for it to come back', async () => {
    const c = cluster({ a: true, b: false });
    const h = harness({ clock: c.clock, client: { url: URLS, transport: c.transport } });
    const took = await untilOpen(h);
    expect(c.a.sockets).toHaveLength(1);
    expect(c.b.sockets).toHaveLength(1);
    expect(c.b.last.url).toBe('ws://b.test/v1/connect');
    expect(took).toBeLessThan(2000); // one backoff step (500 ms with this jitter), not a minute
  });

  it('a node dies under an open session: the client resumes on the next one from its cursors', async () => {
    const c = cluster();
    const h = harness({ clock: c.clock, client: { url: URLS, transport: c.transport } });
    await untilOpen(h);
    c.a.publish('d:dev1', { data: 1 });
    c.a.publish('d:dev1', { data: 2 });
    await h.clock.until(() => h.messages.length === 2);
    // kill -9 of node a: the socket drops and the node refuses connections from now on.
    c.down.a = true;
    c.a.last.reset();
    // Node b shares the cluster's store: it has both entries and a third one.
    c.b.streams.set('d:dev1', [...(c.a.streams.get('d:dev1') ?? [])]);
    c.b.publish('d:dev1', { id: 'b3', data: 3 }); // ids are cluster-wide: b's counter would reuse m1
    await h.clock.until(() => h.messages.length === 3);
    expect(c.a.sockets).toHaveLength(1); // no attempt on the dead node first
    expect(c.b.frames('hello')[0]?.cursors).toEqual({ 'd:dev1': 2 });
    expect(h.messages.map((m) => m.data)).toEqual([1, 2, 3]);
    expect(h.client.state).toBe('open');
  });

  it('wraps around the list with growing backoff while every node is down, and takes the first back', async () => {
    const c = cluster({ a: true, b: true });
    const h = harness({ clock: c.clock, client: { url: URLS, transport: c.transport } });
    await h.clock.until(() => c.a.sockets.length + c.b.sockets.length === 6);
    // Alternating a, b, a, b, …
    const order = [...c.a.sockets.map((s) => ['a', s.id]), ...c.b.sockets.map((s) => ['b', s.id])];
    expect(order.filter(([n]) => n === 'a')).toHaveLength(3);
    expect(order.filter(([n]) => n === 'b')).toHaveLength(3);
    const connects = [...c.a.log, ...c.b.log].filter((e) => e.kind === 'connect').map((e) => e.at);
    connects.sort((x, y) => x - y);
    const gaps = connects.slice(1).map((t, i) => t - connects[i]!);
    for (let i = 1; i < gaps.length; i++) expect(gaps[i]!).toBeGreaterThanOrEqual(gaps[i - 1]!);
    c.down.b = false;
    await untilOpen(h, 60_000);
    expect(c.b.last.welcomed).toBe(true);
  });

  it('registers with the server it is trying', async () => {
    const c = cluster({ a: true, b: false });
    const calls: string[] = [];
    const fetch: FetchLike = async (url) => {
      calls.push(url);
      if (url.startsWith('http://a.test')) throw new Error('ECONNREFUSED');
      return { status: 201, json: async () => ({ deviceId: 'dev1', token: 'tok' }) };
    };
    const h = harness({
      clock: c.clock,
      client: { url: URLS, transport: c.transport, credentials: undefined, register: { apiKey: 'k' }, fetch },
    });
    await untilOpen(h);
    expect(calls).toEqual(['http://a.test/v1/devices', 'http://b.test/v1/devices']);
  });

  it('refuses an empty list and a list with a bad URL', () => {
    expect(() => harness({ client: { url: [] } })).toThrow(ConfigError);
    expect(() => harness({ client: { url: ['http://a.test', 'ftp://b'] } })).toThrow(ConfigError);
  });
});
