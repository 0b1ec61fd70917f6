import type { MessageFrame } from '@pushwire/protocol';
import { describe, expect, it } from 'vitest';
import { ConnectionError, type PushwireError } from './errors.js';
import { createInbound } from './inbound.js';
import { flush } from './testkit/fake-clock.js';
import type { Opened, WebPushStage } from './webpush-stage.js';

const msg = (seq: number, data?: unknown): MessageFrame => ({
  t: 'msg',
  id: `m${seq}`,
  stream: 'd:dev1',
  seq,
  ts: 0,
  ...(data !== undefined && { data }),
});
const push = (seq: number) => msg(seq, { webpush: { sub: 'sub1', body: `cipher${seq}` } });

/** A stage whose decryptions finish when the test says so. */
function manualStage() {
  const entered: string[] = [];
  const pending: { frame: MessageFrame; resolve(o: Opened): void; reject(e: unknown): void }[] = [];
  const stage: WebPushStage = {
    open: (frame) => {
      entered.push(frame.id);
      return new Promise<Opened>((resolve, reject) => pending.push({ frame, resolve, reject }));
    },
  };
  const finish = (i = 0) => {
    const p = pending.splice(i, 1)[0]!;
    p.resolve({ message: { ...p.frame, data: `plain ${p.frame.id}`, webpush: true }, handOver: true });
  };
  return { stage, entered, pending, finish };
}

function setup() {
  const s = manualStage();
  const delivered: { id: string; data: unknown; handOver: boolean }[] = [];
  const seen = new Set<string>();
  const fails: PushwireError[] = [];
  const reports: PushwireError[] = [];
  const inbound = createInbound({
    delivery: {
      isNew: (f) => !seen.has(f.id),
      receive: (f, handOver = true) => {
        seen.add(f.id);
        delivered.push({ id: f.id, data: f.data, handOver });
      },
    },
    stage: s.stage,
    report: (e) => reports.push(e),
    fail: (e) => fails.push(e),
  });
  return { ...s, inbound, delivered, fails, reports };
}

describe('inbound path: session → Web Push stage → delivery', () => {
  it('other messages never enter the stage and reach delivery at once', () => {
    const t = setup();
    t.inbound.receive(msg(1, { hello: 1 }));
    t.inbound.receive(msg(2));
    expect(t.entered).toEqual([]);
    expect(t.delivered.map((d) => d.id)).toEqual(['m1', 'm2']);
    expect(t.inbound.idle).toBe(true);
  });

  it('only Web Push messages enter the stage; messages behind one wait, so stream order is kept', async () => {
    const t = setup();
    t.inbound.receive(msg(1));
    t.inbound.receive(push(2));
    t.inbound.receive(msg(3));
    t.inbound.receive(push(4));
    await flush();
    expect(t.entered).toEqual(['m2']);
    expect(t.delivered.map((d) => d.id)).toEqual(['m1']);
    expect(t.inbound.idle).toBe(false);
    t.finish();
    await flush();
    expect(t.entered).toEqual(['m2', 'm4']);
    expect(t.delivered.map((d) => d.id)).toEqual(['m1', 'm2', 'm3']);
    t.finish();
    await flush();
    expect(t.delivered).toEqual([
      { id: 'm1', data: undefined, handOver: true },
      { id: 'm2', data: 'plain m2', handOver: true },
      { id: 'm3', data: undefined, handOver: true },
      { id: 'm4', data: 'plain m4', handOver: true },
    ]);
    expect(t.inbound.idle).toBe(true);
  });

  it('a Web Push message seen before skips the stage (delivery drops it as a duplicate)', async () => {
    const t = setup();
    t.inbound.receive(push(1));
    await flush();
    t.finish();
    await flush();
    t.inbound.receive(push(1));
    await flush();
    expect(t.entered).toEqual(['m1']);
    expect(t.delivered.map((d) => [d.id, d.data])).toEqual([
      ['m1', 'plain m1'],
      ['m1', { webpush: { sub: 'sub1', body: 'cipher1' } }],
    ]);
  });

  it('a stage that cannot work: nothing from there on is processed, the session fails once', async () => {
    const t = setup();
    t.inbound.receive(push(1));
    t.inbound.receive(msg(2));
    t.inbound.receive(push(3));
    await flush();
    t.pending.shift()!.reject(new ConnectionError('cannot decrypt message m1 now'));
    await flush();
    expect(t.fails.map((e) => e.message)).toEqual(['cannot decrypt message m1 now']);
    expect(t.delivered).toEqual([]);
    expect(t.entered).toEqual(['m1']);
    expect(t.inbound.idle).toBe(true);
    // the replay after the reconnect goes through again
    t.inbound.receive(push(1));
    await flush();
    t.finish();
    await flush();
    expect(t.delivered.map((d) => d.id)).toEqual(['m1']);
  });

  it('dispose drops what waits (replayed next time)', async () => {
    const t = setup();
    t.inbound.receive(push(1));
    t.inbound.receive(msg(2));
    await flush();
    t.inbound.dispose();
    t.finish();
    await flush();
    expect(t.delivered).toEqual([]);
    expect(t.fails).toEqual([]);
  });
});
