import { createClient, memoryStorage, type PushwireClient } from '@pushwire/client';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Collector } from './helpers/collector.js';
import { RawClient } from './helpers/raw-client.js';
import { http, registerDevice, startServer, until } from './helpers/server.js';

type Started = Awaited<ReturnType<typeof startServer>>;
type Status = {
  devices: { state: string }[];
  topics: { counts: { delivered: number; pending: number } }[];
};

/**
 * Lazy topic acks against a real server on loopback: the SDK acks topic streams on its next ping
 * (or by `topicAckDelay`), device streams within `ackDelay`. Nothing on the server may wait for a
 * topic ack: a fast topic stream is not slowed, a dropped connection resumes from saved cursors.
 */
describe('lazy topic acks, SDK ↔ real server', () => {
  let s: Started;
  const clients: PushwireClient[] = [];
  beforeAll(async () => {
    s = await startServer();
  });
  afterEach(async () => {
    await Promise.all(clients.splice(0).map((c) => c.close()));
  });
  afterAll(() => s.stop());

  const publishBatch = async (messages: Record<string, unknown>[]): Promise<string[]> => {
    const r = await http<{ results: { id: string }[] }>(s.url, 'POST', '/v1/messages/batch', { messages });
    expect(r.status).toBe(202);
    return r.body.results.map((x) => x.id);
  };
  const status = async (id: string): Promise<Status> => {
    const r = await http<Status>(s.url, 'GET', `/v1/messages/${id}`);
    expect(r.status).toBe(200);
    return r.body;
  };

  async function open(topic: string, heartbeat: number) {
    const dev = await registerDevice(s.url);
    const c = createClient({
      url: s.url,
      credentials: dev,
      storage: memoryStorage(),
      heartbeat: { interval: heartbeat, pongTimeout: 10 },
    });
    clients.push(c);
    const col = new Collector();
    c.on('message', col.onMessage);
    await until(() => c.state === 'open', 5000, 'open');
    await c.subscribe(topic);
    return { c, col, dev };
  }

  it('a burst of topic messages arrives whole; topic acks come with the ping, device acks at once', async () => {
    const { c, col, dev } = await open('burst', 3);
    const sent: string[] = [];
    for (let b = 0; b < 3; b++) {
      const batch = Array.from({ length: 200 }, (_, i) => ({ to: { topic: 'burst' }, data: { b, i } }));
      sent.push(...(await publishBatch(batch)));
    }
    await until(() => col.received === sent.length, 15_000, `${sent.length} topic messages`);
    expect(col.duplicated).toBe(0);
    expect(col.lost(sent)).toEqual([]);
    expect(col.outOfOrder()).toEqual([]);

    // The topic's last message: counted as delivered once the next ping (3 s) carried the ack.
    const received = Date.now();
    await until(
      async () => (await status(sent.at(-1)!)).topics[0]?.counts.delivered === 1,
      8000,
      'topic ack by the next ping',
    );
    expect(Date.now() - received).toBeLessThan(3000 + 1500);

    const [deviceMsg] = await publishBatch([{ to: { device: dev.deviceId }, data: { d: 1 } }]);
    await until(() => col.received === sent.length + 1, 5000, 'device message');
    const t0 = Date.now();
    await until(async () => (await status(deviceMsg!)).devices[0]?.state === 'delivered', 5000, 'device ack');
    expect(Date.now() - t0).toBeLessThan(1500); // ackDelay (50 ms), not the next ping
    expect(c.cursors['t:burst']).toBe(sent.length);
  });

  it('a resume after a dropped connection loses nothing and hands nothing twice; close() flushes the topic ack', async () => {
    const { c, col } = await open('resume', 60); // no ping in this test: the topic acks wait
    const sent = await publishBatch(
      Array.from({ length: 50 }, (_, i) => ({ to: { topic: 'resume' }, data: { i } })),
    );
    await until(() => col.received === 50, 10_000, 'first 50');
    expect((await status(sent.at(-1)!)).topics[0]?.counts.delivered).toBe(0); // not acked yet
    const opened = col.received;
    c.networkChanged(); // drops the socket at once, without sending the waiting acks
    sent.push(
      ...(await publishBatch(
        Array.from({ length: 50 }, (_, i) => ({ to: { topic: 'resume' }, data: { j: i } })),
      )),
    );
    await until(() => c.state === 'open' && col.received === 100, 10_000, 'after the resume');
    expect(opened).toBe(50);
    expect(col.duplicated).toBe(0);
    expect(col.lost(sent)).toEqual([]);
    expect(col.outOfOrder()).toEqual([]);
    await c.close();
    expect((await status(sent.at(-1)!)).topics[0]?.counts.delivered).toBe(1);
  });

  it('an ack is clamped in place: streams the session does not follow are dropped, seqs capped at what it sent', async () => {
    const a = await registerDevice(s.url);
    const b = await registerDevice(s.url);
    expect((await http(s.url, 'PUT', `/v1/devices/${a.deviceId}/topics/clamp`)).status).toBe(200);
    const c = new RawClient(s.url);
    await c.opened();
    c.hello(a.deviceId, a.token);
    await c.next('welcome');
    await publishBatch([{ to: { topic: 'clamp' } }, { to: { device: a.deviceId } }]);
    const got = [await c.next('msg'), await c.next('msg')];
    expect(got.map((m) => m.stream).sort()).toEqual([`d:${a.deviceId}`, 't:clamp']);
    c.send(
      JSON.stringify({
        t: 'ack',
        acks: { [`d:${b.deviceId}`]: 7, 't:other': 3, 't:clamp': 99, [`d:${a.deviceId}`]: 1 },
      }),
    );
    c.send('p'); // the pong is a barrier: the ack before it was handled
    await c.next('pong');
    const store = s.server.options.store;
    expect(await store.cursorsOf(a.deviceId)).toEqual({ [`d:${a.deviceId}`]: 1, 't:clamp': 1 });
    expect(await store.cursorsOf(b.deviceId)).toEqual({});
    c.close();
    await c.whenClosed();
  });
});
