import { EventEmitter } from 'node:events';
import { createServer, type Server, type Socket, connect as tcpConnect } from 'node:net';

/**
 * A TCP fault proxy for the chaos suite: sits between clients and a server on loopback and
 * injects the faults real networks have, per connection or for all of them.
 *
 * - black-hole: stop forwarding both ways, silently — no FIN, no RST; bytes are read and dropped,
 *   the sockets stay open (a NAT that lost its mapping; a Wi-Fi that vanished). Endings are not
 *   passed on either: the far side never learns.
 * - reset: destroy both sockets with RST (`resetAndDestroy`).
 * - delay: hold each chunk `ms` before forwarding it (order kept).
 * - throttle: forward at most `bytesPerSecond` each way.
 * - NAT idle: a mapping idle (no byte either way) longer than `natIdleMs` is black-holed — the
 *   next packet finds no mapping and is dropped, like a NAT with that idle timeout.
 *
 * Every connection counts its bytes each way (forwarded and dropped).
 *
 * ```
 *  client ──▶ [proxy port] ─ lane up ──▶ target      lane: queue → delay → throttle → write
 *  client ◀── [proxy port] ◀─ lane down ─ target
 * ```
 */

/** Faults applied to a connection (and, as {@link FaultProxy.defaults}, to new ones). */
export interface Faults {
  /** Milliseconds each chunk is held before it is forwarded. */
  delayMs?: number;
  /** Bytes per second each way; undefined = unlimited. */
  bytesPerSecond?: number;
  /** Black-hole from the start (a network that swallows everything). */
  blackhole?: boolean;
}

export interface ByteCounts {
  up: number;
  down: number;
}

/** Why a connection stopped forwarding. */
export type BlackholeReason = 'blackhole' | 'nat-idle';

/** One proxied connection. */
export class ProxyConnection {
  readonly openedAt = Date.now();
  closedAt: number | undefined;
  /** Bytes forwarded, client → server (up) and server → client (down). */
  readonly forwarded: ByteCounts = { up: 0, down: 0 };
  /** Bytes swallowed by a black-hole. */
  readonly dropped: ByteCounts = { up: 0, down: 0 };
  /** Set when the connection went silent, with the time. */
  blackholed: { reason: BlackholeReason; at: number } | undefined;
  /** Last time a byte went through (either way): what a NAT's idle timer looks at. */
  lastActivity = Date.now();
  faults: Faults;
  private readonly lanes: Lane[];

  constructor(
    readonly id: number,
    readonly client: Socket,
    readonly upstream: Socket,
    faults: Faults,
    private readonly natIdleMs: () => number | undefined,
  ) {
    this.faults = { ...faults };
    if (faults.blackhole) this.blackholed = { reason: 'blackhole', at: this.openedAt };
    this.lanes = [new Lane(this, client, upstream, 'up'), new Lane(this, upstream, client, 'down')];
    let ended = 0;
    for (const [from, to] of [
      [client, upstream],
      [upstream, client],
    ] as const) {
      from.on('error', () => {});
      from.on('end', () => {
        ended++;
        if (this.blackholed) {
          if (ended === 2) this.destroy(); // both ends gone: nothing left to keep silent
          return;
        }
        this.laneFrom(from).whenFlushed(() => to.end());
      });
      from.on('close', (hadError) => {
        this.closedAt ??= Date.now();
        if (this.blackholed) return; // a dead path carries no FIN or RST
        if (hadError) to.resetAndDestroy();
        else this.laneFrom(from).whenFlushed(() => to.end());
      });
    }
  }

  /** Whether both sockets are gone. */
  get closed(): boolean {
    return this.client.destroyed && this.upstream.destroyed;
  }

  /** Bytes that went through plus those dropped. */
  get total(): ByteCounts {
    return { up: this.forwarded.up + this.dropped.up, down: this.forwarded.down + this.dropped.down };
  }

  /** Stops forwarding both ways, silently. Queued bytes are dropped too. */
  blackhole(reason: BlackholeReason = 'blackhole'): void {
    if (this.blackholed) return;
    this.blackholed = { reason, at: Date.now() };
    this.silence();
  }

  /** Destroys both sockets with RST. */
  reset(): void {
    this.blackholed ??= { reason: 'blackhole', at: Date.now() }; // forward nothing more, not even the end
    for (const lane of this.lanes) lane.dropQueued();
    if (!this.client.destroyed) this.client.resetAndDestroy();
    if (!this.upstream.destroyed) this.upstream.resetAndDestroy();
  }

  /** Changes delay and throttle for bytes arriving from now on. */
  set(faults: Omit<Faults, 'blackhole'>): void {
    this.faults = { ...this.faults, ...faults };
  }

  /** Destroys both sockets quietly (test cleanup). */
  destroy(): void {
    for (const lane of this.lanes) lane.dropQueued();
    this.client.destroy();
    this.upstream.destroy();
  }

  /** Called by a lane for every chunk: true when it may pass (the mapping is alive). */
  admit(now: number): boolean {
    const idle = this.natIdleMs();
    if (!this.blackholed && idle !== undefined && now - this.lastActivity > idle) this.blackhole('nat-idle');
    return !this.blackholed;
  }

  /** A NAT sweep: drops the mapping if it has been idle past the NAT's timeout. */
  sweep(now: number): void {
    const idle = this.natIdleMs();
    if (!this.blackholed && idle !== undefined && now - this.lastActivity > idle) {
      this.blackholed = { reason: 'nat-idle', at: this.lastActivity + idle };
      this.silence();
    }
  }

  /** Drops what is queued and keeps reading (and dropping) both ways, even if paused by backpressure. */
  private silence(): void {
    for (const lane of this.lanes) lane.dropQueued();
    this.client.resume();
    this.upstream.resume();
  }

  private laneFrom(socket: Socket): Lane {
    return socket === this.client ? this.lanes[0]! : this.lanes[1]!;
  }
}

/** One direction of a connection: queue, delay, throttle, backpressure. */
class Lane {
  private readonly queue: { chunk: Buffer; due: number }[] = [];
  private timer: NodeJS.Timeout | undefined;
  /** Earliest time the throttle lets the next byte go. */
  private nextFree = 0;
  private flushed: (() => void)[] = [];

  constructor(
    private readonly conn: ProxyConnection,
    private readonly from: Socket,
    private readonly to: Socket,
    private readonly dir: 'up' | 'down',
  ) {
    from.on('data', (chunk: Buffer) => this.push(chunk));
  }

  whenFlushed(fn: () => void): void {
    if (this.queue.length === 0) fn();
    else this.flushed.push(fn);
  }

  dropQueued(): void {
    for (const q of this.queue) this.conn.dropped[this.dir] += q.chunk.length;
    this.queue.length = 0;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.flushed = [];
  }

  private push(chunk: Buffer): void {
    const now = Date.now();
    if (!this.conn.admit(now)) {
      this.conn.dropped[this.dir] += chunk.length;
      return;
    }
    this.conn.lastActivity = now;
    const { delayMs = 0, bytesPerSecond } = this.conn.faults;
    if (delayMs === 0 && bytesPerSecond === undefined && this.queue.length === 0) {
      this.write(chunk);
      return;
    }
    // Slice throttled chunks into 50 ms worth of bytes, so the rate is smooth.
    const slice = bytesPerSecond === undefined ? chunk.length : Math.max(1, Math.floor(bytesPerSecond / 20));
    for (let at = 0; at < chunk.length; at += slice) {
      this.queue.push({ chunk: chunk.subarray(at, at + slice), due: now + delayMs });
    }
    this.pump();
  }

  private pump(): void {
    if (this.timer) return;
    for (;;) {
      const head = this.queue[0];
      if (!head) {
        for (const fn of this.flushed.splice(0)) fn();
        return;
      }
      const now = Date.now();
      const rate = this.conn.faults.bytesPerSecond;
      const at = Math.max(head.due, rate === undefined ? 0 : this.nextFree);
      if (at > now) {
        this.timer = setTimeout(() => {
          this.timer = undefined;
          this.pump();
        }, at - now);
        return;
      }
      this.queue.shift();
      if (rate !== undefined)
        this.nextFree = Math.max(this.nextFree, now) + (head.chunk.length / rate) * 1000;
      this.write(head.chunk);
    }
  }

  private write(chunk: Buffer): void {
    if (this.to.destroyed || this.conn.blackholed) {
      this.conn.dropped[this.dir] += chunk.length;
      return;
    }
    this.conn.forwarded[this.dir] += chunk.length;
    this.conn.lastActivity = Date.now();
    if (!this.to.write(chunk)) {
      this.from.pause();
      this.to.once('drain', () => this.from.resume());
    }
  }
}

export interface FaultProxyOptions {
  /** Where to forward to. */
  target: { host?: string; port: number };
  /** Port to listen on (127.0.0.1). Default 0 (any free port). */
  port?: number;
}

/**
 * The proxy. Listens on 127.0.0.1; `url` is its `http://` base for clients.
 * Events: `connection` (ProxyConnection) when a client connects.
 * @example
 * const proxy = await FaultProxy.start({ target: { port: 8787 } });
 * proxy.blackholeAll();          // every current connection goes silent; new ones pass
 * proxy.natIdleMs = 8000;        // a NAT dropping mappings idle for more than 8 s
 */
export class FaultProxy extends EventEmitter<{ connection: [ProxyConnection] }> {
  /** Faults given to each new connection. */
  defaults: Faults = {};
  /** NAT idle timeout in ms for every connection (current and new); undefined = no NAT. */
  natIdleMs: number | undefined;
  /** Every connection since the start, in order (closed ones included, for their counts). */
  readonly history: ProxyConnection[] = [];
  target: { host: string; port: number };
  private nextId = 1;
  private sweeper: NodeJS.Timeout | undefined;

  private constructor(
    private readonly server: Server,
    target: { host?: string; port: number },
  ) {
    super();
    this.target = { host: target.host ?? '127.0.0.1', port: target.port };
    server.on('connection', (socket) => this.accept(socket));
    this.sweeper = setInterval(() => {
      const now = Date.now();
      for (const c of this.live()) c.sweep(now);
    }, 100);
    this.sweeper.unref();
  }

  static async start(options: FaultProxyOptions): Promise<FaultProxy> {
    const server = createServer({ allowHalfOpen: true, noDelay: true });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(options.port ?? 0, '127.0.0.1', () => resolve());
    });
    return new FaultProxy(server, options.target);
  }

  get port(): number {
    const a = this.server.address();
    if (a === null || typeof a === 'string') throw new Error('proxy is not listening');
    return a.port;
  }

  /** `http://127.0.0.1:PORT`, the base URL clients are given. */
  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  /** Connections whose sockets are not both gone. */
  live(): ProxyConnection[] {
    return this.history.filter((c) => !c.closed);
  }

  /** Connections still forwarding. */
  forwarding(): ProxyConnection[] {
    return this.live().filter((c) => !c.blackholed);
  }

  /** Black-holes every current connection (new ones pass unless `defaults.blackhole`). */
  blackholeAll(): ProxyConnection[] {
    const hit = this.forwarding();
    for (const c of hit) c.blackhole();
    return hit;
  }

  /** Resets every current connection with RST. */
  resetAll(): ProxyConnection[] {
    const hit = this.live();
    for (const c of hit) c.reset();
    return hit;
  }

  /** Sets delay/throttle on every current connection and on new ones. */
  setAll(faults: Omit<Faults, 'blackhole'>): void {
    this.defaults = { ...this.defaults, ...faults };
    for (const c of this.live()) c.set(faults);
  }

  /** Sum of the bytes of every connection so far. */
  totals(): { forwarded: ByteCounts; dropped: ByteCounts } {
    const forwarded = { up: 0, down: 0 };
    const dropped = { up: 0, down: 0 };
    for (const c of this.history) {
      forwarded.up += c.forwarded.up;
      forwarded.down += c.forwarded.down;
      dropped.up += c.dropped.up;
      dropped.down += c.dropped.down;
    }
    return { forwarded, dropped };
  }

  /** Stops listening and destroys every connection. */
  async close(): Promise<void> {
    if (this.sweeper) clearInterval(this.sweeper);
    this.sweeper = undefined;
    for (const c of this.history) c.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private accept(client: Socket): void {
    client.setNoDelay(true);
    const upstream = tcpConnect({
      host: this.target.host,
      port: this.target.port,
      allowHalfOpen: true,
      noDelay: true,
    });
    // Nothing listening behind us: the upstream closes with an error, and the client gets an RST,
    // as it would from the server's kernel.
    const conn = new ProxyConnection(this.nextId++, client, upstream, this.defaults, () => this.natIdleMs);
    this.history.push(conn);
    this.emit('connection', conn);
  }
}
