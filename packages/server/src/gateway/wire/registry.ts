import type { WireSocket } from './socket.js';

/** How long a close handshake may take before the socket is destroyed, by default. */
export const DEFAULT_CLOSE_TIMEOUT_MS = 10_000;

/**
 * The sockets of one server: the set of those not closed yet (for counting them and closing them
 * all at shutdown), and the close deadline of those closing. Every close waits the same time, so
 * deadlines come in the order the closes began: one queue and one unref'd timer serve them all,
 * and nothing the peer sends can move a deadline (a peer that keeps sending after our close frame
 * is still destroyed on time).
 */
export class WireSockets {
  /** Upgraded sockets not closed yet: open, and closing until destroyed. */
  readonly open = new Set<WireSocket>();
  private queue: WireSocket[] = [];
  private deadlines: number[] = [];
  private head = 0;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    /** Milliseconds between our close frame and the socket's destruction at the latest. */
    readonly closeTimeoutMs = DEFAULT_CLOSE_TIMEOUT_MS,
    private readonly now: () => number = Date.now,
  ) {}

  /** Sockets whose close handshake is running (their deadline not reached yet). */
  get closing(): number {
    return this.queue.length - this.head;
  }

  /** @internal A socket sent its close frame: destroy it at the deadline unless it closed before. */
  startClose(ws: WireSocket): void {
    this.queue.push(ws);
    this.deadlines.push(this.now() + this.closeTimeoutMs);
    if (!this.timer) this.arm(this.closeTimeoutMs);
  }

  /** Destroys the sockets past their deadline. */
  sweep(): void {
    this.timer = undefined;
    const now = this.now();
    while (this.head < this.queue.length && (this.deadlines[this.head] as number) <= now) {
      const ws = this.queue[this.head] as WireSocket;
      this.head++;
      ws.terminate(); // a no-op when it closed in time
    }
    if (this.head === this.queue.length) {
      this.queue = [];
      this.deadlines = [];
      this.head = 0;
    } else {
      if (this.head > 1024 && this.head * 2 > this.queue.length) {
        this.queue = this.queue.slice(this.head);
        this.deadlines = this.deadlines.slice(this.head);
        this.head = 0;
      }
      this.arm((this.deadlines[this.head] as number) - now);
    }
  }

  /** Stops the timer (the server is closing and destroys what is left itself). */
  stop(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }

  private arm(ms: number): void {
    this.timer = setTimeout(sweep, Math.max(ms, 1), this);
    this.timer.unref();
  }
}

function sweep(registry: WireSockets): void {
  registry.sweep();
}
