import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { closeFrame, FrameReader, type FrameSink, isValidCloseCode, Opcode, textFrame } from './frames.js';

/** A client frame: masked, as browsers and `ws` send them. */
function clientFrame(
  opcode: number,
  payload: Buffer,
  opts: { fin?: boolean; mask?: boolean; rsv?: number } = {},
) {
  const { fin = true, mask = true, rsv = 0 } = opts;
  const len = payload.length;
  const ext = len < 126 ? 0 : len < 65536 ? 2 : 8;
  const head = Buffer.alloc(2 + ext + (mask ? 4 : 0));
  head[0] = (fin ? 0x80 : 0) | rsv | opcode;
  head[1] = (mask ? 0x80 : 0) | (ext === 0 ? len : ext === 2 ? 126 : 127);
  if (ext === 2) head.writeUInt16BE(len, 2);
  if (ext === 8) head.writeBigUInt64BE(BigInt(len), 2);
  if (!mask) return Buffer.concat([head, payload]);
  const key = Buffer.from([0x37, 0xfa, 0x21, 0x3d]);
  key.copy(head, 2 + ext);
  const body = Buffer.from(payload.map((b, i) => b ^ (key[i % 4] as number)));
  return Buffer.concat([head, body]);
}

class Recorder implements FrameSink {
  events: (string | [string, string | number, string?])[] = [];
  onWireMessage(payload: Buffer, binary: boolean) {
    this.events.push([binary ? 'binary' : 'text', payload.toString('utf8')]);
  }
  onWirePing(payload: Buffer) {
    this.events.push(['ping', payload.toString('utf8')]);
  }
  onWireClose(code: number, reason: string) {
    this.events.push(['close', code, reason]);
  }
  onWireError(code: number, reason: string) {
    this.events.push(['error', code, reason]);
  }
}

function read(bytes: Buffer[], max = 1024 * 1024) {
  const reader = new FrameReader(max);
  const sink = new Recorder();
  // Copied: the reader unmasks in place, as it may with the socket's own read buffers.
  for (const b of bytes) reader.push(Buffer.from(b), sink);
  return sink.events;
}

const text = (s: string) => clientFrame(Opcode.Text, Buffer.from(s));

describe('FrameReader', () => {
  it('reads text messages whole, split byte by byte, and several in one chunk', () => {
    const both = Buffer.concat([text('{"t":"ping"}'), text('héllo')]);
    const expected = [
      ['text', '{"t":"ping"}'],
      ['text', 'héllo'],
    ];
    expect(read([both])).toEqual(expected);
    expect(read([...both].map((b) => Buffer.from([b])))).toEqual(expected);
  });

  it('reads 16-bit and 64-bit payload lengths', () => {
    const mid = 'x'.repeat(300);
    const big = 'y'.repeat(70_000);
    expect(read([text(mid), text(big)])).toEqual([
      ['text', mid],
      ['text', big],
    ]);
  });

  it('joins fragments, with a ping between them, and keeps binary apart', () => {
    const events = read([
      clientFrame(Opcode.Text, Buffer.from('hel'), { fin: false }),
      clientFrame(Opcode.Ping, Buffer.from('p')),
      clientFrame(Opcode.Continuation, Buffer.from('lo'), { fin: false }),
      clientFrame(Opcode.Continuation, Buffer.from('!')),
      clientFrame(Opcode.Binary, Buffer.from([0x41])),
    ]);
    expect(events).toEqual([
      ['ping', 'p'],
      ['text', 'hello!'],
      ['binary', 'A'],
    ]);
  });

  it('any chunking of any messages yields the same messages (property)', () => {
    fc.assert(
      fc.property(
        fc.array(fc.string({ unit: 'grapheme', maxLength: 400 }), { minLength: 1, maxLength: 8 }),
        fc.array(fc.integer({ min: 1, max: 97 }), { minLength: 1, maxLength: 20 }),
        (messages, cuts) => {
          const all = Buffer.concat(messages.map(text));
          const chunks: Buffer[] = [];
          for (let off = 0, i = 0; off < all.length; i++) {
            const n = cuts[i % cuts.length] as number;
            chunks.push(all.subarray(off, off + n));
            off += n;
          }
          expect(read(chunks)).toEqual(messages.map((m) => ['text', m]));
        },
      ),
      { numRuns: 200 },
    );
  });

  it.each([
    ['an unmasked frame', clientFrame(Opcode.Text, Buffer.from('a'), { mask: false }), 1002],
    [
      'RSV bits (no extension was negotiated)',
      clientFrame(Opcode.Text, Buffer.from('a'), { rsv: 0x40 }),
      1002,
    ],
    ['a reserved data opcode', clientFrame(0x3, Buffer.from('a')), 1002],
    ['a reserved control opcode', clientFrame(0xb, Buffer.alloc(0)), 1002],
    ['a continuation without a message', clientFrame(Opcode.Continuation, Buffer.from('a')), 1002],
    ['a fragmented ping', clientFrame(Opcode.Ping, Buffer.from('a'), { fin: false }), 1002],
    ['a ping longer than 125 bytes', clientFrame(Opcode.Ping, Buffer.alloc(126)), 1002],
    ['text that is not UTF-8', clientFrame(Opcode.Text, Buffer.from([0xc3, 0x28])), 1007],
    ['a close frame of one byte', clientFrame(Opcode.Close, Buffer.from([3])), 1002],
    ['close code 1005 on the wire', clientFrame(Opcode.Close, Buffer.from([0x03, 0xed])), 1002],
  ])('refuses %s with the right close code and reads nothing after it', (_name, bad, code) => {
    const events = read([bad, text('after')]);
    expect(events).toHaveLength(1);
    expect((events[0] as unknown[]).slice(0, 2)).toEqual(['error', code]);
  });

  it('refuses a new message inside a fragmented one', () => {
    const events = read([clientFrame(Opcode.Text, Buffer.from('a'), { fin: false }), text('b')]);
    expect(events).toEqual([['error', 1002, 'new message inside a fragmented one']]);
  });

  it('refuses a message past the limit from its header, before the payload arrives', () => {
    const frame = clientFrame(Opcode.Text, Buffer.alloc(2000, 0x61));
    expect(read([frame.subarray(0, 8)], 1000)).toEqual([['error', 1009, 'message too big']]);
    // Fragments count together.
    const parts = [
      clientFrame(Opcode.Text, Buffer.alloc(600, 0x61), { fin: false }),
      clientFrame(Opcode.Continuation, Buffer.alloc(600, 0x61)),
    ];
    expect(read(parts, 1000)).toEqual([['error', 1009, 'message too big']]);
  });

  it('reports a close frame with its code and reason, or 1005 without one, and stops reading', () => {
    const payload = Buffer.concat([Buffer.from([0x0f, 0xa1]), Buffer.from('bye')]);
    expect(read([clientFrame(Opcode.Close, payload), text('late')])).toEqual([['close', 4001, 'bye']]);
    expect(read([clientFrame(Opcode.Close, Buffer.alloc(0))])).toEqual([['close', 1005, '']]);
  });
});

describe('server frames', () => {
  function parse(frame: Buffer) {
    const len7 = (frame[1] as number) & 0x7f;
    const [len, at] =
      len7 === 126
        ? [frame.readUInt16BE(2), 4]
        : len7 === 127
          ? [Number(frame.readBigUInt64BE(2)), 10]
          : [len7, 2];
    return {
      fin: (frame[0] as number) >> 7,
      opcode: (frame[0] as number) & 0xf,
      masked: (frame[1] as number) >> 7,
      len,
      payload: frame.subarray(at),
    };
  }

  it.each([0, 125, 126, 65535, 65536])(
    'textFrame of %i bytes: FIN, unmasked, minimal length encoding',
    (n) => {
      for (const input of ['é'.repeat(n / 2) + 'a'.repeat(n % 2), Buffer.alloc(n, 0x62)]) {
        const f = parse(textFrame(input));
        expect(f).toMatchObject({ fin: 1, opcode: Opcode.Text, masked: 0, len: n });
        expect(f.payload.equals(Buffer.from(input))).toBe(true);
      }
    },
  );

  it('closeFrame carries the code and a reason cut to whole characters within 125 bytes', () => {
    const f = parse(closeFrame(4011, 'é'.repeat(100)));
    expect(f.opcode).toBe(Opcode.Close);
    expect(f.len).toBeLessThanOrEqual(125);
    expect(f.payload.readUInt16BE(0)).toBe(4011);
    expect(f.payload.subarray(2).toString('utf8')).toBe('é'.repeat(61));
  });

  it('valid close codes follow RFC 6455 §7.4', () => {
    expect([1000, 1001, 1003, 1007, 1011, 3000, 4999].every(isValidCloseCode)).toBe(true);
    expect([0, 999, 1004, 1005, 1006, 1015, 2999, 5000].some(isValidCloseCode)).toBe(false);
  });
});

describe('FrameReader joins a frame that arrives in many reads in linear time', () => {
  const size = 512 * 1024;
  const big = clientFrame(Opcode.Text, Buffer.alloc(size, 0x61));

  it.each([1, 7, 1000])('a 512 KiB frame in %i-byte reads: bytes copied stay within 3× the frame', (step) => {
    const reader = new FrameReader(size);
    const sink = new Recorder();
    let maxHeld = 0;
    for (let off = 0; off < big.length; off += step) {
      reader.push(Buffer.from(big.subarray(off, off + step)), sink);
      maxHeld = Math.max(maxHeld, reader.heldCapacity);
    }
    expect(sink.events).toHaveLength(1);
    expect((sink.events[0] as [string, string])[1].length).toBe(size);
    // Re-concatenating everything held on every read copies ~size²/(2·step) bytes: 137 GB for
    // 1-byte reads. Doubling growth copies each byte about twice.
    expect(reader.copiedBytes).toBeLessThanOrEqual(3 * big.length);
    // And never pins more than the frame (growth stops at the size its header announced).
    expect(maxHeld).toBeLessThanOrEqual(big.length);
    expect(reader.heldBytes).toBe(0);
  });

  it('holds a partial frame in one buffer, not one object per read, and frees it when complete', () => {
    const reader = new FrameReader(size);
    const sink = new Recorder();
    reader.push(Buffer.from(big.subarray(0, 100)), sink);
    for (let off = 100; off < 5000; off += 3) reader.push(Buffer.from(big.subarray(off, off + 3)), sink);
    expect(reader.heldBytes).toBe(5000 + 2); // the loop overshoots by two bytes
    expect(reader.heldCapacity).toBeLessThanOrEqual(2 * 5002);
    reader.push(Buffer.from(big.subarray(5002)), sink);
    expect(sink.events).toHaveLength(1);
    expect(reader.heldBytes).toBe(0);
    expect(reader.heldCapacity).toBe(0);
  });

  it('whole frames in one read are parsed in place: nothing copied', () => {
    const reader = new FrameReader(size);
    const sink = new Recorder();
    reader.push(Buffer.concat([text('a'.repeat(1000)), big, text('b')]), sink);
    expect(sink.events).toHaveLength(3);
    expect(reader.copiedBytes).toBe(0);
  });

  it('fragments are joined once: many small fragments cost their bytes, not a copy per fragment', () => {
    const reader = new FrameReader(size);
    const sink = new Recorder();
    const n = 20_000;
    const parts = [clientFrame(Opcode.Text, Buffer.from('x'), { fin: false })];
    for (let i = 1; i < n - 1; i++)
      parts.push(clientFrame(Opcode.Continuation, Buffer.from('x'), { fin: false }));
    parts.push(clientFrame(Opcode.Continuation, Buffer.from('x')));
    reader.push(Buffer.concat(parts), sink);
    expect(sink.events).toEqual([['text', 'x'.repeat(n)]]);
    expect(reader.copiedBytes).toBeLessThanOrEqual(3 * n);
  });

  it('the limit can be raised between reads (small before hello, full size after)', () => {
    const reader = new FrameReader(100);
    const sink = new Recorder();
    reader.push(text('a'.repeat(100)), sink);
    reader.limit = 1000;
    reader.push(text('b'.repeat(1000)), sink);
    reader.limit = 100;
    reader.push(text('c'.repeat(101)), sink);
    expect(sink.events.map((e) => (e as unknown[])[0])).toEqual(['text', 'text', 'error']);
    expect((sink.events[2] as unknown[])[1]).toBe(1009);
  });
});
