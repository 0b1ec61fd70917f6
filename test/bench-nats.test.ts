/**
 * The NATS protocol parser of the benchmark harness (bench/lib/nats.ts): whole operations out of a
 * byte stream cut anywhere, MSG with and without a reply subject, HMSG (headers skipped), control
 * lines, and a stream that is not NATS refused instead of buffered without bound.
 */
import { expect, test } from 'vitest';
import { type NatsHandlers, parseNats } from '../bench/lib/nats.js';

function collector() {
  const seen: string[] = [];
  const h: NatsHandlers = {
    msg: (subject, reply, payload) => seen.push(`msg ${subject} ${reply ?? '-'} ${payload.toString()}`),
    ping: () => seen.push('ping'),
    pong: () => seen.push('pong'),
    err: (line) => seen.push(`err ${line}`),
  };
  return { seen, h };
}

const STREAM =
  'INFO {"server_id":"x","max_payload":1048576}\r\n+OK\r\nPING\r\n' +
  'MSG d.17 1 5\r\nhello\r\n' +
  'MSG _INBOX.a.1 1 reply.to 22\r\n{"stream":"B","seq":1}\r\n' +
  'HMSG bench 2 26 28\r\nNATS/1.0\r\nA: bcdefghij\r\n\r\nhi\r\n' +
  "PONG\r\n-ERR 'Unknown Protocol Operation'\r\n";

const EXPECTED = [
  'ping',
  'msg d.17 - hello',
  'msg _INBOX.a.1 reply.to {"stream":"B","seq":1}',
  'msg bench - hi',
  'pong',
  "err -ERR 'Unknown Protocol Operation'",
];

test('parses a whole stream in one chunk', () => {
  const { seen, h } = collector();
  expect(parseNats(Buffer.from(STREAM), h)).toBeUndefined();
  expect(seen).toEqual(EXPECTED);
});

test('gives the same operations when the stream is cut at every byte', () => {
  const bytes = Buffer.from(STREAM);
  for (let cut = 1; cut < bytes.length; cut++) {
    const { seen, h } = collector();
    const rest = parseNats(bytes.subarray(0, cut), h);
    expect(rest).not.toBeNull();
    const tail = rest ? Buffer.concat([rest, bytes.subarray(cut)]) : bytes.subarray(cut);
    expect(parseNats(tail, h), `cut at ${cut}`).toBeUndefined();
    expect(seen, `cut at ${cut}`).toEqual(EXPECTED);
  }
});

test('refuses a stream without line ends instead of buffering it without bound', () => {
  const { seen, h } = collector();
  expect(parseNats(Buffer.alloc(70 * 1024, 0x61), h)).toBeNull();
  expect(seen).toEqual([]);
});
