/**
 * Publisher over Pushwire's publisher stream (`GET /v1/publish`, subprotocol `pushwire-publish.v1`):
 * one WebSocket per connection, each text frame one `POST /v1/messages` body, one ack per message
 * after its durable commit (docs/protocol.md, "Publisher stream"). Same payloads as publisher.ts
 * (`benchPayload`: the send time rides in `data.t`) and the same {@link PublishResult}, so a
 * scenario can put a "streaming" row beside the HTTP rows.
 *
 * @example
 * const res = await streamPublish({ url: 'http://127.0.0.1:8787', apiKey, targets: deviceIds,
 *   durationMs: 10_000, rate: 0, maxInFlight: 256 });
 */
import { randomBytes } from 'node:crypto';
import { connect, type Socket } from 'node:net';
import { benchPayload, sleep } from '../lib/util.js';
import { countStatus, newPublishResult, type PublishResult } from './messages.js';
import { clientFrame, feedFrames, newFrameState, OP_CLOSE, OP_PING, OP_PONG, OP_TEXT } from './wsframe.js';

export interface StreamPublishOptions {
  /** Server base URL, `http://host:port`. */
  url: string;
  apiKey: string;
  /** Device ids; each message goes to a random one. */
  targets: string[];
  /** Stop after this many messages sent (at least one of `count` and `durationMs`). */
  count?: number;
  /** Stop sending after this long (ms). */
  durationMs?: number;
  /** Messages per second over all connections; 0 = as fast as acks come back (closed loop). */
  rate: number;
  /** Unacknowledged messages per connection (capped at the server's `ready.maxInFlight`). */
  maxInFlight: number;
  /** Streams opened (messages are spread round-robin). Default 1. */
  connections?: number;
  /** Default 100. */
  payloadBytes?: number;
  /** The `r` field of the payload (benchPayload). Default 0. */
  round?: number;
  /** Return [stream, seq] of every accepted message. */
  keepAccepted?: boolean;
  /** Stops early when it returns true (checked every few ms). */
  stopped?: () => boolean;
}

interface Ack {
  n: number;
  error?: string;
  status?: number;
  entries?: { stream: string; seq: number }[];
}

/** One publisher stream on a raw socket. */
class Stream {
  readonly sock: Socket;
  maxInFlight = 0;
  sent = 0;
  acked = 0;
  closed = false;
  closeCode = 0;
  private ready!: () => void;
  private failed!: (err: Error) => void;
  readonly opened: Promise<void>;
  private head: Buffer | undefined = Buffer.alloc(0);
  private readonly frames = newFrameState();

  constructor(
    url: URL,
    apiKey: string,
    private readonly onAck: (a: Ack) => void,
    private readonly onSpace: (s: Stream) => void,
  ) {
    this.opened = new Promise((res, rej) => {
      this.ready = res;
      this.failed = rej;
    });
    this.sock = connect({ host: url.hostname, port: Number(url.port) });
    this.sock.setNoDelay(true);
    this.sock.on('connect', () => {
      this.sock.write(
        `GET /v1/publish HTTP/1.1\r\nHost: ${url.host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
          `Sec-WebSocket-Key: ${randomBytes(16).toString('base64')}\r\n` +
          `Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: pushwire-publish.v1\r\n` +
          `Authorization: Bearer ${apiKey}\r\n\r\n`,
      );
    });
    this.sock.on('data', (d: Buffer) => this.onData(d));
    this.sock.on('error', (err) => this.failed(err));
    this.sock.on('close', () => {
      this.closed = true;
      this.failed(new Error('closed before ready'));
    });
  }

  get inFlight(): number {
    return this.sent - this.acked;
  }

  /** Sends frames (corked: one write for those of one turn). */
  send(frames: Buffer[]): void {
    if (frames.length === 1) this.sock.write(frames[0]!);
    else this.sock.write(Buffer.concat(frames));
    this.sent += frames.length;
  }

  private onData(d: Buffer): void {
    if (this.head) {
      const buf = Buffer.concat([this.head, d]);
      const end = buf.indexOf('\r\n\r\n');
      if (end < 0) {
        this.head = buf;
        return;
      }
      const status = Number(buf.toString('latin1', 9, 12));
      if (status !== 101) {
        this.failed(new Error(`upgrade refused: ${buf.toString('utf8')}`));
        this.sock.destroy();
        return;
      }
      this.head = undefined;
      d = buf.subarray(end + 4);
      if (d.length === 0) return;
    }
    const ok = feedFrames(this.frames, d, (op, payload) => {
      if (op === OP_TEXT) this.onMessage(payload.toString('utf8'));
      else if (op === OP_PING) this.sock.write(clientFrame(payload, OP_PONG));
      else if (op === OP_CLOSE) {
        this.closeCode = payload.length >= 2 ? payload.readUInt16BE(0) : 1005;
        this.sock.end(clientFrame(payload.subarray(0, 2), OP_CLOSE));
      }
    });
    if (!ok) this.sock.destroy();
  }

  private onMessage(text: string): void {
    const f = JSON.parse(text) as { t: string; maxInFlight?: number; acks?: Ack[] };
    if (f.t === 'ready') {
      this.maxInFlight = f.maxInFlight ?? 1;
      this.ready();
      return;
    }
    if (f.t !== 'acks' || !f.acks) return;
    for (const a of f.acks) this.onAck(a);
    this.acked += f.acks.length;
    this.onSpace(this);
  }
}

/** Publishes over the stream until `count` or `durationMs`, then waits (≤ 15 s) for the last acks. */
export async function streamPublish(o: StreamPublishOptions): Promise<PublishResult> {
  const res = newPublishResult();
  const url = new URL(o.url);
  const bytes = o.payloadBytes ?? 100;
  const round = o.round ?? 0;
  const count = o.count ?? Number.POSITIVE_INFINITY;
  const stopped = o.stopped ?? (() => false);
  const frame = (): Buffer => {
    const to = o.targets[Math.floor(Math.random() * o.targets.length)]!;
    return clientFrame(
      `{"to":{"device":${JSON.stringify(to)}},"data":${JSON.stringify(benchPayload(round, bytes))}}`,
    );
  };
  const onAck = (a: Ack) => {
    const key = a.error === undefined ? '202' : String(a.status ?? a.error);
    countStatus(res, key);
    if (a.error !== undefined) res.failed++;
    else {
      res.accepted++;
      if (o.keepAccepted) for (const e of a.entries ?? []) res.acceptedEntries.push([e.stream, e.seq]);
    }
  };
  let end = Number.POSITIVE_INFINITY;
  const windowOf = (s: Stream) => Math.max(1, Math.min(o.maxInFlight, s.maxInFlight));
  const more = () => res.sent < count && performance.now() < end && !stopped();
  /** Closed loop: refill a stream's window as its acks come back. */
  const refill = (s: Stream) => {
    if (o.rate !== 0 || s.closed) return;
    const out: Buffer[] = [];
    while (s.inFlight + out.length < windowOf(s) && more()) {
      out.push(frame());
      res.sent++;
    }
    if (out.length > 0) s.send(out);
  };
  const streams = Array.from(
    { length: Math.max(1, o.connections ?? 1) },
    () => new Stream(url, o.apiKey, onAck, refill),
  );
  await Promise.all(streams.map((s) => s.opened));
  const start = performance.now();
  if (o.durationMs !== undefined) end = start + o.durationMs;
  if (o.rate === 0) {
    for (const s of streams) refill(s);
    while (more() && streams.some((s) => !s.closed)) await sleep(5);
  } else {
    let rr = 0;
    while (more() && streams.some((s) => !s.closed)) {
      const due = Math.min(count, Math.floor(((performance.now() - start) * o.rate) / 1000));
      const batches = new Map<Stream, Buffer[]>();
      while (res.sent < due) {
        const s = streams[rr++ % streams.length]!;
        res.sent++;
        if (s.closed || s.inFlight + (batches.get(s)?.length ?? 0) >= windowOf(s)) {
          // Offered but not sent: the server is behind by a full window.
          countStatus(res, 'overload');
          res.failed++;
          continue;
        }
        const b = batches.get(s) ?? [];
        b.push(frame());
        batches.set(s, b);
      }
      for (const [s, b] of batches) s.send(b);
      await sleep(1);
    }
  }
  res.elapsedMs = performance.now() - start;
  const drainEnd = performance.now() + 15_000;
  while (streams.some((s) => !s.closed && s.inFlight > 0) && performance.now() < drainEnd) await sleep(5);
  res.unanswered = streams.reduce((n, s) => n + s.inFlight, 0);
  for (const s of streams) {
    if (s.closeCode) res.statuses[`close-${s.closeCode}`] = 1;
    s.sock.end(clientFrame(Buffer.from([0x03, 0xe8]), OP_CLOSE));
  }
  return res;
}
