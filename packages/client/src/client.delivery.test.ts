import type { AckFrame, PingFrame } from '@pushwire/protocol';
import { describe, expect, it } from 'vitest';
import { StorageError } from './errors.js';
import type { NotificationMessage, PushMessage } from './message.js';
import { FakeClock } from './testkit/fake-clock.js';
import { harness, RecordingStore, settle, untilOpen } from './testkit/harness.js';

/** Acks the server received, in order, from ack frames and pings alike. */
function acksOf(h: ReturnType<typeof harness>) {
  return h.server.log
    .filter((e) => e.frame?.t === 'ack' || (e.frame?.t === 'ping' && e.frame.acks !== undefined))
    .map((e) => ({ at: e.at, acks: (e.frame as AckFrame | PingFrame).acks ?? {} }));
}

describe('delivery to the app', () => {
  it('hands each message to listeners and iterators as the msg frame without t', async () => {
    const h = harness();
    const notifications: NotificationMessage[] = [];
    h.client.on('notification', (m) => notifications.push(m));
    const iterated: PushMessage[] = [];
    const reading = (async () => {
      for await (const m of h.client) iterated.push(m);
    })();
    await untilOpen(h);
    h.server.publish('d:dev1', { id: 'a', data: { n: 1 }, exp: 99, urgency: 'high', collapseKey: 'k' });
    h.server.publish('d:dev1', { id: 'b', notification: { title: 'Hi', body: 'there' } });
    await h.clock.advance(10);
    expect(h.messages).toEqual([
      {
        id: 'a',
        stream: 'd:dev1',
        seq: 1,
        ts: expect.any(Number),
        exp: 99,
        data: { n: 1 },
        urgency: 'high',
        collapseKey: 'k',
      },
      {
        id: 'b',
        stream: 'd:dev1',
        seq: 2,
        ts: expect.any(Number),
        notification: { title: 'Hi', body: 'there' },
      },
    ]);
    expect(notifications.map((m) => m.id)).toEqual(['b']);
    await h.client.close();
    await reading; // the iterator ends when the client closes
    expect(iterated).toEqual(h.messages);
  });

  it('an iterator created after close is done at once; a listener that throws does not stop delivery', async () => {
    const h = harness();
    h.client.on('message', () => {
      throw new Error('app bug');
    });
    await untilOpen(h);
    h.server.publish('d:dev1', { id: 'x' });
    await h.clock.advance(100);
    expect(h.ids()).toEqual(['x']);
    expect(h.errors[0]).toMatchObject({ code: 'ERR_LISTENER', cause: new Error('app bug') });
    expect(h.server.acked.get('d:dev1')).toBe(1);
    await h.client.close();
    expect(await h.client[Symbol.asyncIterator]().next()).toEqual({ value: undefined, done: true });
  });
});

describe('exactly once', () => {
  it('dedupes across reconnects: a server that replays already-seen ids is seen once by the app', async () => {
    const h = harness({ server: { replayIgnoresCursors: true } });
    await untilOpen(h);
    for (let i = 1; i <= 5; i++) h.server.publish('d:dev1', { id: `m${i}` });
    await h.clock.advance(100);
    for (let round = 0; round < 3; round++) {
      h.server.last.reset();
      h.server.publish('d:dev1', { id: `late${round}` }); // published while disconnected
      await h.clock.until(() => h.client.state === 'open' && h.server.sockets.length === round + 2);
      await h.clock.advance(100);
    }
    expect(h.ids()).toEqual(['m1', 'm2', 'm3', 'm4', 'm5', 'late0', 'late1', 'late2']);
    expect(h.client.cursors).toEqual({ 'd:dev1': 8 });
    expect(h.server.acked.get('d:dev1')).toBe(8);
  });

  it('drops a known id even with a higher seq, but still advances the cursor and acks it', async () => {
    const h = harness();
    await untilOpen(h);
    h.server.last.push({ t: 'msg', id: 'same', stream: 'd:dev1', seq: 1, ts: 0 });
    h.server.last.push({ t: 'msg', id: 'same', stream: 'd:dev1', seq: 2, ts: 0 });
    h.server.last.push({ t: 'msg', id: 'old', stream: 'd:dev1', seq: 2, ts: 0 }); // seq ≤ cursor
    h.server.last.push({ t: 'msg', id: 'same', stream: 't:news', seq: 1, ts: 0 }); // same publish, other stream
    await h.clock.advance(100);
    expect(h.ids()).toEqual(['same']);
    expect(h.client.cursors).toEqual({ 'd:dev1': 2, 't:news': 1 });
    expect(h.server.acked.get('d:dev1')).toBe(2);
    expect(h.server.acked.get('t:news')).toBe(1);
  });

  it('survives a restart: the new process resumes from stored cursors and window', async () => {
    const h = harness({ server: { replayIgnoresCursors: true } });
    await untilOpen(h);
    for (let i = 1; i <= 3; i++) h.server.publish('d:dev1', { id: `m${i}` });
    await h.clock.advance(100);
    await h.client.close();
    h.server.publish('d:dev1', { id: 'm4' });
    const again = h.restart();
    await untilOpen(again);
    await again.clock.advance(100);
    expect(again.server.frames('hello').at(-1)?.cursors).toEqual({ 'd:dev1': 3 });
    expect(again.ids()).toEqual(['m4']);
  });

  it('keeps at most `dedupeWindow` ids', async () => {
    const clock = new FakeClock();
    const storage = new RecordingStore(clock);
    const h = harness({ clock, client: { storage, dedupeWindow: 10 } });
    await untilOpen(h);
    for (let i = 1; i <= 25; i++) h.server.publish('d:dev1', { id: `m${i}` });
    await h.clock.advance(100);
    expect(storage.state?.dedupe).toEqual(Array.from({ length: 10 }, (_, i) => `m${i + 16}`));
  });
});

describe('persist before ack', () => {
  it('never acknowledges a seq before a save covering it has completed', async () => {
    const clock = new FakeClock();
    const storage = new RecordingStore(clock, { delay: 37 });
    const h = harness({ clock, client: { storage } });
    await untilOpen(h);
    await settle(clock, h.client.subscribe('news'));
    for (let burst = 0; burst < 20; burst++) {
      const n = 1 + (burst % 7);
      for (let i = 0; i < n; i++) h.server.publish(burst % 2 ? 'd:dev1' : 't:news');
      await h.clock.advance(13 + burst * 3);
    }
    await h.clock.advance(1000);
    const acks = acksOf(h);
    expect(acks.length).toBeGreaterThan(3);
    const latency = h.server.o.latency;
    for (const { at, acks: a } of acks) {
      for (const [stream, seq] of Object.entries(a)) {
        const covered = storage.done.some((d) => d.at <= at - latency && (d.cursors[stream] ?? 0) >= seq);
        expect(covered, `ack ${stream}:${seq} sent at ${at - latency} before its save`).toBe(true);
      }
    }
    expect(h.server.acked.get('d:dev1')).toBe(h.server.seqOf('d:dev1'));
    expect(h.server.acked.get('t:news')).toBe(h.server.seqOf('t:news'));
  });

  it('a slow save holds the ack back; a failed save emits StorageError and acks only after the retry', async () => {
    const clock = new FakeClock();
    const storage = new RecordingStore(clock, { delay: 1000 });
    const h = harness({ clock, client: { storage } });
    await untilOpen(h);
    await h.clock.advance(2000);
    h.server.publish('d:dev1');
    await h.clock.advance(900);
    expect(h.server.frames('ack')).toHaveLength(0);
    await h.clock.advance(200);
    expect(h.server.frames('ack')).toEqual([{ t: 'ack', acks: { 'd:dev1': 1 } }]);

    storage.failNext = 1;
    h.server.publish('d:dev1');
    await h.clock.advance(1100);
    expect(h.errors[0]).toBeInstanceOf(StorageError);
    expect(h.server.frames('ack')).toHaveLength(1);
    await h.clock.advance(2100); // retry after 1 s, save takes 1 s
    expect(h.server.frames('ack').at(-1)).toEqual({ t: 'ack', acks: { 'd:dev1': 2 } });
  });
});

describe('ack coalescing', () => {
  it('a burst costs one save and one cumulative ack, ~50 ms after the last save', async () => {
    const clock = new FakeClock();
    const storage = new RecordingStore(clock);
    const h = harness({ clock, client: { storage } });
    await untilOpen(h);
    await h.clock.advance(1000);
    const saves = storage.saves.length;
    for (let i = 0; i < 10; i++) h.server.publish('d:dev1');
    await h.clock.advance(5); // the burst arrives
    await h.clock.advance(40);
    expect(h.server.frames('ack')).toHaveLength(0);
    await h.clock.advance(20);
    expect(storage.saves.length - saves).toBe(1);
    expect(h.server.frames('ack')).toEqual([{ t: 'ack', acks: { 'd:dev1': 10 } }]);
  });

  it('acks at once when 100 persisted messages wait, even while messages keep coming', async () => {
    const h = harness();
    await untilOpen(h);
    for (let i = 0; i < 250; i++) {
      h.server.publish('d:dev1');
      await h.clock.advance(1); // a steady stream: the 50 ms debounce never expires
    }
    const acked = h.server.frames('ack').map((f) => f.acks['d:dev1']);
    expect(acked.length).toBeGreaterThanOrEqual(2);
    expect(acked[0]).toBeGreaterThanOrEqual(100);
    expect(acked[0]).toBeLessThan(110);
    await h.clock.advance(100);
    expect(h.server.acked.get('d:dev1')).toBe(250);
  });

  it('acks ride on a ping that is due anyway instead of a separate frame', async () => {
    const h = harness({ client: { heartbeat: { interval: 10, pongTimeout: 5 } } });
    await untilOpen(h);
    await h.clock.advance(9_000); // the next ping is due ~1 s from now… minus latency
    await h.clock.until(() => h.server.frames('ping').length === 1);
    const pingAt = h.clock.now();
    await h.clock.advance(9_960 - 20); // the next ping is due in ~35 ms
    h.server.publish('d:dev1');
    await h.clock.advance(200);
    expect(h.server.frames('ack')).toHaveLength(0);
    const ping = h.server.frames('ping').at(-1);
    expect(ping).toEqual({ t: 'ping', acks: { 'd:dev1': 1 } });
    expect(h.clock.now() - pingAt).toBeLessThan(11_000);
  });

  it('goaway flushes the persisted acks before the socket is closed', async () => {
    const h = harness();
    await untilOpen(h);
    h.server.publish('d:dev1');
    await h.clock.advance(10); // delivered and saved; the ack waits for its 50 ms
    expect(h.server.acked.get('d:dev1')).toBeUndefined();
    h.server.last.push({ t: 'goaway', reason: 'draining', reconnectAfter: 1000 });
    await h.clock.advance(10);
    expect(h.server.acked.get('d:dev1')).toBe(1);
    expect(h.server.last.state).toBe('closed');
  });

  it('in the background, acks leave without the coalescing delay', async () => {
    const h = harness();
    await untilOpen(h);
    h.client.setBackground(true);
    h.server.publish('d:dev1');
    await h.clock.advance(5); // arrives; saved in a microtask; acked at once
    await h.clock.advance(6);
    expect(h.server.frames('ack')).toEqual([{ t: 'ack', acks: { 'd:dev1': 1 } }]);
  });
});
