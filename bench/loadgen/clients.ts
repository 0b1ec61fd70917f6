/**
 * The connection engine of one load-generator worker: many raw TCP sockets, each speaking one of
 * Pushwire, plain WebSocket, Socket.IO (engine.io v4 over WebSocket), MQTT 3.1.1 or NATS (core
 * subscriptions: the device's subject `d.<id>` and the broadcast topic). One shared
 * ticker drives connects, handshake deadlines, heartbeats and batched acks: no timer per socket.
 *
 *   queued ──connect──▶ handshake ──(101 / CONNACK, hello→welcome, "40", SUBACK, PONG)──▶ ready
 *     ▲                     │ timeout / close                                         │ close
 *     └──── backoff (full jitter) or retryAfter ◀───────────────────────────────────┘
 */
import { connect, type Socket } from 'node:net';
import { connectPacket, PINGREQ_PACKET, parsePackets, publishPayload, subscribePacket } from '../lib/mqtt.js';
import { NATS_PING, NATS_PONG, natsConnect, parseNats } from '../lib/nats.js';
import { wallMs } from '../lib/util.js';
import type { ClientSpec, OpenCmd, RoundStat, WorkerStats } from './messages.js';
import {
  clientFrame,
  type FrameState,
  feedFrames,
  newFrameState,
  OP_CLOSE,
  OP_PING,
  OP_PONG,
  OP_TEXT,
  upgradeRequest,
} from './wsframe.js';

const QUEUED = 0;
const CONNECTING = 1;
const READY = 2;
const WAITING = 3; // waiting for a reconnect
const DONE = 4;

interface Conn {
  i: number;
  spec: ClientSpec;
  sock: Socket | undefined;
  phase: number;
  /** Upgrade response bytes until the blank line. */
  http: string | undefined;
  fs: FrameState;
  /** Unparsed bytes of an MQTT or NATS stream. */
  mqttRest: Buffer | undefined;
  startedAt: number;
  lastOut: number;
  attempt: number;
  retryAfter: number;
  cursors: Map<string, number> | undefined;
  ackDirty: Map<string, number> | undefined;
  /** Topic acks waiting for the next ping, device ack or deadline (as the SDK's topicAckDelay). */
  topicAcks: Map<string, number> | undefined;
  /** Topic messages behind `topicAcks`, and when they go alone at the latest (0: none waiting). */
  topicWaiting: number;
  topicDue: number;
  seqs: number[] | undefined;
  epochReady: boolean;
  /** Source-port collisions so far (each moves to another port). */
  portShift: number;
  addrError: boolean;
}

/**
 * Explicit source ports: 41,000 per source address. Letting the kernel choose costs O(ports in
 * use) per connect past ~14,000 sockets to one server port (Linux prefers even ports for
 * connect()), and bind() to port 0 is worse; an explicit (address, port) is one hash lookup.
 * libuv sets SO_REUSEADDR, and loopback allows TIME_WAIT reuse, so leftovers of earlier runs do
 * not block a pair; a pair still in use gets another port on the next try.
 */
const PORT_BASE = 20_000;
const PORT_SPAN = 41_000;

const PING_P = clientFrame('p');
const EIO_PONG = clientFrame('3');
const EIO_CONNECT = clientFrame('40');

/** Growable sample buffer. */
class Samples {
  private buf = new Float64Array(4096);
  length = 0;
  push(x: number): void {
    if (this.length === this.buf.length) {
      if (this.length >= 20_000_000) return; // bounded: ~160 MB
      const next = new Float64Array(this.buf.length * 2);
      next.set(this.buf);
      this.buf = next;
    }
    this.buf[this.length++] = x;
  }
  take(): Float64Array {
    const out = this.buf.slice(0, this.length);
    this.length = 0;
    return out;
  }
}

export class ClientEngine {
  private cmd: OpenCmd | undefined;
  private conns: Conn[] = [];
  private queue: Conn[] = [];
  private qHead = 0;
  private readonly connecting = new Set<Conn>();
  private readonly dirty = new Set<Conn>();
  /** Connections with topic acks waiting (the SDK's lazy topic acks). */
  private readonly topicDirty = new Set<Conn>();
  private ticker: NodeJS.Timeout | undefined;
  private lastAck = 0;
  private tokens = 0;
  private lastRefill = 0;
  private stopping = false;
  private epochOn = false;
  private closedIn = 0;
  private closedOut = 0;
  private roundReport: (() => void) | undefined;
  readonly latencies = new Samples();
  readonly s: Omit<WorkerStats, 'bytesIn' | 'bytesOut' | 'target'> = ClientEngine.zero();

  constructor(private readonly onRoundDone: () => void) {}

  private static zero(): Omit<WorkerStats, 'bytesIn' | 'bytesOut' | 'target'> {
    return {
      ready: 0,
      connecting: 0,
      opened: 0,
      failed: 0,
      dropped: 0,
      rateLimited: 0,
      errors: {},
      received: 0,
      dups: 0,
      hbOut: 0,
      hbIn: 0,
      rounds: {},
      epochReady: 0,
      epochLastReadyAt: 0,
      lastRecvAt: 0,
    };
  }

  open(cmd: OpenCmd): void {
    this.cmd = cmd;
    this.stopping = false;
    Object.assign(this.s, ClientEngine.zero());
    this.closedIn = 0;
    this.closedOut = 0;
    this.epochOn = false;
    this.latencies.take();
    this.conns = cmd.clients.map((spec, i) => ({
      i,
      spec,
      sock: undefined,
      phase: QUEUED,
      http: undefined,
      fs: newFrameState(),
      mqttRest: undefined,
      startedAt: 0,
      lastOut: 0,
      attempt: 0,
      retryAfter: 0,
      cursors: cmd.proto === 'pushwire' ? new Map() : undefined,
      ackDirty: undefined,
      topicAcks: undefined,
      topicWaiting: 0,
      topicDue: 0,
      seqs: cmd.trackSeqs ? [] : undefined,
      epochReady: false,
      portShift: 0,
      addrError: false,
    }));
    this.queue = [...this.conns];
    this.qHead = 0;
    this.tokens = 0;
    this.lastRefill = performance.now();
    const hbMs = cmd.hb * 1000;
    const tickMs = Math.max(5, Math.min(50, hbMs / 8));
    clearInterval(this.ticker);
    this.ticker = setInterval(() => this.tick(), tickMs);
    this.pump();
  }

  stats(): WorkerStats {
    let bytesIn = this.closedIn;
    let bytesOut = this.closedOut;
    for (const c of this.conns) {
      if (c.sock) {
        bytesIn += c.sock.bytesRead;
        bytesOut += c.sock.bytesWritten;
      }
    }
    return { ...this.s, connecting: this.connecting.size, target: this.conns.length, bytesIn, bytesOut };
  }

  reset(): void {
    this.s.received = 0;
    this.s.dups = 0;
    this.s.rounds = {};
    this.s.lastRecvAt = 0;
    this.latencies.take();
    for (const c of this.conns) if (c.seqs) c.seqs.length = 0;
  }

  /** Changes the number of handshakes in flight (e.g. unbounded for a reconnect storm). */
  tune(concurrency: number): void {
    if (this.cmd) this.cmd = { ...this.cmd, concurrency: Math.max(1, concurrency) };
    this.pump();
  }

  /** From now on, count sessions that become ready (each once). */
  epoch(): void {
    this.epochOn = true;
    this.s.epochReady = 0;
    this.s.epochLastReadyAt = 0;
    for (const c of this.conns) c.epochReady = false;
  }

  seqs(): [string, number[]][] {
    return this.conns.filter((c) => c.seqs && c.seqs.length > 0).map((c) => [c.spec.id, c.seqs!]);
  }

  /** Closes every socket and stops reconnecting; resolves when all are closed (bounded). */
  async closeAll(): Promise<void> {
    this.stopping = true;
    this.queue = [];
    this.qHead = 0;
    for (const c of this.conns) {
      c.phase = DONE;
      c.sock?.destroy();
    }
    const end = Date.now() + 5000;
    while (this.conns.some((c) => c.sock) && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
    clearInterval(this.ticker);
    this.ticker = undefined;
    this.dirty.clear();
    this.topicDirty.clear();
    this.connecting.clear();
    this.s.ready = 0;
  }

  // ── connect scheduling ───────────────────────────────────────────────────────────────────────

  private pump(): void {
    const cmd = this.cmd;
    if (!cmd || this.stopping) return;
    if (cmd.rate > 0) {
      const now = performance.now();
      this.tokens = Math.min(cmd.rate, this.tokens + ((now - this.lastRefill) * cmd.rate) / 1000);
      this.lastRefill = now;
    }
    let started = 0;
    while (this.qHead < this.queue.length && this.connecting.size < cmd.concurrency && started < 2000) {
      if (cmd.rate > 0) {
        if (this.tokens < 1) break;
        this.tokens--;
      }
      const c = this.queue[this.qHead++]!;
      started++;
      if (c.phase === QUEUED) this.start(c);
    }
    if (this.qHead > 4096 && this.qHead * 2 > this.queue.length) {
      this.queue = this.queue.slice(this.qHead);
      this.qHead = 0;
    }
  }

  private start(c: Conn): void {
    const cmd = this.cmd!;
    c.phase = CONNECTING;
    c.startedAt = performance.now();
    c.http = cmd.proto === 'mqtt' || cmd.proto === 'nats' ? undefined : '';
    c.fs = newFrameState();
    c.mqttRest = undefined;
    this.connecting.add(c);
    const a = cmd.localAddresses.length;
    const g = cmd.indexOffset + c.i * cmd.indexStride;
    const local =
      a > 0
        ? {
            localAddress: cmd.localAddresses[g % a]!,
            localPort: PORT_BASE + ((Math.floor(g / a) + c.portShift * 4099) % PORT_SPAN),
          }
        : {};
    c.addrError = false;
    const port = c.spec.port ?? cmd.port;
    const sock = connect({ host: cmd.host, port, ...local });
    c.sock = sock;
    sock.setNoDelay(true);
    sock.on('connect', () => {
      if (cmd.proto === 'mqtt') this.write(c, connectPacket(`b${c.spec.id}`, cmd.hb));
      else if (cmd.proto === 'nats') {
        const sub = cmd.topic ? `SUB ${cmd.topic} 2\r\n` : '';
        this.write(c, Buffer.from(`${natsConnect(`b${c.spec.id}`)}SUB d.${c.spec.id} 1\r\n${sub}PING\r\n`));
      } else {
        const proto = cmd.proto === 'pushwire' ? 'pushwire.v1' : undefined;
        // `{id}` in the path names the client (a server that routes by id, e.g. the Fastify floor).
        const path = cmd.path.replace('{id}', encodeURIComponent(c.spec.id));
        this.write(c, Buffer.from(upgradeRequest(`${cmd.host}:${port}`, path, proto)));
      }
    });
    sock.on('data', (d: Buffer) => this.onData(c, d));
    sock.on('error', (e: NodeJS.ErrnoException) => {
      this.count(e.code ?? 'socket-error');
      if (e.code === 'EADDRINUSE' || e.code === 'EADDRNOTAVAIL') c.addrError = true;
    });
    sock.on('close', () => this.onClose(c, sock));
  }

  private onClose(c: Conn, sock: Socket): void {
    this.closedIn += sock.bytesRead;
    this.closedOut += sock.bytesWritten;
    if (c.sock !== sock) return;
    c.sock = undefined;
    this.connecting.delete(c);
    this.dirty.delete(c);
    this.dropTopicAcks(c);
    if (c.phase === READY) {
      this.s.ready--;
      this.s.dropped++;
    } else if (c.phase === CONNECTING) this.s.failed++;
    if (c.addrError && c.portShift < 8 && !this.stopping && c.phase !== DONE) {
      // The source pair was taken: try another port at once (not a server failure).
      c.portShift++;
      c.phase = QUEUED;
      this.queue.push(c);
      this.pump();
      return;
    }
    const policy = this.cmd?.reconnect;
    if (this.stopping || !policy || c.phase === DONE) {
      c.phase = DONE;
      this.pump();
      return;
    }
    c.phase = WAITING;
    const backoff = Math.random() * Math.min(policy.maxMs, policy.initialMs * 2 ** c.attempt);
    const delay = c.retryAfter > 0 ? c.retryAfter : backoff;
    c.attempt = Math.min(c.attempt + 1, 30);
    c.retryAfter = 0;
    setTimeout(() => {
      if (this.stopping || c.phase !== WAITING) return;
      c.phase = QUEUED;
      this.queue.push(c);
      this.pump();
    }, delay).unref();
    this.pump();
  }

  private ready(c: Conn): void {
    if (c.phase !== CONNECTING) return;
    c.phase = READY;
    c.attempt = 0;
    this.connecting.delete(c);
    this.s.ready++;
    this.s.opened++;
    if (this.epochOn && !c.epochReady) {
      c.epochReady = true;
      this.s.epochReady++;
      this.s.epochLastReadyAt = wallMs();
    }
    this.pump();
  }

  private write(c: Conn, b: Buffer): void {
    c.lastOut = performance.now();
    c.sock?.write(b);
  }

  private count(code: string): void {
    this.s.errors[code] = (this.s.errors[code] ?? 0) + 1;
  }

  // ── the one ticker: connects, handshake deadlines, heartbeats, acks ──────────────────────────

  private tick(): void {
    const cmd = this.cmd;
    if (!cmd) return;
    this.pump();
    const now = performance.now();
    for (const c of this.connecting) {
      if (now - c.startedAt > cmd.handshakeTimeoutMs) {
        this.count('handshake-timeout');
        c.sock?.destroy();
      }
    }
    if (cmd.proto === 'pushwire' && now - this.lastAck >= cmd.ackDelayMs) {
      this.lastAck = now;
      for (const c of this.dirty) this.flushAck(c);
      this.dirty.clear();
    }
    for (const c of this.topicDirty) if (now >= c.topicDue) this.flushAck(c);
    if (cmd.proto === 'pushwire' || cmd.proto === 'mqtt' || cmd.proto === 'nats') {
      const hbMs = cmd.hb * 1000;
      const frame = cmd.proto === 'mqtt' ? PINGREQ_PACKET : cmd.proto === 'nats' ? NATS_PING : PING_P;
      for (const c of this.conns) {
        if (c.phase === READY && now - c.lastOut >= hbMs) {
          // Waiting topic acks ride on the ping, as the SDK sends them.
          const acks = c.topicAcks?.size ? this.takeAcks(c) : undefined;
          this.write(c, acks ? clientFrame(JSON.stringify({ t: 'ping', acks })) : frame);
          this.s.hbOut++;
        }
      }
    }
  }

  private flushAck(c: Conn): void {
    if (c.phase !== READY) return;
    const acks = this.takeAcks(c);
    if (acks) this.write(c, clientFrame(JSON.stringify({ t: 'ack', acks })));
  }

  /** Device acks and any waiting topic acks (which ride along), or undefined when none wait. */
  private takeAcks(c: Conn): Record<string, number> | undefined {
    let acks: Record<string, number> | undefined;
    for (const m of [c.ackDirty, c.topicAcks]) {
      if (!m || m.size === 0) continue;
      acks ??= {};
      for (const [k, v] of m) acks[k] = v;
    }
    c.ackDirty?.clear();
    this.dropTopicAcks(c);
    return acks;
  }

  private dropTopicAcks(c: Conn): void {
    c.topicAcks?.clear();
    c.topicWaiting = 0;
    c.topicDue = 0;
    this.topicDirty.delete(c);
  }

  // ── inbound ──────────────────────────────────────────────────────────────────────────────────

  private onData(c: Conn, d: Buffer): void {
    const cmd = this.cmd!;
    if (cmd.proto === 'mqtt') return this.onMqtt(c, d);
    if (cmd.proto === 'nats') return this.onNats(c, d);
    if (c.http !== undefined) {
      c.http += d.toString('latin1');
      const end = c.http.indexOf('\r\n\r\n');
      if (end < 0) {
        if (c.http.length > 16_384) c.sock?.destroy();
        return;
      }
      const status = c.http.slice(9, 12);
      const rest = Buffer.from(c.http.slice(end + 4), 'latin1');
      c.http = undefined;
      if (status !== '101') {
        this.count(`http-${status}`);
        c.sock?.destroy();
        return;
      }
      if (cmd.proto === 'pushwire') {
        const hello: Record<string, unknown> = {
          t: 'hello',
          v: 1,
          device: c.spec.id,
          token: c.spec.token,
          hb: cmd.hb,
        };
        if (c.cursors && c.cursors.size > 0) hello.cursors = Object.fromEntries(c.cursors);
        this.write(c, clientFrame(JSON.stringify(hello)));
      } else if (cmd.proto === 'ws') this.ready(c);
      if (rest.length === 0) return;
      d = rest;
    }
    const ok = feedFrames(c.fs, d, (op, payload) => this.onFrame(c, op, payload));
    if (!ok) {
      this.count('bad-frame');
      c.sock?.destroy();
    }
  }

  private onFrame(c: Conn, op: number, payload: Buffer): void {
    if (op === OP_TEXT) {
      const text = payload.toString('utf8');
      const proto = this.cmd!.proto;
      if (proto === 'pushwire') this.onPushwire(c, text);
      else if (proto === 'socketio') this.onEngineIo(c, text);
      else this.onPayload(parse(text));
    } else if (op === OP_PING) {
      this.s.hbIn++;
      this.s.hbOut++;
      this.write(c, clientFrame(Buffer.from(payload), OP_PONG));
    } else if (op === OP_CLOSE) {
      c.sock?.end(clientFrame(Buffer.from(payload.subarray(0, 2)), OP_CLOSE));
    }
  }

  private onPushwire(c: Conn, text: string): void {
    if (text === 'P') {
      this.s.hbIn++;
      return;
    }
    const f = (quickMsg(text) ?? parse(text)) as Record<string, unknown> | undefined;
    if (!f) return this.count('bad-json');
    switch (f.t) {
      case 'msg': {
        const stream = f.stream as string;
        const seq = f.seq as number;
        const cur = c.cursors!.get(stream) ?? 0;
        if (seq <= cur) {
          this.s.dups++;
          return;
        }
        c.cursors!.set(stream, seq);
        if (c.seqs && stream.charCodeAt(0) === 100 /* d */) c.seqs.push(seq);
        const cmd = this.cmd!;
        if (stream.charCodeAt(0) === 116 /* t */ && cmd.topicAckDelayMs > cmd.ackDelayMs) {
          // Lazy topic acks like the SDK: next ping or device ack, alone at a deadline in the
          // second half of topicAckDelay, at once when 1,000 wait.
          c.topicAcks ??= new Map();
          c.topicAcks.set(stream, seq);
          if (c.topicDue === 0) {
            c.topicDue = performance.now() + cmd.topicAckDelayMs * (0.5 + 0.5 * Math.random());
            this.topicDirty.add(c);
          }
          if (++c.topicWaiting >= 1000) c.topicDue = 0;
        } else {
          c.ackDirty ??= new Map();
          c.ackDirty.set(stream, seq);
          this.dirty.add(c);
        }
        return this.onPayload(f.data);
      }
      case 'welcome': {
        const topic = this.cmd!.topic;
        const topics = (f.topics as string[] | undefined) ?? [];
        if (topic && !topics.includes(topic))
          this.write(c, clientFrame(JSON.stringify({ t: 'sub', topic, ref: 1 })));
        else this.ready(c);
        return;
      }
      case 'subbed':
        return this.ready(c);
      case 'error': {
        this.count(String(f.code));
        if (f.code === 'RATE_LIMITED') {
          this.s.rateLimited++;
          c.retryAfter = Math.max(1, Number(f.retryAfter) || 1000);
        }
        return;
      }
      case 'goaway':
        c.retryAfter = Math.max(1, Number(f.reconnectAfter) || 1);
        return;
    }
  }

  private onEngineIo(c: Conn, text: string): void {
    const k = text.charCodeAt(0);
    if (k === 50 /* "2" ping */) {
      this.s.hbIn++;
      this.s.hbOut++;
      this.write(c, EIO_PONG);
    } else if (k === 52 /* "4" message */) {
      const sub = text.charCodeAt(1);
      if (sub === 50 /* "42" event */) {
        const ev = parse(text.slice(2)) as unknown[] | undefined;
        this.onPayload(ev?.[1]);
      } else if (sub === 48 /* "40" connected */) this.ready(c);
    } else if (k === 48 /* "0" open */) this.write(c, EIO_CONNECT);
  }

  private onMqtt(c: Conn, d: Buffer): void {
    const buf = c.mqttRest ? Buffer.concat([c.mqttRest, d]) : d;
    const { packets, rest } = parsePackets(buf);
    c.mqttRest = rest;
    for (const p of packets) {
      switch (p.type) {
        case 3: {
          const { payload } = publishPayload(p);
          this.onPayload(parse(payload.toString('utf8')));
          break;
        }
        case 2:
          if (p.body[1] !== 0) {
            this.count(`connack-${p.body[1]}`);
            c.sock?.destroy();
          } else this.write(c, subscribePacket(1, [this.cmd!.topic, `d/${c.spec.id}`]));
          break;
        case 9:
          this.ready(c);
          break;
        case 13:
          this.s.hbIn++;
          break;
      }
    }
  }

  private onNats(c: Conn, d: Buffer): void {
    const rest = parseNats(c.mqttRest ? Buffer.concat([c.mqttRest, d]) : d, {
      msg: (_subject, _reply, payload) => this.onPayload(parse(payload.toString('utf8'))),
      ping: () => {
        this.s.hbIn++;
        this.s.hbOut++;
        this.write(c, NATS_PONG);
      },
      pong: () => {
        if (c.phase === CONNECTING) this.ready(c);
        else this.s.hbIn++;
      },
      err: (line) => this.count(line.slice(0, 40)),
    });
    if (rest === null) {
      this.count('bad-nats');
      c.sock?.destroy();
    } else c.mqttRest = rest;
  }

  /** Counts a delivered message: its round (broadcast) and publish→deliver latency. */
  private onPayload(data: unknown): void {
    const now = wallMs();
    this.s.received++;
    this.s.lastRecvAt = now;
    if (!data || typeof data !== 'object') return;
    const { r, t } = data as { r?: unknown; t?: unknown };
    if (typeof t === 'number') this.latencies.push(now - t);
    if (typeof r === 'number' && r > 0) {
      let st: RoundStat | undefined = this.s.rounds[r];
      if (!st) {
        st = { count: 0, first: now, last: now };
        this.s.rounds[r] = st;
      }
      st.count++;
      st.last = now;
      if (st.count === this.s.ready && !this.roundReport) {
        this.roundReport = this.onRoundDone;
        setImmediate(() => {
          this.roundReport = undefined;
          this.onRoundDone();
        });
      }
    }
  }
}

/**
 * What the load generator checks of a msg frame (stream and seq: duplicates, loss, acks) and its
 * data, parsed like every peer's payload, without parsing the rest of the frame: one core reads
 * for 19,000 clients, and a full parse of Pushwire's larger frame made the broadcast's last receipt
 * measure this process rather than the server. The server writes
 * `{"t":"msg","id":…,"stream":…,"seq":…,…,"data":{…}}`; any other shape (a field after data) fails
 * the data parse and falls back to a full parse.
 */
export function quickMsg(text: string): { t: 'msg'; stream: string; seq: number; data: unknown } | undefined {
  if (!text.startsWith('{"t":"msg",')) return undefined;
  const s = text.indexOf('"stream":"');
  const se = s < 0 ? -1 : text.indexOf('"', s + 10);
  const q = se < 0 ? -1 : text.indexOf('"seq":', se);
  const d = q < 0 ? -1 : text.indexOf(',"data":{', q);
  if (d < 0 || !text.endsWith('}}')) return undefined;
  const seq = Number.parseInt(text.slice(q + 6, q + 26), 10); // stops at the comma
  const data = parse(text.slice(d + 8, -1));
  if (!Number.isSafeInteger(seq) || data === undefined) return undefined;
  return { t: 'msg', stream: text.slice(s + 10, se), seq, data };
}

function parse(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}
