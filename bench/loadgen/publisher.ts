/**
 * Publishers run in their own worker: Pushwire's HTTP API over pipelined keep-alive connections
 * (a minimal HTTP/1.1 client: no per-request objects beyond a queue entry), an MQTT QoS 0
 * publisher, and (in their own modules) undici's Pool and a NATS JetStream publisher. Open loop at a fixed rate, or closed loop (as fast as the server answers).
 */
import { connect, type Socket } from 'node:net';
import { connectPacket, publishPacket } from '../lib/mqtt.js';
import { benchPayload, sleep } from '../lib/util.js';
import { countStatus, newPublishResult, openLoop, type PublishCmd, type PublishResult } from './messages.js';
import { natsPublish } from './nats-publisher.js';
import { poolPublish } from './pool-publisher.js';
import { streamPublish } from './stream-publisher.js';

interface Pending {
  messages: number;
}

/** One keep-alive HTTP/1.1 connection with pipelined requests and a streaming response parser. */
class HttpPipe {
  readonly sock: Socket;
  readonly pending: Pending[] = [];
  private head = 0;
  private buf: Buffer | undefined;
  closed = false;

  constructor(
    host: string,
    port: number,
    private readonly onResponse: (status: number, body: string, req: Pending) => void,
    onClose: (pipe: HttpPipe) => void,
  ) {
    this.sock = connect({ host, port });
    this.sock.setNoDelay(true);
    this.sock.on('data', (d: Buffer) => this.onData(d));
    this.sock.on('error', () => {});
    this.sock.on('close', () => {
      this.closed = true;
      onClose(this);
    });
  }

  get outstanding(): number {
    return this.pending.length - this.head;
  }

  send(req: Buffer, p: Pending): void {
    this.pending.push(p);
    this.sock.write(req);
  }

  private onData(d: Buffer): void {
    let buf = this.buf ? Buffer.concat([this.buf, d]) : d;
    for (let guard = 0; guard < 100_000; guard++) {
      const end = buf.indexOf('\r\n\r\n');
      if (end < 0) break;
      const head = buf.toString('latin1', 0, end);
      const status = Number(head.slice(9, 12));
      const m = /\r\ncontent-length:\s*(\d+)/i.exec(head);
      const len = m ? Number(m[1]) : 0;
      if (!m && /\r\ntransfer-encoding:\s*chunked/i.test(head))
        throw new Error('chunked responses are not supported');
      if (buf.length < end + 4 + len) break;
      const body = buf.toString('utf8', end + 4, end + 4 + len);
      buf = buf.subarray(end + 4 + len);
      const req = this.pending[this.head++]!;
      if (this.head > 1024 && this.head * 2 > this.pending.length) {
        this.pending.splice(0, this.head);
        this.head = 0;
      }
      this.onResponse(status, body, req);
    }
    this.buf = buf.length ? Buffer.from(buf) : undefined;
  }
}

/** Runs one publish command; `stop()` ends it early. */
export class Publisher {
  private stopped = false;
  stop(): void {
    this.stopped = true;
  }

  run(cmd: PublishCmd): Promise<PublishResult> {
    const stopped = () => this.stopped;
    switch (cmd.mode) {
      case 'http':
        return this.http(cmd);
      case 'pool':
        return poolPublish(cmd, stopped);
      case 'stream':
        return streamPublish({
          url: `http://${cmd.host}:${cmd.port}`,
          apiKey: cmd.apiKey,
          targets: cmd.targets,
          durationMs: cmd.durationMs,
          rate: cmd.rate,
          maxInFlight: cmd.window,
          connections: cmd.connections,
          payloadBytes: cmd.payloadBytes,
          keepAccepted: cmd.keepAccepted,
          stopped,
        });
      case 'nats':
        return natsPublish(cmd, stopped);
      case 'mqtt':
        return this.mqtt(cmd);
    }
  }

  private async http(cmd: PublishCmd): Promise<PublishResult> {
    const res = newPublishResult();
    const batch = Math.max(1, cmd.batch);
    const path = batch > 1 ? '/v1/messages/batch' : '/v1/messages';
    const headers =
      `POST ${path} HTTP/1.1\r\nHost: ${cmd.host}:${cmd.port}\r\nAuthorization: Bearer ${cmd.apiKey}\r\n` +
      'Content-Type: application/json\r\nContent-Length: ';
    const one = () => {
      const to = cmd.targets[Math.floor(Math.random() * cmd.targets.length)]!;
      return `{"to":{"device":${JSON.stringify(to)}},"data":${JSON.stringify(benchPayload(0, cmd.payloadBytes))}}`;
    };
    const request = (n: number): Buffer => {
      let body: string;
      if (batch === 1) body = one();
      else {
        const items: string[] = [];
        for (let k = 0; k < n; k++) items.push(one());
        body = `{"messages":[${items.join(',')}]}`;
      }
      return Buffer.from(`${headers}${Buffer.byteLength(body)}\r\n\r\n${body}`);
    };
    const onResponse = (status: number, body: string, req: Pending) => {
      countStatus(res, String(status));
      if (status !== 202) {
        res.failed += req.messages;
        return;
      }
      if (batch === 1) {
        res.accepted++;
        if (cmd.keepAccepted) {
          const r = JSON.parse(body) as { entries: { stream: string; seq: number }[] };
          for (const e of r.entries) res.acceptedEntries.push([e.stream, e.seq]);
        }
      } else {
        const r = JSON.parse(body) as {
          results: { entries?: { stream: string; seq: number }[]; error?: string }[];
        };
        for (const item of r.results) {
          if (item.error) res.failed++;
          else {
            res.accepted++;
            if (cmd.keepAccepted)
              for (const e of item.entries ?? []) res.acceptedEntries.push([e.stream, e.seq]);
          }
        }
      }
      if (cmd.rate === 0 && !this.stopped && performance.now() < end) sendOn(pipeOf.get(req)!);
    };
    let broken = false;
    let finished = false;
    const pipes: HttpPipe[] = [];
    const pipeOf = new WeakMap<Pending, HttpPipe>();
    const onClose = (p: HttpPipe) => {
      if (finished) return;
      // The server went away (kill -9): what it did not answer is unknown, not accepted.
      res.unanswered += p.outstanding * batch;
      broken = true;
    };
    const sendOn = (pipe: HttpPipe) => {
      if (pipe.closed) return;
      const p: Pending = { messages: batch };
      pipeOf.set(p, pipe);
      res.sent += batch;
      pipe.send(request(batch), p);
    };
    for (let k = 0; k < Math.max(1, cmd.connections); k++)
      pipes.push(new HttpPipe(cmd.host, cmd.port, onResponse, onClose));
    await Promise.all(pipes.map((p) => new Promise((r) => p.sock.once('connect', r).once('error', r))));
    const start = performance.now();
    const end = start + cmd.durationMs;
    if (cmd.rate === 0) {
      for (const p of pipes) for (let w = 0; w < cmd.window; w++) sendOn(p);
      while (!this.stopped && !broken && performance.now() < end) await sleep(20);
    } else {
      let rr = 0;
      let due = 0;
      while (!this.stopped && !broken && performance.now() < end) {
        const elapsed = performance.now() - start;
        due = Math.floor((elapsed * cmd.rate) / 1000);
        while (res.sent + batch <= due) {
          const pipe = pipes[rr++ % pipes.length]!;
          if (pipe.outstanding > 5000) {
            countStatus(res, 'overload', batch);
            res.sent += batch; // counted as offered but not sent: the server is far behind
            res.failed += batch;
            continue;
          }
          sendOn(pipe);
        }
        await sleep(1);
      }
    }
    res.elapsedMs = performance.now() - start;
    // Drain: wait (bounded) for the answers to what was sent.
    const drainEnd = performance.now() + 15_000;
    while (pipes.some((p) => !p.closed && p.outstanding > 0) && performance.now() < drainEnd) await sleep(10);
    finished = true;
    res.unanswered += pipes.reduce((n, p) => n + (p.closed ? 0 : p.outstanding * batch), 0);
    for (const p of pipes) p.sock.destroy();
    return res;
  }

  private async mqtt(cmd: PublishCmd): Promise<PublishResult> {
    const res = newPublishResult();
    const sock = connect({ host: cmd.host, port: cmd.port });
    sock.setNoDelay(true);
    let closed = false;
    sock.on('error', () => {});
    sock.on('close', () => {
      closed = true;
    });
    await new Promise<void>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error('mqtt publisher: no CONNACK')), 5000);
      sock.once('connect', () => sock.write(connectPacket(`pub${process.pid}`, 600)));
      sock.once('data', () => {
        clearTimeout(t);
        resolve();
      });
    });
    const publishOne = (): boolean => {
      const topic = cmd.targets[Math.floor(Math.random() * cmd.targets.length)]!;
      res.sent++;
      res.accepted++;
      return sock.write(publishPacket(topic, JSON.stringify(benchPayload(0, cmd.payloadBytes))));
    };
    const start = performance.now();
    const end = start + cmd.durationMs;
    if (cmd.rate === 0) {
      while (!this.stopped && !closed && performance.now() < end) {
        let room = true;
        for (let k = 0; k < 256 && room; k++) room = publishOne();
        if (!room) await Promise.race([new Promise((r) => sock.once('drain', r)), sleep(100)]);
        else await new Promise((r) => setImmediate(r));
      }
    } else {
      await openLoop(cmd.rate, start, () => !this.stopped && !closed && performance.now() < end, publishOne);
    }
    res.elapsedMs = performance.now() - start;
    const flushed = new Promise<void>((r) =>
      sock.writableLength === 0 ? r() : sock.once('drain', () => r()),
    );
    await Promise.race([flushed, sleep(10_000)]);
    sock.end();
    return res;
  }
}
