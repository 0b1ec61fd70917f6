import type { AckFrame, PingFrame } from '@pushwire/protocol';
import { describe, expect, it } from 'vitest';
import { TOPIC_ACK_BATCH } from './delivery.js';
import type { ClientOptions } from './options.js';
import { harness, settle, untilOpen } from './testkit/harness.js';

/** Ack-carrying frames the server received: ack frames and pings with acks, in order. */
function ackFrames(h: ReturnType<typeof harness>) {
  return h.server.log
    .filter((e) => e.frame?.t === 'ack' || (e.frame?.t === 'ping' && e.frame.acks !== undefined))
    .map((e) => ({ at: e.at, t: e.frame!.t, acks: (e.frame as AckFrame | PingFrame).acks ?? {} }));
}

/** A client subscribed to `news` (the server lists it in welcome), open. */
async function subscribed(client: Partial<ClientOptions> = {}) {
  const h = harness({ client });
  h.server.subscriptions.set('dev1', new Set(['news']));
  await untilOpen(h);
  return h;
}

describe('topic acks are lazy, device acks are not', () => {
  it('a topic ack rides on the next ping when the heartbeat comes before the bound', async () => {
    const h = await subscribed({ heartbeat: { interval: 20, pongTimeout: 10 } });
    const opened = h.clock.now();
    h.server.publish('t:news');
    h.server.publish('t:news');
    await h.clock.advance(5_000);
    expect(ackFrames(h)).toEqual([]); // not 50 ms later, as a device ack would be
    expect(h.ids()).toEqual(['m1', 'm2']);
    await h.clock.advance(20_000);
    const acks = ackFrames(h);
    expect(acks).toEqual([{ at: expect.any(Number), t: 'ping', acks: { 't:news': 2 } }]);
    expect(acks[0]!.at - opened).toBeLessThanOrEqual(20_000 + 10);
    expect(h.server.frames('ack')).toEqual([]); // no frame of its own
  });

  it('without a ping in time, an ack frame leaves within topicAckDelay (deadline drawn in its second half)', async () => {
    const h = await subscribed({ topicAckDelay: 10_000 }); // heartbeat 60 s
    h.server.publish('t:news');
    const at = h.clock.now();
    await h.clock.advance(4_900);
    expect(ackFrames(h)).toEqual([]);
    h.server.publish('t:news'); // a later message does not push the deadline back
    await h.clock.advance(5_200);
    const acks = ackFrames(h);
    expect(acks).toEqual([{ at: expect.any(Number), t: 'ack', acks: { 't:news': 2 } }]);
    // random() is 0.5 in the harness: 10 s × (1 − 0.25) after the first save.
    expect(acks[0]!.at - at).toBeGreaterThanOrEqual(5_000);
    expect(acks[0]!.at - at).toBeLessThanOrEqual(10_000 + 10);
    expect(h.server.acked.get('t:news')).toBe(2);
  });

  it('device acks keep ackDelay, and carry the topic acks waiting', async () => {
    const h = await subscribed();
    h.server.publish('t:news');
    await h.clock.advance(1_000);
    expect(ackFrames(h)).toEqual([]);
    const at = h.clock.now();
    h.server.publish('d:dev1');
    await h.clock.advance(200);
    const acks = ackFrames(h);
    expect(acks).toEqual([{ at: expect.any(Number), t: 'ack', acks: { 'd:dev1': 1, 't:news': 1 } }]);
    expect(acks[0]!.at - at).toBeLessThan(100); // 50 ms + latency
    h.server.publish('d:dev1');
    await h.clock.advance(200);
    expect(ackFrames(h).at(-1)?.acks).toEqual({ 'd:dev1': 2 });
  });

  it('topicAckDelay ≤ ackDelay acknowledges topics like the device stream', async () => {
    const h = await subscribed({ topicAckDelay: 0 });
    h.server.publish('t:news');
    await h.clock.advance(200);
    expect(ackFrames(h).map((a) => a.acks)).toEqual([{ 't:news': 1 }]);
  });

  it('a burst of topic messages is never stalled: all arrive, acks go every TOPIC_ACK_BATCH', async () => {
    const h = await subscribed();
    const sent = 2 * TOPIC_ACK_BATCH + 500;
    for (let i = 0; i < sent; i++) {
      h.server.publish('t:news');
      if (i % 100 === 99) await h.clock.advance(1);
    }
    await h.clock.advance(1_000);
    const ids = h.ids();
    expect(ids.length).toBe(sent); // received
    expect(new Set(ids).size).toBe(sent); // no duplicate
    expect(h.client.cursors['t:news']).toBe(sent); // none lost
    const acks = ackFrames(h);
    expect(acks.length).toBeGreaterThanOrEqual(2);
    expect(acks.length).toBeLessThanOrEqual(3);
    for (const a of acks) expect(a.t).toBe('ack');
    await h.clock.advance(30_000); // the rest by the bound
    expect(h.server.acked.get('t:news')).toBe(sent);
  });

  it('going to the background or closing sends waiting topic acks at once', async () => {
    const h = await subscribed();
    h.server.publish('t:news');
    await h.clock.advance(1_000);
    expect(ackFrames(h)).toEqual([]);
    h.client.setBackground(true);
    await h.clock.advance(10);
    expect(h.server.acked.get('t:news')).toBe(1);

    const h2 = await subscribed();
    h2.server.publish('t:news');
    h2.server.publish('t:news');
    await h2.clock.advance(1_000);
    expect(ackFrames(h2)).toEqual([]);
    await h2.client.close();
    await h2.clock.advance(10);
    expect(h2.server.acked.get('t:news')).toBe(2);
  });

  it('wake() sends waiting topic acks before it resolves (the OS may suspend the app after)', async () => {
    const h = await subscribed();
    h.server.publish('t:news');
    await h.clock.advance(1_000);
    expect(h.server.acked.get('t:news')).toBeUndefined();
    await settle(h.clock, h.client.wake(5_000));
    expect(h.server.acked.get('t:news')).toBe(1);
  });

  it('a resume after a dropped connection loses nothing and hands nothing twice to the app', async () => {
    const h = await subscribed();
    let published = 0;
    for (let i = 0; i < 5; i++, published++) h.server.publish('t:news');
    await h.clock.advance(1_000);
    expect(h.server.acked.get('t:news')).toBeUndefined(); // lazy: nothing acknowledged yet
    h.server.last.reset(); // the connection drops with the acks still waiting
    for (let i = 0; i < 3; i++, published++) h.server.publish('t:news'); // while disconnected
    await h.clock.until(() => h.client.state === 'open' && h.server.sockets.length === 2);
    // The hello carries the saved cursor, so the server replays only what follows it.
    expect(h.server.frames('hello').at(-1)?.cursors).toEqual({ 't:news': 5 });
    for (let i = 0; i < 2; i++, published++) h.server.publish('t:news');
    await h.clock.advance(31_000);
    const ids = h.ids();
    expect(ids.length).toBe(published);
    expect(new Set(ids).size).toBe(published);
    expect(h.server.acked.get('t:news')).toBe(published);
  });

  it('topic acks that waited when a connection dropped go with the next session', async () => {
    const h = await subscribed({ topicAckDelay: 10_000 });
    for (let i = 0; i < 3; i++) h.server.publish('t:news');
    await h.clock.advance(1_000);
    h.server.last.reset(); // dropped before the deadline; nothing new is published afterwards
    await h.clock.until(() => h.client.state === 'open' && h.server.sockets.length === 2);
    expect(h.server.acked.get('t:news')).toBeUndefined();
    await h.clock.advance(10_000);
    expect(h.server.acked.get('t:news')).toBe(3);
    expect(h.ids()).toEqual(['m1', 'm2', 'm3']);
  });

  it('a sloppy server that replays every topic message again: the app still sees each once', async () => {
    const h = harness({ server: { replayIgnoresCursors: true } });
    h.server.subscriptions.set('dev1', new Set(['news']));
    await untilOpen(h);
    for (let i = 0; i < 4; i++) h.server.publish('t:news');
    await h.clock.advance(1_000);
    h.server.last.reset();
    await h.clock.until(() => h.client.state === 'open' && h.server.sockets.length === 2);
    await h.clock.advance(1_000);
    expect(h.ids()).toEqual(['m1', 'm2', 'm3', 'm4']);
  });

  it('refuses a negative or non-numeric topicAckDelay', () => {
    expect(() => harness({ client: { topicAckDelay: -1 } })).toThrow(/topicAckDelay/);
    expect(() => harness({ client: { topicAckDelay: Number.NaN } })).toThrow(/topicAckDelay/);
  });
});
