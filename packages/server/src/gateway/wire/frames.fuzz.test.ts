import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { clientFrame, closePayload, Op } from '../../../../../test/helpers/ws-frames.js';
import { FrameReader, type FrameSink, MAX_CLIENT_HEADER } from './frames.js';

/**
 * Property-based fuzz of the frame reader: generated streams of valid, broken, truncated,
 * fragmented, oversized frames with control frames between fragments, cut into random reads.
 * Each input must never throw, hold at most the limit plus a header between reads, and end as an
 * independent oracle (built from what the generator meant to send) says: the same messages, pings
 * and close, and the right close code for the first broken frame.
 *
 * FUZZ_RUNS sets the number of generated inputs over both properties (default 20,000, as in CI);
 * a full run: `FUZZ_RUNS=1000000 npx vitest run packages/server/src/gateway/wire/frames.fuzz.test.ts`.
 */
const RUNS = Number(process.env.FUZZ_RUNS ?? 20_000);
const LIMIT = 2048;
const SEED = process.env.FUZZ_SEED !== undefined ? Number(process.env.FUZZ_SEED) : undefined;

type Event = [string, ...(string | number)[]];

class Recorder implements FrameSink {
  events: Event[] = [];
  onWireMessage(payload: Buffer, binary: boolean) {
    this.events.push([binary ? 'binary' : 'text', payload.toString('hex')]);
  }
  onWirePing(payload: Buffer) {
    this.events.push(['ping', payload.toString('hex')]);
  }
  onWireClose(code: number, reason: string) {
    this.events.push(['close', code, reason]);
  }
  onWireError(code: number) {
    this.events.push(['error', code]);
  }
}

/** One step of a generated stream: some bytes and what a correct reader makes of them. */
interface Step {
  bytes: Buffer;
  /** Events once these bytes are read whole (given the state the oracle tracks). */
  events: Event[];
  /** Reading stops after this step (an error or a close). */
  final: boolean;
}

const key = fc.uint8Array({ minLength: 4, maxLength: 4 }).map((k) => Buffer.from(k));
const bytes = (max: number) => fc.uint8Array({ maxLength: max }).map((b) => Buffer.from(b));
const utf8 = fc.string({ unit: 'binary', maxLength: 300 }).map((s) => Buffer.from(s, 'utf8'));
const control = fc.oneof(
  fc.record({ kind: fc.constant('ping' as const), payload: bytes(125), key }),
  fc.record({ kind: fc.constant('pong' as const), payload: bytes(125), key }),
);
/** A data message, cut into 1–6 fragments (cut anywhere, even inside a UTF-8 sequence), with control frames between. */
const message = fc.record({
  kind: fc.constant('message' as const),
  binary: fc.boolean(),
  text: utf8,
  bin: bytes(2500), // may pass the limit: then 1009 at the fragment that crosses it
  cuts: fc.array(fc.nat(), { maxLength: 5 }),
  between: fc.array(control, { maxLength: 3 }),
  key,
});
const defect = fc.oneof(
  fc.constant('unmasked'),
  fc.constant('rsv'),
  fc.constant('reserved-data-opcode'),
  fc.constant('reserved-control-opcode'),
  fc.constant('long-control'),
  fc.constant('fragmented-control'),
  fc.constant('bare-continuation'),
  fc.constant('message-in-message'),
  fc.constant('oversized'),
  fc.constant('oversized-64bit'),
  fc.constant('invalid-utf8'),
  fc.constant('close-one-byte'),
  fc.constant('close-bad-code'),
  fc.constant('close-bad-reason'),
  fc.constant('close'),
  fc.constant('close-empty'),
);

const hex = (b: Buffer) => b.toString('hex');

function controlStep(c: { kind: 'ping' | 'pong'; payload: Buffer; key: Buffer }): Step {
  const bytes = clientFrame(c.kind === 'ping' ? Op.Ping : Op.Pong, c.payload, { key: c.key });
  return { bytes, events: c.kind === 'ping' ? [['ping', hex(c.payload)]] : [], final: false };
}

/** The frames of one message; the oracle counts the limit across fragments. */
function messageSteps(m: {
  binary: boolean;
  text: Buffer;
  bin: Buffer;
  cuts: number[];
  between: { kind: 'ping' | 'pong'; payload: Buffer; key: Buffer }[];
  key: Buffer;
}): Step[] {
  const payload = m.binary ? m.bin : m.text;
  const points = [...new Set(m.cuts.map((c) => (payload.length ? c % payload.length : 0)))].sort(
    (a, b) => a - b,
  );
  const parts: Buffer[] = [];
  let prev = 0;
  for (const p of points) {
    if (p <= prev) continue;
    parts.push(payload.subarray(prev, p));
    prev = p;
  }
  parts.push(payload.subarray(prev));
  const steps: Step[] = [];
  let total = 0;
  for (const [i, part] of parts.entries()) {
    const opcode = i === 0 ? (m.binary ? Op.Binary : Op.Text) : Op.Cont;
    const fin = i === parts.length - 1;
    const frame = clientFrame(opcode, part, { fin, key: m.key });
    total += part.length;
    if (total > LIMIT) return [...steps, { bytes: frame, events: [['error', 1009]], final: true }];
    steps.push({
      bytes: frame,
      events: fin ? [[m.binary ? 'binary' : 'text', hex(payload)]] : [],
      final: false,
    });
    const c = m.between[i];
    if (!fin && c) steps.push(controlStep(c));
  }
  return steps;
}

function defectStep(d: string, k: Buffer): Step {
  const err = (code: number, bytes: Buffer): Step => ({ bytes, events: [['error', code]], final: true });
  switch (d) {
    case 'unmasked':
      return err(1002, clientFrame(Op.Text, 'a', { mask: false }));
    case 'rsv':
      return err(1002, clientFrame(Op.Text, 'a', { rsv: 0x40, key: k }));
    case 'reserved-data-opcode':
      return err(1002, clientFrame(0x3 + ((k[0] as number) % 5), 'a', { key: k }));
    case 'reserved-control-opcode':
      return err(1002, clientFrame(0xb + ((k[0] as number) % 5), '', { key: k }));
    case 'long-control':
      return err(1002, clientFrame(Op.Ping, Buffer.alloc(126), { key: k }));
    case 'fragmented-control':
      return err(1002, clientFrame(Op.Pong, 'a', { fin: false, key: k }));
    case 'bare-continuation':
      return err(1002, clientFrame(Op.Cont, 'a', { key: k }));
    case 'message-in-message':
      return err(
        1002,
        Buffer.concat([
          clientFrame(Op.Text, 'a', { fin: false, key: k }),
          clientFrame(Op.Text, 'b', { key: k }),
        ]),
      );
    case 'oversized': // only the header: refused before the payload arrives
      return err(
        1009,
        clientFrame(Op.Binary, Buffer.alloc(0), { len: LIMIT + 1 + (k[0] as number), key: k }),
      );
    case 'oversized-64bit':
      return err(1009, clientFrame(Op.Binary, Buffer.alloc(0), { len: 2 ** 40, key: k }));
    case 'invalid-utf8':
      return err(1007, clientFrame(Op.Text, Buffer.from([0x61, 0xff, 0x62]), { key: k }));
    case 'close-one-byte':
      return err(1002, clientFrame(Op.Close, Buffer.from([3]), { key: k }));
    case 'close-bad-code':
      return err(
        1002,
        clientFrame(
          Op.Close,
          closePayload([0, 999, 1004, 1005, 1006, 1015, 2999, 5000][(k[0] as number) % 8] as number),
          { key: k },
        ),
      );
    case 'close-bad-reason':
      return err(1007, clientFrame(Op.Close, closePayload(1000, Buffer.from([0xc3, 0x28])), { key: k }));
    case 'close-empty':
      return {
        bytes: clientFrame(Op.Close, Buffer.alloc(0), { key: k }),
        events: [['close', 1005, '']],
        final: true,
      };
    default: {
      const code = [1000, 1001, 1003, 1011, 3000, 4999][(k[0] as number) % 6] as number;
      return {
        bytes: clientFrame(Op.Close, closePayload(code, 'bye é'), { key: k }),
        events: [['close', code, 'bye é']],
        final: true,
      };
    }
  }
}

/** Cuts `all` into reads at the given sizes (cycled). */
function chunk(all: Buffer, sizes: number[]): Buffer[] {
  const out: Buffer[] = [];
  for (let off = 0, i = 0; off < all.length; i++) {
    const n = Math.max(1, sizes.length ? (sizes[i % sizes.length] as number) : all.length);
    out.push(Buffer.from(all.subarray(off, off + n))); // a copy: the reader unmasks in place
    off += n;
  }
  return out;
}

/** Feeds the reads, checking the memory bound after each; returns the events. */
function feed(reads: Buffer[]): Event[] {
  const reader = new FrameReader(LIMIT);
  const sink = new Recorder();
  for (const r of reads) {
    reader.push(r, sink);
    expect(reader.heldBytes).toBeLessThanOrEqual(LIMIT + MAX_CLIENT_HEADER);
    expect(reader.heldCapacity).toBeLessThanOrEqual(2 * (LIMIT + MAX_CLIENT_HEADER) + 256);
  }
  return sink.events;
}

/** Per-test time limit: generous, a loaded CI machine runs a few thousand inputs per second. */
const TIMEOUT_MS = Math.max(60_000, RUNS * 3);

const runs = (share: number) => ({
  numRuns: Math.max(1, Math.round(RUNS * share)),
  ...(SEED !== undefined && { seed: SEED }),
});

describe(`FrameReader fuzz (${RUNS} generated inputs; FUZZ_RUNS to change)`, () => {
  it(
    'generated streams, cut into random reads and maybe truncated, read as the oracle says',
    () => {
      fc.assert(
        fc.property(
          fc.array(fc.oneof({ weight: 3, arbitrary: message }, { weight: 2, arbitrary: control }), {
            maxLength: 6,
          }),
          fc.option(fc.tuple(defect, key), { nil: undefined }),
          fc.array(fc.integer({ min: 1, max: 300 }), { maxLength: 8 }),
          fc.option(fc.nat(), { nil: undefined }),
          (items, bad, sizes, truncate) => {
            let steps: Step[] = items.flatMap((it) =>
              it.kind === 'message' ? messageSteps(it) : [controlStep(it)],
            );
            const stop = steps.findIndex((s) => s.final);
            if (stop >= 0) steps = steps.slice(0, stop + 1);
            else if (bad) steps.push(defectStep(bad[0], bad[1]));
            const all = Buffer.concat([
              ...steps.map((s) => s.bytes),
              clientFrame(Op.Text, 'never read after the end'),
            ]);
            const expected: Event[] = steps.flatMap((s) => s.events);
            if (!steps.some((s) => s.final))
              expected.push(['text', hex(Buffer.from('never read after the end'))]);
            if (truncate !== undefined && all.length > 0) {
              // Cut inside the stream: the frames wholly before the cut are read, and no error…
              const cut = truncate % all.length;
              const whole = countWhole(steps, cut);
              const kept = steps.slice(0, whole).flatMap((s) => s.events);
              const events = feed(chunk(all.subarray(0, cut), sizes));
              // …unless the frame at the cut is refused from its header alone (e.g. 1009 from its length).
              const next = steps[whole];
              const early =
                next?.final && next.events[0]?.[0] === 'error' ? [...kept, ...next.events] : undefined;
              if (!eq(events, kept) && !(early && eq(events, early))) expect(events).toEqual(kept);
              return;
            }
            expect(feed(chunk(all, sizes))).toEqual(expected);
          },
        ),
        runs(0.6),
      );
    },
    TIMEOUT_MS,
  );

  it(
    'random and mutated bytes: never throws, memory bounded, ends with a valid code, same for any cut',
    () => {
      const valid = fc
        .array(fc.oneof(message, control), { minLength: 1, maxLength: 4 })
        .map((items) =>
          Buffer.concat(
            items
              .flatMap((it) => (it.kind === 'message' ? messageSteps(it) : [controlStep(it)]))
              .map((s) => s.bytes),
          ),
        );
      const mutated = fc
        .tuple(
          valid,
          fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 4 }),
        )
        .map(([b, flips]) => {
          const out = Buffer.from(b);
          for (const [at, v] of flips) if (out.length) out[at % out.length] = v;
          return out;
        });
      const random = fc.uint8Array({ maxLength: 3000 }).map((b) => Buffer.from(b));
      fc.assert(
        fc.property(
          fc.oneof(random, mutated),
          fc.array(fc.integer({ min: 1, max: 200 }), { maxLength: 6 }),
          (input, sizes) => {
            const whole = feed([Buffer.from(input)]);
            const cut = feed(chunk(input, sizes));
            expect(cut).toEqual(whole);
            const ends = whole.filter((e) => e[0] === 'error' || e[0] === 'close');
            expect(ends.length).toBeLessThanOrEqual(1);
            if (ends.length) expect(whole.at(-1)).toBe(ends[0]);
            for (const e of ends) {
              if (e[0] === 'error') expect([1002, 1007, 1009]).toContain(e[1]);
            }
          },
        ),
        runs(0.4),
      );
    },
    TIMEOUT_MS,
  );
});

function eq(a: unknown, b: unknown): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

/** Index of the first step not wholly inside the first `cut` bytes. */
function countWhole(steps: Step[], cut: number): number {
  let off = 0;
  for (const [i, s] of steps.entries()) {
    if (off + s.bytes.length > cut) return i;
    off += s.bytes.length;
  }
  return steps.length;
}
