/**
 * Coordinator side of the load generator: spawns worker processes (raised open-file limit, pinned
 * to the load generator's core), spreads clients over them, aggregates their stats, and shows a
 * live progress line on stderr.
 */
import type { ChildProcess } from 'node:child_process';
import { entry, LOADGEN_CORE, NOFILE, procSample, spawnPinned, stopProcess } from '../lib/proc.js';
import { sleep } from '../lib/util.js';
import type {
  Cmd,
  OpenCmd,
  PublishCmd,
  PublishResult,
  RoundStat,
  WorkerMsg,
  WorkerStats,
} from './messages.js';

/** Sockets one worker holds at most (below the 20,000 open-file limit, with room for the rest). */
export const PER_WORKER_MAX = Math.max(100, Math.min(19_000, NOFILE - 500));

/**
 * Loopback source addresses. Each (source address, server port) pair has its own ~28k ephemeral
 * ports; the workers bind explicit (address, port) pairs (see clients.ts), 41,000 per address.
 */
export const LOCAL_ADDRESSES = ['127.0.0.2', '127.0.0.3', '127.0.0.4', '127.0.0.5', '127.0.0.6', '127.0.0.7'];

interface Worker {
  proc: ChildProcess;
  stats: WorkerStats | undefined;
  replies: Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>;
}

export type OpenSpec = Omit<
  OpenCmd,
  | 'type'
  | 'localAddresses'
  | 'indexOffset'
  | 'indexStride'
  | 'concurrency'
  | 'rate'
  | 'handshakeTimeoutMs'
  | 'ackDelayMs'
  | 'topicAckDelayMs'
> &
  Partial<Pick<OpenCmd, 'concurrency' | 'rate' | 'handshakeTimeoutMs' | 'ackDelayMs' | 'topicAckDelayMs'>>;

let nextReq = 1;

export class LoadGen {
  private constructor(
    private readonly workers: Worker[],
    private readonly pubWorker: Worker,
  ) {}

  /** Starts enough workers for `maxClients` (at least two, so the fd limit never binds). */
  static async start(maxClients: number, perWorker = 5000): Promise<LoadGen> {
    const n = Math.max(2, Math.ceil(maxClients / Math.min(perWorker, PER_WORKER_MAX)));
    const workers = await Promise.all(Array.from({ length: n + 1 }, () => spawnWorker()));
    return new LoadGen(workers.slice(0, n), workers[n]!);
  }

  get size(): number {
    return this.workers.length;
  }

  /** CPU time (ms) used so far by all load-generator processes (workers and publisher). */
  cpuMs(): number {
    let ms = 0;
    for (const w of [...this.workers, this.pubWorker])
      ms += (w.proc.pid && procSample(w.proc.pid)?.cpuMs) || 0;
    return ms;
  }

  private request<T>(w: Worker, cmd: Cmd, timeoutMs = 120_000): Promise<T> {
    const reqId = nextReq++;
    return new Promise<T>((resolve, reject) => {
      const t = setTimeout(() => {
        w.replies.delete(reqId);
        reject(new Error(`worker did not answer ${cmd.type} in ${timeoutMs} ms`));
      }, timeoutMs);
      w.replies.set(reqId, {
        resolve: (v) => {
          clearTimeout(t);
          resolve(v as T);
        },
        reject: (e) => {
          clearTimeout(t);
          reject(e);
        },
      });
      w.proc.send({ ...cmd, reqId });
    });
  }

  private all<T>(cmd: Cmd, timeoutMs?: number): Promise<T[]> {
    return Promise.all(this.workers.map((w) => this.request<T>(w, cmd, timeoutMs)));
  }

  /** Opens the clients, spread round-robin over the workers. Does not wait for them to be ready. */
  async open(spec: OpenSpec): Promise<void> {
    const parts: OpenCmd[] = this.workers.map((_, w) => ({
      type: 'open',
      localAddresses: LOCAL_ADDRESSES,
      indexOffset: w,
      indexStride: this.workers.length,
      concurrency: 256,
      rate: 0,
      handshakeTimeoutMs: 15_000,
      ackDelayMs: 50,
      topicAckDelayMs: 30_000,
      ...spec,
      clients: [],
    }));
    for (const [i, c] of spec.clients.entries()) parts[i % parts.length]!.clients.push(c);
    const perWorker = (x: number) => Math.max(1, Math.ceil(x / this.workers.length));
    for (const p of parts) {
      p.concurrency = perWorker(spec.concurrency ?? 256);
      p.rate = spec.rate ? spec.rate / this.workers.length : 0;
    }
    for (const w of this.workers) w.stats = undefined;
    await Promise.all(this.workers.map((w, i) => this.request(w, parts[i]!)));
  }

  async closeAll(): Promise<void> {
    await this.all({ type: 'closeAll' });
  }

  /** Clears received counts, rounds and latencies. Cached stats are dropped: waits see only fresh ones. */
  async reset(): Promise<void> {
    await this.all({ type: 'reset' });
    for (const w of this.workers) w.stats = undefined;
  }

  /** Handshakes in flight, all workers together. */
  async tune(concurrency: number): Promise<void> {
    const per = Math.max(1, Math.ceil(concurrency / this.workers.length));
    await this.all({ type: 'tune', concurrency: per });
  }

  async epoch(): Promise<void> {
    await this.all({ type: 'epoch' });
    for (const w of this.workers) w.stats = undefined;
  }

  /** Fresh stats from every worker, summed. */
  async snapshot(): Promise<Totals> {
    const stats = await this.all<WorkerStats>({ type: 'snapshot' });
    stats.forEach((s, i) => {
      this.workers[i]!.stats = s;
    });
    return sum(stats);
  }

  /** The latest pushed stats, summed (no round trip). */
  totals(): Totals {
    return sum(this.workers.map((w) => w.stats).filter((s): s is WorkerStats => s !== undefined));
  }

  async latencies(): Promise<Float64Array> {
    const parts = await this.all<Float64Array>({ type: 'latencies' });
    const out = new Float64Array(parts.reduce((n, p) => n + p.length, 0));
    let at = 0;
    for (const p of parts) {
      out.set(p, at);
      at += p.length;
    }
    return out;
  }

  /** Seqs received per device stream since the last reset. */
  async seqs(): Promise<Map<string, number[]>> {
    const parts = await this.all<[string, number[]][]>({ type: 'seqs' });
    return new Map(parts.flat());
  }

  /** Runs a publisher in the dedicated worker. */
  publish(cmd: Omit<PublishCmd, 'type'>): Promise<PublishResult> {
    return this.request<PublishResult>(this.pubWorker, { type: 'publish', ...cmd }, cmd.durationMs + 60_000);
  }

  async stopPublish(): Promise<void> {
    await this.request(this.pubWorker, { type: 'stopPublish' });
  }

  /**
   * Waits until `pred(totals)` holds, showing progress; bounded by `timeoutMs`. Resolves with
   * whether it held and the elapsed time.
   */
  async waitFor(
    label: string,
    pred: (t: Totals) => boolean,
    timeoutMs: number,
  ): Promise<{ ok: boolean; elapsedMs: number; totals: Totals }> {
    const start = performance.now();
    const progress = new Progress(label, () => this.totals());
    try {
      for (;;) {
        const t = this.totals();
        if (t.workers === this.workers.length && pred(t)) {
          return { ok: true, elapsedMs: performance.now() - start, totals: t };
        }
        if (performance.now() - start > timeoutMs) {
          return { ok: false, elapsedMs: performance.now() - start, totals: t };
        }
        await sleep(20);
      }
    } finally {
      progress.stop();
    }
  }

  async stop(): Promise<void> {
    await Promise.all(
      [...this.workers, this.pubWorker].map(async (w) => {
        if (w.proc.connected) w.proc.send({ type: 'exit', reqId: 0 });
        await stopProcess(w.proc, 'SIGTERM', 3000).catch(() => {});
      }),
    );
  }
}

export interface Totals extends Omit<WorkerStats, 'rounds' | 'epochLastReadyAt' | 'lastRecvAt'> {
  workers: number;
  rounds: Record<number, RoundStat>;
  epochLastReadyAt: number;
  lastRecvAt: number;
}

function sum(stats: WorkerStats[]): Totals {
  const t: Totals = {
    workers: stats.length,
    target: 0,
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
    bytesIn: 0,
    bytesOut: 0,
    rounds: {},
    epochReady: 0,
    epochLastReadyAt: 0,
    lastRecvAt: 0,
  };
  for (const s of stats) {
    for (const k of [
      'target',
      'ready',
      'connecting',
      'opened',
      'failed',
      'dropped',
      'rateLimited',
      'received',
      'dups',
      'hbOut',
      'hbIn',
      'bytesIn',
      'bytesOut',
      'epochReady',
    ] as const) {
      t[k] += s[k];
    }
    for (const [k, v] of Object.entries(s.errors)) t.errors[k] = (t.errors[k] ?? 0) + v;
    for (const [k, r] of Object.entries(s.rounds)) {
      const cur = t.rounds[Number(k)];
      t.rounds[Number(k)] = cur
        ? {
            count: cur.count + r.count,
            first: Math.min(cur.first, r.first),
            last: Math.max(cur.last, r.last),
          }
        : { ...r };
    }
    t.epochLastReadyAt = Math.max(t.epochLastReadyAt, s.epochLastReadyAt);
    t.lastRecvAt = Math.max(t.lastRecvAt, s.lastRecvAt);
  }
  return t;
}

async function spawnWorker(): Promise<Worker> {
  const proc = spawnPinned(process.execPath, [entry('worker')], {
    core: LOADGEN_CORE,
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    serialization: 'advanced',
  });
  const w: Worker = { proc, stats: undefined, replies: new Map() };
  proc.on('message', (m: WorkerMsg) => {
    if (m.type === 'stats') w.stats = m.stats;
    else {
      const r = w.replies.get(m.reqId);
      w.replies.delete(m.reqId);
      if (m.error) r?.reject(new Error(m.error));
      else r?.resolve(m.data);
    }
  });
  proc.on('exit', (code, sig) => {
    for (const r of w.replies.values()) r.reject(new Error(`load-generator worker exited (${code ?? sig})`));
    w.replies.clear();
  });
  return w;
}

/** A live progress line on stderr: connected, connect rate, received, errors. */
export class Progress {
  private readonly timer: NodeJS.Timeout;
  private readonly tty = Boolean(process.stderr.isTTY);
  private last = { at: performance.now(), opened: 0, received: 0 };
  private lastLine = 0;

  constructor(
    private readonly label: string,
    private readonly get: () => Totals,
  ) {
    this.timer = setInterval(() => this.draw(), this.tty ? 250 : 2000);
  }

  private draw(): void {
    const t = this.get();
    const now = performance.now();
    const dt = (now - this.last.at) / 1000;
    const cps = dt > 0 ? (t.opened - this.last.opened) / dt : 0;
    const rps = dt > 0 ? (t.received - this.last.received) / dt : 0;
    this.last = { at: now, opened: t.opened, received: t.received };
    const errs = Object.values(t.errors).reduce((a, b) => a + b, 0);
    const line =
      `  ${this.label}: ready ${t.ready}/${t.target} (${Math.round(cps)}/s) connecting ${t.connecting}` +
      ` recv ${t.received} (${Math.round(rps)}/s) failed ${t.failed} errors ${errs}`;
    if (this.tty) process.stderr.write(`\r\x1b[K${line}`);
    else if (now - this.lastLine > 1900) {
      this.lastLine = now;
      process.stderr.write(`${line}\n`);
    }
  }

  stop(): void {
    clearInterval(this.timer);
    if (this.tty) process.stderr.write('\r\x1b[K');
  }
}
