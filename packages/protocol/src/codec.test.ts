import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  decodeClientFrame,
  decodeServerFrame,
  encodeFrame,
  MAX_CAPS,
  MAX_CURSORS,
  MAX_FRAME_BYTES,
} from './codec.js';
import { ProtocolError } from './errors.js';
import {
  type ClientFrame,
  ERROR_CODES,
  type ErrorCode,
  type Frame,
  type ServerFrame,
  TOPIC_PATTERN,
  URGENCIES,
} from './frames.js';

// ── test vectors (packages/protocol/vectors.json, described in docs/protocol.md § 10) ──────────

type Direction = 'client' | 'server';
interface Vector {
  name: string;
  direction: Direction;
  text: string;
  bytes?: string;
  canonical?: boolean;
  frame?: Frame;
  error?: ErrorCode;
}

const vectors = JSON.parse(readFileSync(new URL('../vectors.json', import.meta.url), 'utf8')) as Vector[];
const valid = vectors.filter((v) => v.frame !== undefined);
const invalid = vectors.filter((v) => v.error !== undefined);
const decode = (d: Direction, text: string): Frame =>
  d === 'client' ? decodeClientFrame(text) : decodeServerFrame(text);

/** Runs `fn` and returns the ProtocolError it throws; fails if it throws nothing or anything else. */
function protocolError(fn: () => unknown): ProtocolError {
  try {
    fn();
  } catch (e) {
    if (e instanceof ProtocolError) return e;
    throw new Error(`expected a ProtocolError, got ${String(e)}`, { cause: e });
  }
  throw new Error('expected a ProtocolError, nothing was thrown');
}

describe('vectors.json', () => {
  it('is well formed: unique names, a frame or an error, hex bytes of the text', () => {
    const names = vectors.map((v) => `${v.direction}: ${v.name}`);
    expect(new Set(names).size).toBe(names.length);
    for (const v of vectors) {
      expect(['client', 'server']).toContain(v.direction);
      expect(typeof v.text).toBe('string');
      expect((v.frame === undefined) !== (v.error === undefined)).toBe(true);
      if (v.error !== undefined) expect(ERROR_CODES).toContain(v.error);
      if (v.bytes !== undefined) expect(v.bytes).toBe(Buffer.from(v.text, 'utf8').toString('hex'));
    }
  });

  it('covers every frame kind, bare heartbeats, non-ASCII text and byte-level cases', () => {
    const kinds = (d: Direction) => new Set(valid.filter((v) => v.direction === d).map((v) => v.frame?.t));
    expect([...kinds('client')].sort()).toEqual(['ack', 'hello', 'ping', 'sub', 'unsub']);
    expect([...kinds('server')].sort()).toEqual([
      'error',
      'goaway',
      'msg',
      'pong',
      'subbed',
      'unsubbed',
      'welcome',
    ]);
    expect(valid.map((v) => v.text)).toEqual(expect.arrayContaining(['p', 'P']));
    expect(
      vectors.filter((v) => v.bytes !== undefined && /[^\x20-\x7e]/.test(v.text)).length,
    ).toBeGreaterThan(1);
    const codes = new Set(invalid.map((v) => v.error));
    expect([...codes].sort()).toEqual(['BAD_FRAME', 'BAD_TOPIC', 'UNKNOWN_FRAME']);
  });

  const label = (v: Vector) => [`${v.direction}: ${v.name}`, v] as const;

  describe.each(valid.map(label))('valid %s', (_, v) => {
    it('decodes to the frame', () => {
      expect(decode(v.direction, v.text)).toStrictEqual(v.frame);
    });
    if (v.canonical !== false) {
      it('encodes to the exact text', () => {
        expect(encodeFrame(v.frame!)).toBe(v.text);
        // The decoder builds fields in the canonical order, so decode → encode gives the text back.
        expect(encodeFrame(decode(v.direction, v.text))).toBe(v.text);
      });
    } else {
      it('is not what the encoder emits, and decoding is stable', () => {
        const text = encodeFrame(v.frame!);
        expect(text).not.toBe(v.text);
        expect(decode(v.direction, text)).toStrictEqual(v.frame);
      });
    }
  });

  it.each(invalid.map(label))('invalid %s', (_, v) => {
    expect(protocolError(() => decode(v.direction, v.text)).code).toBe(v.error);
  });
});

// ── docs/protocol.md stays true to the codec ──────────────────────────────────────────────────

describe('docs/protocol.md', () => {
  const doc = readFileSync(new URL('../../../docs/protocol.md', import.meta.url), 'utf8');
  const section = (title: string): string => {
    const start = doc.indexOf(`## ${title}`);
    expect(start).toBeGreaterThanOrEqual(0);
    const end = doc.indexOf('\n## ', start + 1);
    return doc.slice(start, end === -1 ? undefined : end);
  };
  const fences = (md: string): string[] => [...md.matchAll(/```\w*\n([\s\S]*?)```/g)].map((m) => m[1]!);

  it('worked example: every frame is canonical and its byte counts are right', () => {
    const lines = fences(section('9. Worked example'))[0]!
      .split('\n')
      .filter((l) => /^(C→S|S→C) /.test(l));
    expect(lines.length).toBeGreaterThan(10);
    for (const line of lines) {
      const [, dir, payload, wire, text] = /^(C→S|S→C)\s+(\d+)\s+(\d+)\s+(\S.*)$/.exec(line)!;
      const client = dir === 'C→S';
      const frame = client ? decodeClientFrame(text!) : decodeServerFrame(text!);
      expect(encodeFrame(frame), line).toBe(text);
      const n = Buffer.byteLength(text!, 'utf8');
      expect(Number(payload), line).toBe(n);
      expect(Number(wire), line).toBe(wsFrameBytes(n, client).length);
    }
  });

  it('worked example: the bare heartbeat bytes', () => {
    const block = fences(section('9. Worked example'))[1]!;
    const hexOf = (b: Uint8Array) =>
      Buffer.from(b)
        .toString('hex')
        .replace(/(..)(?!$)/g, '$1 ');
    const ping = wsFrameBytes(1, true, Buffer.from(encodeFrame({ t: 'ping' })), [0x37, 0xfa, 0x21, 0x3d]);
    const pong = wsFrameBytes(1, false, Buffer.from(encodeFrame({ t: 'pong' })));
    expect(block).toContain(`C→S p   ${hexOf(ping)}   ${ping.length} bytes`);
    expect(block).toContain(`S→C P   ${hexOf(pong)}               ${pong.length} bytes`);
  });

  it('test vectors section: its examples are vectors', () => {
    for (const example of fences(section('10. Test vectors')).filter((f) => f.trimStart().startsWith('{'))) {
      expect(vectors).toContainEqual(JSON.parse(example));
    }
  });
});

/** A WebSocket frame (FIN, text opcode) with a payload of `n` bytes, as RFC 6455 lays it out. */
function wsFrameBytes(
  n: number,
  masked: boolean,
  payload: Uint8Array = new Uint8Array(n),
  mask = [0, 0, 0, 0],
): Uint8Array {
  const len = n <= 125 ? [n] : n <= 0xffff ? [126, n >> 8, n & 0xff] : [127, 0, 0, 0, 0, 0, 0, 0, 0];
  const head = [0x81, (masked ? 0x80 : 0) | len[0]!, ...len.slice(1), ...(masked ? mask : [])];
  const body = payload.map((b, i) => (masked ? b ^ mask[i % 4]! : b));
  return Uint8Array.from([...head, ...body]);
}

// ── boundaries the vectors leave out (too large to list) ────────────────────────────────────────

describe('limits', () => {
  const cursorsOf = (count: number) =>
    Object.fromEntries(Array.from({ length: count }, (_, i) => [`t:s${i}`, i]));

  it(`accepts ${MAX_CURSORS} cursors and ${MAX_CAPS} caps in a hello`, () => {
    const hello: ClientFrame = {
      t: 'hello',
      v: 1,
      device: 'dev',
      token: 'tok',
      cursors: cursorsOf(MAX_CURSORS),
      caps: Array.from({ length: MAX_CAPS }, (_, i) => `c${i}`),
    };
    expect(decodeClientFrame(encodeFrame(hello))).toStrictEqual(hello);
  });

  it(`refuses ${MAX_CURSORS + 1} cursors in a hello`, () => {
    const text = encodeFrame({
      t: 'hello',
      v: 1,
      device: 'dev',
      token: 'tok',
      cursors: cursorsOf(MAX_CURSORS + 1),
    });
    expect(protocolError(() => decodeClientFrame(text)).code).toBe('BAD_FRAME');
  });

  it('accepts a welcome listing many topics', () => {
    const welcome: ServerFrame = {
      t: 'welcome',
      v: 1,
      session: 's',
      hb: 60,
      idle: 90,
      maxPayload: 4096,
      topics: Array.from({ length: 500 }, (_, i) => `topic-${i}`),
    };
    expect(decodeServerFrame(encodeFrame(welcome))).toStrictEqual(welcome);
  });

  /** A msg frame whose text is exactly `bytes` long in UTF-8, padded with `unit` characters. */
  function msgOfBytes(bytes: number, unit: string): string {
    const head = encodeFrame({ t: 'msg', id: 'm', stream: 'd:x', seq: 1, ts: 0, data: '' });
    const room = bytes - Buffer.byteLength(head);
    const unitBytes = Buffer.byteLength(unit);
    const text = head.replace(
      '""',
      `"${unit.repeat(Math.floor(room / unitBytes))}${'a'.repeat(room % unitBytes)}"`,
    );
    expect(Buffer.byteLength(text)).toBe(bytes);
    return text;
  }

  it(`accepts a frame of ${MAX_FRAME_BYTES} bytes and refuses one more`, () => {
    for (const unit of ['a', '€', '😀']) {
      expect(decodeServerFrame(msgOfBytes(MAX_FRAME_BYTES, unit)).t).toBe('msg');
      expect(protocolError(() => decodeServerFrame(msgOfBytes(MAX_FRAME_BYTES + 1, unit))).code).toBe(
        'BAD_FRAME',
      );
    }
  });

  it('measures the limit in UTF-8 bytes, not characters', () => {
    const text = msgOfBytes(MAX_FRAME_BYTES + 3, '€');
    expect(text.length).toBeLessThan(MAX_FRAME_BYTES / 2);
    expect(protocolError(() => decodeServerFrame(text)).code).toBe('BAD_FRAME');
    expect(protocolError(() => decodeClientFrame(text)).code).toBe('BAD_FRAME');
  });

  it('reads -0 as 0', () => {
    const ack = decodeClientFrame('{"t":"ack","acks":{"t:news":-0}}');
    expect(ack).toStrictEqual({ t: 'ack', acks: { 't:news': 0 } });
    expect(Object.is((ack as { acks: Record<string, number> }).acks['t:news'], 0)).toBe(true);
    const sub = decodeClientFrame('{"t":"sub","topic":"news","ref":-0}');
    expect(Object.is((sub as { ref: number }).ref, 0)).toBe(true);
  });

  it('refuses input that is not a string with BAD_FRAME', () => {
    for (const input of [undefined, null, 42, {}, new Uint8Array([0x70])]) {
      expect(protocolError(() => decodeClientFrame(input as unknown as string)).code).toBe('BAD_FRAME');
      expect(protocolError(() => decodeServerFrame(input as unknown as string)).code).toBe('BAD_FRAME');
    }
  });

  it('encodes a ping whose optional fields are undefined as the bare form', () => {
    expect(encodeFrame({ t: 'ping', acks: undefined, hb: undefined })).toBe('p');
    expect(encodeFrame({ t: 'ack', acks: { 'd:abc': 7 } })).toBe('{"t":"ack","acks":{"d:abc":7}}');
  });
});

// ── properties ──────────────────────────────────────────────────────────────────────────────────

/** Strings of `min`–`max` UTF-16 code units: printable ASCII, or any code point (astral too). */
const text = (min: number, max: number) =>
  fc.oneof(
    fc.string({ minLength: min, maxLength: max }),
    fc.string({ unit: 'binary', minLength: min, maxLength: max }).filter((s) => s.length <= max),
  );
const nat = (min = 0) => fc.integer({ min, max: Number.MAX_SAFE_INTEGER });
const topicName = fc.stringMatching(TOPIC_PATTERN);
const streamName = fc.oneof(
  text(1, 128).map((d) => `d:${d}`),
  topicName.map((t) => `t:${t}`),
);
const cursorMap = fc.dictionary(streamName, nat(), { maxKeys: 8, noNullPrototype: true });
/** JSON values as JSON.parse returns them (no -0, plain prototypes). */
const json = fc.jsonValue({ maxDepth: 3 }).map((v) => JSON.parse(JSON.stringify(v)) as unknown);
const opt = { noNullPrototype: true } as const;

const clientFrame: fc.Arbitrary<ClientFrame> = fc.oneof(
  fc.record(
    {
      t: fc.constant('hello' as const),
      v: nat(),
      device: text(1, 128),
      token: text(1, 512),
      cursors: cursorMap,
      hb: nat(1),
      caps: fc.array(text(0, 128), { maxLength: MAX_CAPS }),
    },
    { requiredKeys: ['t', 'v', 'device', 'token'], ...opt },
  ),
  fc.record({ t: fc.constant('ack' as const), acks: cursorMap }, opt),
  fc.record(
    { t: fc.constantFrom('sub' as const, 'unsub' as const), topic: topicName, ref: nat() },
    { requiredKeys: ['t', 'topic'], ...opt },
  ),
  fc.record(
    { t: fc.constant('ping' as const), acks: cursorMap, hb: nat(1) },
    { requiredKeys: ['t'], ...opt },
  ),
);

const notification = fc.record(
  {
    title: text(0, 64),
    body: text(0, 256),
    icon: text(0, 64),
    tag: text(0, 32),
    url: text(0, 64),
    extra: json,
  },
  { requiredKeys: [], ...opt },
);
const serverFrame: fc.Arbitrary<ServerFrame> = fc.oneof(
  fc.record(
    {
      t: fc.constant('welcome' as const),
      v: nat(),
      session: text(1, 256),
      hb: nat(1),
      idle: nat(1),
      maxPayload: nat(1),
      topics: fc.array(text(0, 128), { maxLength: 100 }),
    },
    opt,
  ),
  fc.record(
    {
      t: fc.constant('msg' as const),
      id: text(1, 256),
      stream: text(1, 256),
      seq: nat(1),
      ts: nat(),
      exp: nat(),
      data: json,
      notification,
      urgency: fc.constantFrom(...URGENCIES),
      collapseKey: text(1, 256),
    },
    { requiredKeys: ['t', 'id', 'stream', 'seq', 'ts'], ...opt },
  ),
  fc.constant({ t: 'pong' as const }),
  fc.record(
    { t: fc.constant('subbed' as const), topic: text(1, 128), seq: nat(), ref: nat() },
    { requiredKeys: ['t', 'topic', 'seq'], ...opt },
  ),
  fc.record(
    { t: fc.constant('unsubbed' as const), topic: text(1, 128), ref: nat() },
    { requiredKeys: ['t', 'topic'], ...opt },
  ),
  fc.record({ t: fc.constant('goaway' as const), reason: text(0, 256), reconnectAfter: nat() }, opt),
  fc.record(
    {
      t: fc.constant('error' as const),
      code: fc.constantFrom(...ERROR_CODES),
      message: text(0, 300),
      fatal: fc.boolean(),
      retryAfter: nat(),
      ref: nat(),
    },
    { requiredKeys: ['t', 'code', 'message', 'fatal'], ...opt },
  ),
);

const CLIENT_FIELDS = ['v', 'device', 'token', 'cursors', 'hb', 'caps', 'acks', 'topic', 'ref'];
const SERVER_FIELDS = [
  ...['v', 'session', 'hb', 'idle', 'maxPayload', 'topics', 'id', 'stream', 'seq', 'ts', 'exp', 'data'],
  ...['notification', 'urgency', 'collapseKey', 'topic', 'ref', 'reason', 'reconnectAfter', 'code'],
  ...['message', 'fatal', 'retryAfter'],
];
const KINDS = ['hello', 'ack', 'sub', 'unsub', 'ping', 'welcome', 'msg', 'pong', 'subbed', 'unsubbed'];

/** Objects that look like frames: a known (or unknown) kind with random values in known fields. */
const frameLike = fc
  .tuple(
    fc.constantFrom(...KINDS, 'goaway', 'error', 'nope'),
    fc.dictionary(fc.constantFrom(...CLIENT_FIELDS, ...SERVER_FIELDS), json, opt),
  )
  .map(([t, fields]) => JSON.stringify({ t, ...fields }));

/** Any text a peer could send: random strings, random JSON, frame-like objects, valid frames. */
const anyText = fc.oneof(
  fc.string({ unit: 'binary', maxLength: 64 }),
  fc.constantFrom('p', 'P', '', ' p', '{}', '[]', 'null', '{"t":null}'),
  json.map((v) => JSON.stringify(v)),
  frameLike,
  clientFrame.map(encodeFrame),
  serverFrame.map(encodeFrame),
);

/** Decodes `input` and returns the frame, or undefined when it throws a ProtocolError. */
function decodeOrRefuse(decoder: (t: string) => Frame, input: string): Frame | undefined {
  try {
    return decoder(input);
  } catch (e) {
    if (e instanceof ProtocolError && ERROR_CODES.includes(e.code)) return undefined;
    throw e;
  }
}

describe('properties', () => {
  it('client frames: decode(encode(f)) equals f, and the encoding is canonical', () => {
    fc.assert(
      fc.property(clientFrame, (f) => {
        const text = encodeFrame(f);
        const back = decodeClientFrame(text);
        expect(back).toStrictEqual(f);
        expect(encodeFrame(back)).toBe(text);
      }),
      { numRuns: 500 },
    );
  });

  it('server frames: decode(encode(f)) equals f, and the encoding is canonical', () => {
    fc.assert(
      fc.property(serverFrame, (f) => {
        const text = encodeFrame(f);
        const back = decodeServerFrame(text);
        expect(back).toStrictEqual(f);
        expect(encodeFrame(back)).toBe(text);
      }),
      { numRuns: 500 },
    );
  });

  it('client frames: any unknown field is refused with BAD_FRAME', () => {
    fc.assert(
      fc.property(
        clientFrame.filter((f) => encodeFrame(f) !== 'p'),
        fc.string(),
        json,
        (f, k, v) => {
          fc.pre(!['t', ...Object.keys(f)].includes(k) && !CLIENT_FIELDS.includes(k));
          const text = JSON.stringify({ ...f, [k]: v });
          expect(protocolError(() => decodeClientFrame(text)).code).toBe('BAD_FRAME');
        },
      ),
    );
  });

  it('server frames: unknown fields are ignored', () => {
    fc.assert(
      fc.property(
        serverFrame.filter((f) => f.t !== 'pong'),
        fc.string(),
        json,
        (f, k, v) => {
          fc.pre(!['t', ...Object.keys(f)].includes(k) && !SERVER_FIELDS.includes(k));
          expect(decodeServerFrame(JSON.stringify({ ...f, [k]: v }))).toStrictEqual(f);
        },
      ),
    );
  });

  it('decoders throw nothing but ProtocolError, and what they accept re-encodes stably', () => {
    fc.assert(
      fc.property(anyText, (input) => {
        for (const decoder of [decodeClientFrame, decodeServerFrame] as const) {
          const frame = decodeOrRefuse(decoder, input);
          if (frame === undefined) continue;
          const text = encodeFrame(frame);
          expect(decoder(text)).toStrictEqual(frame);
          expect(encodeFrame(decoder(text))).toBe(text);
        }
      }),
      { numRuns: 2000 },
    );
  });

  it('the client decoder never accepts a frame with a negative, fractional or unsafe number', () => {
    const badNumber = fc.oneof(
      fc.integer({ max: -1 }),
      fc.double({ noNaN: true, noDefaultInfinity: true }).filter((d) => !Number.isInteger(d)),
      fc.constantFrom(2 ** 53, -(2 ** 53), 1e300),
    );
    const withBadNumber = fc.oneof(
      badNumber.map((n) => `{"t":"ack","acks":{"t:news":${JSON.stringify(n)}}}`),
      badNumber.map((n) => `{"t":"ping","hb":${JSON.stringify(n)}}`),
      badNumber.map((n) => `{"t":"sub","topic":"news","ref":${JSON.stringify(n)}}`),
      badNumber.map((n) => `{"t":"hello","v":${JSON.stringify(n)},"device":"d","token":"t"}`),
    );
    fc.assert(
      fc.property(withBadNumber, (input) => {
        expect(protocolError(() => decodeClientFrame(input)).code).toBe('BAD_FRAME');
      }),
    );
  });
});
