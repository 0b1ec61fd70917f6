import {
  type ClientFrame,
  type Cursors,
  decodeClientFrame,
  deviceStream,
  encodeFrame,
  type HelloFrame,
  type MessageFrame,
  type ServerFrame,
  topicStream,
} from '@pushwire/protocol';
import type { Connection, Transport, TransportHandlers } from '../transport/types.js';
import type { FakeClock } from './fake-clock.js';

/** Settings of the scripted server. Times in ms unless stated. */
export interface FakeServerOptions {
  /** One-way latency of every frame and event. Default 5. */
  latency?: number;
  /** A NAT on the path forgets a connection silent this long: traffic then vanishes, no FIN, no RST. */
  natIdleTimeout?: number;
  /** Bounds (s) the server clamps declared heartbeats to. Default [1, 3600]. */
  hbBounds?: [number, number];
  /** Heartbeat (s) when hello declares none. Default 60. */
  defaultHb?: number;
  /** Grace (s) after `hb` before the server closes a silent session with 4010. Default 15. */
  idleGrace?: number;
  /** Reply to hello with welcome + replay. Default true. */
  autoWelcome?: boolean;
  /** Reply to pings. Default true. */
  autoPong?: boolean;
  /** A sloppy server that replays every stream from the start on each hello. */
  replayIgnoresCursors?: boolean;
  /** Accepted devices (id → token); any credentials pass when absent. */
  devices?: Record<string, string>;
  /** Refuse connections at the socket level (onError + onClose 1006) while this returns true. */
  refuse?: () => boolean;
  /** Custom hello handling; return true when handled (no welcome then). */
  onHello?: (socket: FakeSocket, hello: HelloFrame) => boolean;
  /** Custom handling of any other frame; return true when handled. */
  onFrame?: (socket: FakeSocket, frame: ClientFrame) => boolean;
}

/** One entry of the server's log (time in virtual ms). */
export interface ServerEvent {
  at: number;
  socket: number;
  kind: 'connect' | 'frame' | 'close-by-client' | 'close-by-server';
  frame?: ClientFrame;
  /** The frame's wire text. */
  text?: string;
}

/**
 * A scripted Pushwire server behind an in-memory transport, for unit tests in virtual time. It
 * decodes client frames with the strict server-side codec (a frame the real server would refuse
 * throws), keeps durable streams, replays after cursors and records acks.
 */
export class FakeServer {
  readonly clock: FakeClock;
  readonly o: Required<
    Omit<FakeServerOptions, 'natIdleTimeout' | 'devices' | 'refuse' | 'onHello' | 'onFrame'>
  > &
    FakeServerOptions;
  readonly sockets: FakeSocket[] = [];
  readonly log: ServerEvent[] = [];
  readonly streams = new Map<string, MessageFrame[]>();
  readonly acked = new Map<string, number>();
  readonly subscriptions = new Map<string, Set<string>>();
  #ids = 0;

  constructor(clock: FakeClock, options: FakeServerOptions = {}) {
    this.clock = clock;
    this.o = {
      latency: 5,
      hbBounds: [1, 3600],
      defaultHb: 60,
      idleGrace: 15,
      autoWelcome: true,
      autoPong: true,
      replayIgnoresCursors: false,
      ...options,
    };
  }

  /** The transport to give the client. */
  get transport(): Transport {
    return {
      connect: (url, protocol, handlers) => {
        const socket = new FakeSocket(this, this.sockets.length + 1, url, protocol, handlers);
        this.sockets.push(socket);
        this.log.push({ at: this.clock.now(), socket: socket.id, kind: 'connect' });
        socket.start(this.o.refuse?.() ?? false);
        return socket;
      },
    };
  }

  /** The newest socket. */
  get last(): FakeSocket {
    const s = this.sockets[this.sockets.length - 1]; // not .at(): the engine test runs this on Hermes 0.12
    if (!s) throw new Error('no connection yet');
    return s;
  }

  /** Client frames received (across sockets), optionally of one kind. */
  frames<T extends ClientFrame['t']>(t?: T): Extract<ClientFrame, { t: T }>[] {
    return this.log
      .filter((e) => e.frame !== undefined && (t === undefined || e.frame.t === t))
      .map((e) => e.frame as Extract<ClientFrame, { t: T }>);
  }

  /** Appends a message to a stream (durably) and pushes it to the live session entitled to it. */
  publish(stream: string, fields: Partial<Omit<MessageFrame, 't' | 'stream' | 'seq'>> = {}): MessageFrame {
    const log = this.streams.get(stream) ?? [];
    this.streams.set(stream, log);
    const msg: MessageFrame = {
      t: 'msg',
      id: `m${++this.#ids}`,
      ts: this.clock.now(),
      ...fields,
      stream,
      seq: log.length + 1,
    };
    log.push(msg);
    for (const s of this.sockets) if (s.welcomed && s.entitled(stream)) s.push(msg);
    return msg;
  }

  /** Highest seq of a stream (0 when empty). */
  seqOf(stream: string): number {
    return this.streams.get(stream)?.length ?? 0;
  }

  handle(socket: FakeSocket, frame: ClientFrame, text: string): void {
    this.log.push({ at: this.clock.now(), socket: socket.id, kind: 'frame', frame, text });
    if (frame.t !== 'hello' && this.o.onFrame?.(socket, frame)) return;
    switch (frame.t) {
      case 'hello':
        return this.#hello(socket, frame);
      case 'ping':
        if (frame.hb !== undefined) socket.hb = this.clampHb(frame.hb);
        if (frame.acks) this.#ack(frame.acks);
        if (this.o.autoPong) socket.push({ t: 'pong' });
        return;
      case 'ack':
        return this.#ack(frame.acks);
      case 'sub': {
        this.#subs(socket.device).add(frame.topic);
        const seq = this.seqOf(topicStream(frame.topic));
        socket.push({
          t: 'subbed',
          topic: frame.topic,
          seq,
          ...(frame.ref !== undefined && { ref: frame.ref }),
        });
        return;
      }
      case 'unsub':
        this.#subs(socket.device).delete(frame.topic);
        socket.push({
          t: 'unsubbed',
          topic: frame.topic,
          ...(frame.ref !== undefined && { ref: frame.ref }),
        });
        return;
    }
  }

  clampHb(hb: number): number {
    const [min, max] = this.o.hbBounds;
    return Math.min(max, Math.max(min, hb));
  }

  #hello(socket: FakeSocket, hello: HelloFrame): void {
    socket.hello = hello;
    socket.device = hello.device;
    if (this.o.onHello?.(socket, hello)) return;
    const expected = this.o.devices?.[hello.device];
    if (this.o.devices && expected !== hello.token) {
      socket.push({
        t: 'error',
        code: 'UNAUTHORIZED',
        message: 'unknown device or wrong token',
        fatal: true,
      });
      socket.serverClose(4001, 'unauthorized');
      return;
    }
    if (!this.o.autoWelcome) return;
    socket.hb = this.clampHb(hello.hb ?? this.o.defaultHb);
    const topics = [...this.#subs(hello.device)];
    socket.push({
      t: 'welcome',
      v: 1,
      session: `s${socket.id}`,
      hb: socket.hb,
      idle: socket.hb + this.o.idleGrace,
      maxPayload: 4096,
      topics,
    });
    socket.welcomed = true;
    socket.armIdle();
    for (const stream of [deviceStream(hello.device), ...topics.map(topicStream)]) {
      const cursor = this.o.replayIgnoresCursors
        ? 0
        : (hello.cursors?.[stream] ?? this.acked.get(stream) ?? 0);
      for (const m of this.streams.get(stream) ?? []) if (m.seq > cursor) socket.push(m);
    }
  }

  #ack(acks: Cursors): void {
    for (const [stream, seq] of Object.entries(acks)) {
      this.acked.set(stream, Math.max(this.acked.get(stream) ?? 0, seq));
    }
  }

  #subs(device: string): Set<string> {
    let set = this.subscriptions.get(device);
    if (!set) {
      set = new Set();
      this.subscriptions.set(device, set);
    }
    return set;
  }
}

/** The server's end of one connection, also the client's {@link Connection}. */
export class FakeSocket implements Connection {
  readonly id: number;
  readonly url: string;
  readonly protocol: string;
  state: 'connecting' | 'open' | 'closed' = 'connecting';
  /** The NAT forgot this connection: nothing gets through any more, silently. */
  blackholed = false;
  welcomed = false;
  hello: HelloFrame | undefined;
  device = '';
  /** Heartbeat (s) the server holds the client to. */
  hb = 60;
  closeCode: number | undefined;
  readonly #server: FakeServer;
  readonly #h: TransportHandlers;
  #lastActivity: number;
  #lastClientFrame: number;
  #idleTimer: unknown;
  #batch: { due: number; texts: string[] } | undefined;

  constructor(server: FakeServer, id: number, url: string, protocol: string, handlers: TransportHandlers) {
    this.#server = server;
    this.id = id;
    this.url = url;
    this.protocol = protocol;
    this.#h = handlers;
    this.#lastActivity = this.#lastClientFrame = server.clock.now();
  }

  get #clock(): FakeClock {
    return this.#server.clock;
  }

  start(refuse: boolean): void {
    this.#later(() => {
      if (this.state !== 'connecting') return;
      if (refuse) {
        this.state = 'closed';
        this.#h.onError(new Error('connection refused'));
        this.#h.onClose(1006, '');
        return;
      }
      this.state = 'open';
      this.#lastActivity = this.#clock.now();
      this.#h.onOpen();
    });
  }

  entitled(stream: string): boolean {
    if (stream === deviceStream(this.device)) return true;
    const subs = this.#server.subscriptions.get(this.device);
    return stream.startsWith('t:') && subs?.has(stream.slice(2)) === true;
  }

  // ── client side (Connection) ────────────────────────────────────────────────────────────────

  send(text: string): void {
    if (this.state === 'connecting') throw new Error('InvalidStateError: still connecting');
    if (this.state === 'closed' || !this.#natAlive()) return;
    this.#lastActivity = this.#lastClientFrame = this.#clock.now();
    const frame = decodeClientFrame(text); // the real server's strict decoder: a bad frame fails the test
    this.#later(() => this.#server.handle(this, frame, text)); // sent before a close: still arrives
  }

  close(code = 1005, reason = ''): void {
    if (this.state === 'closed') return;
    this.state = 'closed';
    this.closeCode = code;
    this.#clock.clearTimeout(this.#idleTimer);
    this.#server.log.push({ at: this.#clock.now(), socket: this.id, kind: 'close-by-client' });
    this.#later(() => this.#h.onClose(code, reason));
  }

  // ── server side ─────────────────────────────────────────────────────────────────────────────

  /** Sends a frame (or raw text) to the client; false when it cannot get through. */
  push(frame: ServerFrame | string): boolean {
    if (this.state !== 'open' || !this.#natAlive()) return false;
    this.#lastActivity = this.#clock.now();
    const text = typeof frame === 'string' ? frame : encodeFrame(frame);
    // Frames pushed in the same tick arrive together, like one TCP read: delivered back to back.
    const due = this.#clock.now() + this.#server.o.latency;
    if (this.#batch?.due === due) {
      this.#batch.texts.push(text);
      return true;
    }
    const batch = { due, texts: [text] };
    this.#batch = batch;
    this.#later(() => {
      if (this.#batch === batch) this.#batch = undefined;
      for (const t of batch.texts) this.#h.onMessage(t);
    });
    return true;
  }

  /** The server closes the connection (the client hears of it unless the NAT forgot it). */
  serverClose(code: number, reason = ''): void {
    if (this.state === 'closed') return;
    const reachable = this.#natAlive();
    this.state = 'closed';
    this.closeCode = code;
    this.#clock.clearTimeout(this.#idleTimer);
    this.#server.log.push({ at: this.#clock.now(), socket: this.id, kind: 'close-by-server' });
    if (reachable) this.#later(() => this.#h.onClose(code, reason));
  }

  /** The connection breaks with a reset the client notices (1006). */
  reset(): void {
    if (this.state === 'closed') return;
    this.state = 'closed';
    this.closeCode = 1006;
    this.#clock.clearTimeout(this.#idleTimer);
    this.#later(() => this.#h.onClose(1006, ''));
  }

  /** The path silently drops everything from now on (NAT mapping gone, cable pulled). */
  blackhole(): void {
    this.blackholed = true;
  }

  /** Server-side idle detection: close with 4010 after `hb + grace` s without a client frame. */
  armIdle(): void {
    this.#clock.clearTimeout(this.#idleTimer);
    const limit = (this.hb + this.#server.o.idleGrace) * 1000;
    const left = this.#lastClientFrame + limit - this.#clock.now();
    this.#idleTimer = this.#clock.setTimeout(() => {
      if (this.state !== 'open') return;
      if (this.#clock.now() - this.#lastClientFrame >= (this.hb + this.#server.o.idleGrace) * 1000) {
        this.serverClose(4010, 'idle timeout');
      } else {
        this.armIdle();
      }
    }, left);
  }

  #natAlive(): boolean {
    const t = this.#server.o.natIdleTimeout;
    if (!this.blackholed && t !== undefined && this.#clock.now() - this.#lastActivity >= t)
      this.blackholed = true;
    return !this.blackholed;
  }

  #later(fn: () => void): void {
    this.#clock.setTimeout(fn, this.#server.o.latency);
  }
}
