import { type ChildProcess, fork } from 'node:child_process';
import { join } from 'node:path';
import { ROOT } from '../helpers/server.js';
import type { SwarmConfig, SwarmEvent, SwarmMessage } from './swarm.js';

const SCRIPT = join(ROOT, 'test/chaos/swarm.ts');

/** One client of the swarm as the parent sees it. */
export interface SwarmClient {
  state: string;
  /** Times it entered `open`. */
  opens: number[];
  /** Times it left `open`. */
  drops: number[];
  /** Every state change: [state entered, time]. */
  history: [string, number][];
  /** Message id → times handed to the app. */
  seen: Map<string, number>;
}

/**
 * Parent side of test/chaos/swarm.ts: N SDK clients spread over P child processes, each on the
 * real `ws` transport to a real server. Keeps per-client state, open times and received ids.
 */
export class Swarm {
  readonly clients: SwarmClient[];
  readonly errors = new Map<string, number>();
  private readonly procs: ChildProcess[] = [];

  private constructor(n: number) {
    this.clients = Array.from({ length: n }, () => ({
      state: 'idle',
      opens: [],
      drops: [],
      history: [],
      seen: new Map(),
    }));
  }

  /** Forks `procs` processes and starts `devices.length` clients on `url`, spread evenly. */
  static start(
    url: string,
    devices: { deviceId: string; token: string }[],
    procs: number,
    options: { fileStorageDir?: string; stableAfter?: number } = {},
  ): Swarm {
    const swarm = new Swarm(devices.length);
    const per = Math.ceil(devices.length / procs);
    for (let p = 0; p < procs; p++) {
      const offset = p * per;
      const slice = devices.slice(offset, offset + per);
      if (slice.length === 0) break;
      const child = fork(SCRIPT, [], {
        cwd: ROOT,
        execArgv: ['--import', 'tsx'],
        stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
      });
      child.on('message', (m: SwarmMessage) => {
        if (m.k === 'batch') for (const e of m.events) swarm.apply(e);
      });
      // The first process keeps its state in files (fsync per save), the others in memory.
      const file = p === 0 && options.fileStorageDir !== undefined;
      const config: SwarmConfig = {
        cmd: 'start',
        url,
        devices: slice,
        offset,
        storage: file ? 'file' : 'memory',
        ...(file && { dir: options.fileStorageDir }),
        ...(options.stableAfter !== undefined && { stableAfter: options.stableAfter }),
      };
      child.send(config);
      swarm.procs.push(child);
    }
    return swarm;
  }

  get size(): number {
    return this.clients.length;
  }

  /** Clients currently open. */
  get open(): number {
    return this.clients.filter((c) => c.state === 'open').length;
  }

  /** Whether every client entered `open` at or after `since`. */
  allOpenSince(since: number): boolean {
    return this.clients.every((c) => c.state === 'open' && (c.opens.at(-1) ?? 0) >= since);
  }

  /** Per client, the first time it entered `open` at or after `since` (undefined if not yet). */
  firstOpenSince(since: number): (number | undefined)[] {
    return this.clients.map((c) => c.opens.find((t) => t >= since));
  }

  /** Per client, the first time it entered `state` at or after `since` (undefined if not yet). */
  firstSince(state: string, since: number): (number | undefined)[] {
    return this.clients.map((c) => c.history.find(([s, t]) => s === state && t >= since)?.[1]);
  }

  /** Closes every client and waits for the processes to exit (killed after 5 s). */
  async close(): Promise<void> {
    await Promise.all(
      this.procs.map(
        (p) =>
          new Promise<void>((resolve) => {
            if (p.exitCode !== null || p.signalCode !== null) return resolve();
            const timer = setTimeout(() => p.kill('SIGKILL'), 5000);
            p.once('exit', () => {
              clearTimeout(timer);
              resolve();
            });
            if (p.connected) p.send({ cmd: 'close' });
            else p.kill('SIGKILL');
          }),
      ),
    );
  }

  private apply(e: SwarmEvent): void {
    const c = this.clients[e.i];
    if (!c) return;
    switch (e.k) {
      case 'state':
        if (c.state === 'open') c.drops.push(e.t);
        c.state = e.to;
        c.history.push([e.to, e.t]);
        if (e.to === 'open') c.opens.push(e.t);
        return;
      case 'msg':
        c.seen.set(e.id, (c.seen.get(e.id) ?? 0) + 1);
        return;
      case 'err':
        this.errors.set(e.code, (this.errors.get(e.code) ?? 0) + 1);
        return;
    }
  }
}
