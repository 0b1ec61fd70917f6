import type { Writable } from 'node:stream';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import * as ws from 'ws';
import { clientFrame, closePayload, Op } from '../../../../../test/helpers/ws-frames.js';
import { FrameReader, type FrameSink } from './frames.js';

/**
 * Differential check against a mature implementation: for valid client traffic (generated masked
 * frames: text and binary messages, fragmented or not, pings and pongs between fragments, maybe a
 * close at the end, cut into random reads), our FrameReader and the `Receiver` of `ws` yield the
 * same messages, pings and close.
 */
type ReceiverLike = Writable;
const Receiver = (ws as unknown as { Receiver: new (o: object) => ReceiverLike }).Receiver;
const LIMIT = 64 * 1024;
const RUNS = Number(process.env.FUZZ_RUNS ?? 20_000) / 10; // a tenth of the fuzz budget: larger inputs

type Event = [string, ...(string | number)[]];

function ours(reads: Buffer[]): Event[] {
  const events: Event[] = [];
  const sink: FrameSink = {
    onWireMessage: (p, binary) => events.push([binary ? 'binary' : 'text', p.toString('hex')]),
    onWirePing: (p) => events.push(['ping', p.toString('hex')]),
    onWireClose: (code, reason) => events.push(['close', code, reason]),
    onWireError: (code, reason) => events.push(['error', code, reason]),
  };
  const reader = new FrameReader(LIMIT);
  for (const r of reads) reader.push(Buffer.from(r), sink);
  return events;
}

function theirs(reads: Buffer[]): Event[] {
  const events: Event[] = [];
  const r = new Receiver({ isServer: true, maxPayload: LIMIT, binaryType: 'nodebuffer' });
  r.on('message', (data: Buffer, binary: boolean) =>
    events.push([binary ? 'binary' : 'text', data.toString('hex')]),
  );
  r.on('ping', (data: Buffer) => events.push(['ping', data.toString('hex')]));
  r.on('conclude', (code: number, reason: Buffer) => events.push(['close', code, reason.toString()]));
  r.on('error', (err: Error) => events.push(['error', String(err)]));
  for (const c of reads) r.write(Buffer.from(c));
  return events;
}

const key = fc.uint8Array({ minLength: 4, maxLength: 4 }).map((k) => Buffer.from(k));
const ctl = fc.record({ ping: fc.boolean(), payload: fc.uint8Array({ maxLength: 125 }), key });
const ctlFrame = (c: { ping: boolean; payload: Uint8Array; key: Buffer }) =>
  clientFrame(c.ping ? Op.Ping : Op.Pong, Buffer.from(c.payload), { key: c.key });
const msg = fc.record({
  binary: fc.boolean(),
  text: fc.string({ unit: 'binary', maxLength: 2000 }),
  bin: fc.uint8Array({ maxLength: 3000 }),
  big: fc.integer({ min: 0, max: 9 }), // now and then a 16-bit or 64-bit length
  cuts: fc.array(fc.nat(), { maxLength: 6 }),
  between: fc.array(ctl, { maxLength: 3 }),
  key,
});

function msgFrames(m: {
  binary: boolean;
  text: string;
  bin: Uint8Array;
  big: number;
  cuts: number[];
  between: { ping: boolean; payload: Uint8Array; key: Buffer }[];
  key: Buffer;
}): Buffer[] {
  let payload = m.binary ? Buffer.from(m.bin) : Buffer.from(m.text, 'utf8');
  if (m.big < 2) payload = Buffer.concat([payload, Buffer.alloc(m.big === 0 ? 60_000 : 200, 0x7a)]);
  const points = [...new Set(m.cuts.map((c) => (payload.length ? c % payload.length : 0)))]
    .filter((p) => p > 0)
    .sort((a, b) => a - b);
  const parts: Buffer[] = [];
  let prev = 0;
  for (const p of points) {
    parts.push(payload.subarray(prev, p));
    prev = p;
  }
  parts.push(payload.subarray(prev));
  const out: Buffer[] = [];
  for (const [i, part] of parts.entries()) {
    const fin = i === parts.length - 1;
    out.push(clientFrame(i === 0 ? (m.binary ? Op.Binary : Op.Text) : Op.Cont, part, { fin, key: m.key }));
    const c = m.between[i];
    if (!fin && c) out.push(ctlFrame(c));
  }
  return out;
}

function cut(all: Buffer, sizes: number[]): Buffer[] {
  const out: Buffer[] = [];
  for (let off = 0, i = 0; off < all.length; i++) {
    const n = sizes.length ? (sizes[i % sizes.length] as number) : all.length;
    out.push(all.subarray(off, off + n));
    off += n;
  }
  return out;
}

describe("FrameReader and ws's Receiver agree on valid traffic", () => {
  it('the same messages, pings and close for generated valid streams in random reads', () => {
    fc.assert(
      fc.property(
        fc.array(fc.oneof({ weight: 3, arbitrary: msg }, { weight: 1, arbitrary: ctl }), {
          minLength: 1,
          maxLength: 6,
        }),
        fc.option(
          fc.record({
            code: fc.constantFrom(1000, 1001, 1003, 1008, 1011, 3000, 4001, 4999),
            reason: fc.string({ maxLength: 40 }),
          }),
          { nil: undefined },
        ),
        fc.array(fc.integer({ min: 1, max: 4096 }), { maxLength: 6 }),
        (items, close, sizes) => {
          const frames = items.flatMap((it) => ('ping' in it ? [ctlFrame(it)] : msgFrames(it)));
          if (close) {
            let reason = Buffer.from(close.reason, 'utf8');
            while (reason.length > 123) reason = Buffer.from(reason.toString('utf8').slice(0, -1), 'utf8');
            frames.push(clientFrame(Op.Close, closePayload(close.code, reason)));
          }
          const reads = cut(Buffer.concat(frames), sizes);
          const a = ours(reads);
          const b = theirs(reads);
          expect(a).toEqual(b);
          expect(a.some((e) => e[0] === 'error')).toBe(false);
        },
      ),
      { numRuns: Math.max(1, Math.round(RUNS)) },
    );
  }, 120_000);

  it('agrees on the close code for common faults (RFC 6455 §5.2, §5.5, §7.4, §8.1)', async () => {
    const faults = [
      clientFrame(Op.Text, 'a', { mask: false }),
      clientFrame(Op.Text, 'a', { rsv: 0x40 }),
      clientFrame(0x3, 'a'),
      clientFrame(0xb, ''),
      clientFrame(Op.Ping, Buffer.alloc(126)),
      clientFrame(Op.Ping, 'a', { fin: false }),
      clientFrame(Op.Cont, 'a'),
      clientFrame(Op.Text, Buffer.from([0xc3, 0x28])),
      clientFrame(Op.Close, Buffer.from([3])),
      clientFrame(Op.Close, closePayload(1005)),
      clientFrame(Op.Close, closePayload(1000, Buffer.from([0xff]))),
      clientFrame(Op.Binary, Buffer.alloc(LIMIT + 1)),
    ];
    const codeOf = (events: Event[]) => {
      const e = events.at(-1);
      if (e?.[0] !== 'error') return undefined;
      return typeof e[1] === 'number' ? e[1] : undefined;
    };
    for (const f of faults) {
      const a = ours([f]);
      const errors: number[] = [];
      const r = new Receiver({ isServer: true, maxPayload: LIMIT });
      r.on('error', (err: Error & { [k: symbol]: number }) => {
        const sym = Object.getOwnPropertySymbols(err).find((s) => s.description === 'status-code');
        errors.push(sym ? (err[sym] as number) : -1);
      });
      r.write(Buffer.from(f));
      await new Promise((resolve) => setImmediate(resolve)); // ws reports errors on a later tick
      expect([codeOf(a), f.subarray(0, 2).toString('hex')]).toEqual([
        errors[0],
        f.subarray(0, 2).toString('hex'),
      ]);
    }
  });
});
