/**
 * One engine-neutral scenario of the React Native SDK entry, bundled and lowered by
 * `bundle.ts` and run under Hermes and QuickJS by `test/engines.test.ts`. It uses no host API
 * but `print` (one JSON line out): virtual time, the scripted server (the SDK's FakeServer, with
 * the strict server-side frame decoder) and a WHATWG-shaped WebSocket stand-in installed as
 * `globalThis.WebSocket`, which the React Native entry's default transport picks up.
 *
 * connect → hello → replay → live messages → acks → subscribe → a re-sent duplicate → lost
 * socket (1006) while messages arrive → reconnect with cursors → replay → a dead socket found
 * by wake() → close.
 */

import type { Clock } from '../../packages/client/src/clock.js';
import { createClient, memoryStorage, type PushMessage } from '../../packages/client/src/react-native.js';
import type { FakeClock } from '../../packages/client/src/testkit/fake-clock.js';
import { FakeServer, type FakeSocket } from '../../packages/client/src/testkit/fake-server.js';

declare const print: (line: string) => void;

/** Lets promise chains settle: plain awaits, the only scheduling every engine has. */
async function settle(): Promise<void> {
  for (let i = 0; i < 200; i++) await undefined;
}

/** Virtual time: timers run when the scenario advances the clock, in due order. */
class VirtualClock implements Clock {
  t = Date.UTC(2025, 0, 1);
  seq = 0;
  timers = new Map<number, { at: number; fn: () => void }>();
  now(): number {
    return this.t;
  }
  setTimeout(fn: () => void, ms: number): unknown {
    const id = ++this.seq;
    this.timers.set(id, { at: this.t + Math.max(0, ms || 0), fn });
    return id;
  }
  clearTimeout(handle: unknown): void {
    this.timers.delete(handle as number);
  }
  async advance(ms: number): Promise<void> {
    const end = this.t + ms;
    await settle();
    while (this.runNext(end)) await settle();
    this.t = Math.max(this.t, end);
    await settle();
  }
  async until(done: () => boolean, maxMs = 600_000): Promise<void> {
    const end = this.t + maxMs;
    await settle();
    while (!done()) {
      if (!this.runNext(end)) throw new Error(`not reached within ${maxMs} ms of virtual time`);
      await settle();
    }
  }
  /** Advances virtual time until `promise` settles; its value. */
  async run<T>(promise: Promise<T>): Promise<T> {
    let done = false;
    const watched = promise.then(
      (v) => {
        done = true;
        return v;
      },
      (e: unknown) => {
        done = true;
        throw e;
      },
    );
    await this.until(() => done);
    return watched;
  }
  runNext(limit: number): boolean {
    let best: number | undefined;
    for (const [id, timer] of this.timers) {
      if (timer.at <= limit && (best === undefined || timer.at < (this.timers.get(best)?.at ?? 0))) best = id;
    }
    if (best === undefined) return false;
    const timer = this.timers.get(best) as { at: number; fn: () => void };
    this.timers.delete(best);
    this.t = Math.max(this.t, timer.at);
    timer.fn();
    return true;
  }
}

async function main(): Promise<Record<string, unknown>> {
  const clock = new VirtualClock();
  const start = clock.now();
  const server = new FakeServer(clock as unknown as FakeClock, { latency: 5 });
  const wire = { opened: 0, sent: 0, received: 0 };

  /** A WHATWG-shaped WebSocket whose far end is the scripted server. */
  class StandInWebSocket {
    binaryType = 'blob';
    onopen: ((ev: unknown) => void) | null = null;
    onmessage: ((ev: { data: unknown }) => void) | null = null;
    onclose: ((ev: { code: number; reason: string }) => void) | null = null;
    onerror: ((ev: unknown) => void) | null = null;
    socket: FakeSocket;
    constructor(url: string, protocol?: string | string[]) {
      wire.opened++;
      this.socket = server.transport.connect(url, String(protocol), {
        onOpen: () => this.onopen?.({}),
        onMessage: (text) => {
          wire.received++;
          this.onmessage?.({ data: text });
        },
        onClose: (code, reason) => this.onclose?.({ code, reason }),
        onError: (error) => this.onerror?.(error),
      }) as FakeSocket;
    }
    send(text: string): void {
      wire.sent++;
      this.socket.send(text);
    }
    close(code?: number, reason?: string): void {
      this.socket.close(code, reason);
    }
  }
  (globalThis as { WebSocket?: unknown }).WebSocket = StandInWebSocket;

  const stream = 'd:dev1';
  const published: string[] = [];
  const publish = (s = stream) => published.push(server.publish(s, { data: { n: published.length } }).id);
  for (let i = 0; i < 3; i++) publish(); // waiting before the app starts

  const client = createClient({
    url: 'https://push.test',
    credentials: { deviceId: 'dev1', token: 'tok' },
    storage: memoryStorage(),
    clock,
    random: () => 0.5,
  });
  const received: string[] = [];
  client.on('message', (m: PushMessage) => received.push(m.id));

  await clock.until(() => client.state === 'open');
  await clock.until(() => received.length === 3);
  for (let i = 0; i < 2; i++) publish(); // live
  await clock.until(() => received.length === 5);
  await clock.run(client.subscribe('news'));
  publish('t:news');
  await clock.until(() => received.length === 6);
  server.last.push(server.streams.get(stream)?.[1] as never); // the server sends one again
  await clock.advance(1000);
  const ackedBeforeLoss = Object.fromEntries(server.acked);

  server.last.reset(); // the socket dies (1006): the app is told nothing else
  for (let i = 0; i < 2; i++) publish(); // while disconnected
  await clock.until(() => received.length === 8);
  await clock.advance(1000);

  // The phone slept; the NAT forgot the socket. An OS wake-up: wake() finds it dead and reconnects.
  server.last.blackhole();
  publish();
  const wake = await clock.run(client.wake(10_000));
  await clock.advance(1000);
  await clock.run(client.close());

  const hellos = server.frames('hello');
  const unique = new Set(received);
  return {
    engine:
      typeof (globalThis as { HermesInternal?: unknown }).HermesInternal === 'object' ? 'hermes' : 'other',
    published: published.length,
    received: received.length,
    duplicated: received.length - unique.size,
    lost: published.filter((id) => !unique.has(id)).length,
    inOrder: received.join() === published.join(),
    helloCursors: hellos.map((h) => h.cursors ?? {}),
    ackedBeforeLoss,
    acked: Object.fromEntries(server.acked),
    wake,
    wire,
    state: client.state,
    virtualMs: clock.now() - start,
    pendingTimers: clock.timers.size,
  };
}

main().then(
  (result) => print(JSON.stringify({ ok: true, result })),
  (error: unknown) =>
    print(JSON.stringify({ ok: false, error: String(error), stack: (error as { stack?: string })?.stack })),
);
