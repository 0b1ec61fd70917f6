/**
 * Processes: spawning pinned to a core with a raised open-file limit, reading RSS and CPU time
 * from /proc, free ports, and building the harness's child entries with esbuild.
 */
import { type ChildProcess, execFileSync, type StdioOptions, spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { sleep } from './util.js';

export const ROOT = new URL('../../', import.meta.url).pathname.replace(/\/$/, '');
export const TMP = join(ROOT, '.tmp/bench');
export const BUILD = join(TMP, 'build');

/** Open-file limit the harness asks for (the hard limit of this machine is 20,000). */
export const NOFILE = hardNofile();

function hardNofile(): number {
  try {
    const v = execFileSync('bash', ['-c', 'ulimit -Hn'], { encoding: 'utf8' }).trim();
    return v === 'unlimited' ? 1_048_576 : Number(v);
  } catch {
    return 1024;
  }
}

export const HAS_TASKSET = (() => {
  try {
    execFileSync('taskset', ['-V'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
})();

/** Path of the mosquitto binary (Debian installs it in /usr/sbin), or undefined. */
export const MOSQUITTO = (() => {
  for (const p of ['/usr/sbin/mosquitto', '/usr/bin/mosquitto', '/usr/local/sbin/mosquitto'])
    if (existsSync(p)) return p;
  try {
    return execFileSync('bash', ['-c', 'command -v mosquitto'], { encoding: 'utf8' }).trim() || undefined;
  } catch {
    return undefined;
  }
})();

export const CORES = Number(execFileSync('nproc', { encoding: 'utf8' }).trim()) || 1;

/** Core for servers and core for the load generator (the same on a 1-core machine). */
export const SERVER_CORE = 0;
export const LOADGEN_CORE = CORES > 1 ? 1 : 0;

const CLK_TCK = (() => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  } catch {
    return 100;
  }
})();

const shq = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

export interface SpawnOpts {
  core?: number;
  stdio?: StdioOptions;
  env?: NodeJS.ProcessEnv;
  serialization?: 'json' | 'advanced';
  cwd?: string;
}

/** Every child the harness started and that may still run: killed (by PID) when the harness exits. */
const children = new Set<ChildProcess>();

/** Spawns `cmd args` through bash with `ulimit -n NOFILE` and, when available, pinned to a core. */
export function spawnPinned(cmd: string, args: string[], o: SpawnOpts = {}): ChildProcess {
  const pin = o.core !== undefined && HAS_TASKSET ? `taskset -c ${o.core} ` : '';
  const line = `ulimit -n ${NOFILE} 2>/dev/null || true; exec ${pin}${[cmd, ...args].map(shq).join(' ')}`;
  const child = spawn('bash', ['-c', line], {
    stdio: o.stdio ?? ['ignore', 'pipe', 'pipe'],
    env: o.env ?? process.env,
    cwd: o.cwd ?? ROOT,
    ...(o.serialization && { serialization: o.serialization }),
  });
  children.add(child);
  child.once('exit', () => children.delete(child));
  return child;
}

/** SIGKILLs every child still running (each by its own PID). */
export function killAllChildren(): void {
  for (const c of children) {
    if (c.exitCode === null && c.signalCode === null) {
      try {
        c.kill('SIGKILL');
      } catch {}
    }
  }
  children.clear();
}

/** Pins the current process (the coordinator) to a core. */
export function pinSelf(core: number): void {
  if (!HAS_TASKSET) return;
  try {
    execFileSync('taskset', ['-pc', String(core), String(process.pid)], { stdio: 'ignore' });
  } catch {}
}

export interface ProcSample {
  /** Resident set size, KiB. */
  rssKb: number;
  /** Peak resident set size, KiB. */
  hwmKb: number;
  /** User + system CPU time, ms. */
  cpuMs: number;
  at: number;
}

/** RSS (VmRSS) and CPU time (utime + stime) of a process, or undefined when it is gone. */
export function procSample(pid: number): ProcSample | undefined {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const rss = /VmRSS:\s+(\d+)/.exec(status);
    const hwm = /VmHWM:\s+(\d+)/.exec(status);
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name (which may hold spaces) start after the last ')'.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const ticks = Number(fields[11]) + Number(fields[12]);
    return {
      rssKb: rss ? Number(rss[1]) : 0,
      hwmKb: hwm ? Number(hwm[1]) : 0,
      cpuMs: (ticks * 1000) / CLK_TCK,
      at: performance.now(),
    };
  } catch {
    return undefined;
  }
}

/** CPU share (1.0 = one core) between two samples. */
export const cpuShare = (a: ProcSample, b: ProcSample): number =>
  b.at > a.at ? (b.cpuMs - a.cpuMs) / (b.at - a.at) : 0;

/**
 * Waits (bounded) until a process is quiet: below `share` of a core over a `windowMs` window.
 * Used between broadcast rounds so that one round's leftovers (acks) do not land in the next.
 */
export async function quiesce(pid: number, share = 0.05, windowMs = 200, maxMs = 5000): Promise<boolean> {
  const end = performance.now() + maxMs;
  let a = procSample(pid);
  while (a && performance.now() < end) {
    await sleep(windowMs);
    const b = procSample(pid);
    if (!b) return false;
    if (cpuShare(a, b) < share) return true;
    a = b;
  }
  return false;
}

/** Samples a process every `everyMs` and keeps peak RSS and peak CPU share (over ≥ 500 ms windows). */
export class ProcWatch {
  peakRssKb = 0;
  peakCpu = 0;
  private timer: NodeJS.Timeout | undefined;
  private window: ProcSample | undefined;
  first: ProcSample | undefined;
  last: ProcSample | undefined;

  constructor(
    private pid: number,
    private readonly everyMs = 100,
  ) {}

  start(): this {
    this.sample();
    this.timer = setInterval(() => this.sample(), this.everyMs);
    return this;
  }

  /** Follows another process (a restarted server) from now on. */
  follow(pid: number): void {
    this.pid = pid;
    this.window = undefined;
  }

  sample(): void {
    const s = procSample(this.pid);
    if (!s) return;
    this.first ??= s;
    this.last = s;
    this.peakRssKb = Math.max(this.peakRssKb, s.rssKb);
    if (!this.window) this.window = s;
    else if (s.at - this.window.at >= 500) {
      this.peakCpu = Math.max(this.peakCpu, cpuShare(this.window, s));
      this.window = s;
    }
  }

  stop(): void {
    this.sample();
    clearInterval(this.timer);
  }
}

/** A free TCP port on 127.0.0.1. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as { port: number }).port;
      srv.close(() => resolve(port));
    });
  });
}

/** Resolves once `pred(output)` holds, rejects if the process exits first or after `timeoutMs`. */
export function waitForOutput(
  proc: ChildProcess,
  pred: (out: string) => boolean,
  timeoutMs: number,
  what: string,
): Promise<string> {
  return new Promise((resolve, reject) => {
    let out = '';
    const onData = (d: Buffer) => {
      out += d.toString();
      if (out.length > 100_000) out = out.slice(-50_000);
      if (pred(out)) finish();
    };
    const onExit = (code: number | null, sig: string | null) =>
      fail(new Error(`${what} exited (${code ?? sig}) before it was ready:\n${out.slice(-2000)}`));
    const timer = setTimeout(
      () => fail(new Error(`${what} not ready in ${timeoutMs} ms:\n${out.slice(-2000)}`)),
      timeoutMs,
    );
    const cleanup = () => {
      clearTimeout(timer);
      proc.stdout?.off('data', onData);
      proc.stderr?.off('data', onData);
      proc.off('exit', onExit);
    };
    const finish = () => {
      cleanup();
      resolve(out);
    };
    const fail = (e: Error) => {
      cleanup();
      reject(e);
    };
    proc.stdout?.on('data', onData);
    proc.stderr?.on('data', onData);
    proc.once('exit', onExit);
  });
}

/** Sends `signal` to a process we started and waits (bounded) until it has exited. */
export async function stopProcess(
  proc: ChildProcess,
  signal: NodeJS.Signals = 'SIGTERM',
  timeoutMs = 5000,
): Promise<void> {
  if (proc.exitCode !== null || proc.signalCode !== null) return;
  const exited = new Promise<void>((r) => proc.once('exit', () => r()));
  proc.kill(signal);
  const t = await Promise.race([exited.then(() => 'ok'), sleep(timeoutMs).then(() => 'timeout')]);
  if (t === 'timeout') {
    proc.kill('SIGKILL');
    await Promise.race([exited, sleep(2000)]);
  }
}

let built = false;

/** Bundles the harness's child entries (workers, peers) to plain ESM so children start without tsx. */
export async function buildEntries(): Promise<void> {
  if (built) return;
  const { build } = await import('esbuild');
  mkdirSync(BUILD, { recursive: true });
  await build({
    entryPoints: {
      worker: join(ROOT, 'bench/loadgen/worker.ts'),
      'ws-server': join(ROOT, 'bench/peers/ws-server.ts'),
      'socketio-server': join(ROOT, 'bench/peers/socketio-server.ts'),
      'fastify-server': join(ROOT, 'bench/peers/fastify-server.ts'),
      'pushwire-server': join(ROOT, 'bench/peers/pushwire-server.ts'),
    },
    outdir: BUILD,
    outExtension: { '.js': '.mjs' },
    bundle: true,
    packages: 'external',
    platform: 'node',
    format: 'esm',
    target: 'node20',
    logLevel: 'warning',
  });
  built = true;
}

export const entry = (
  name: 'worker' | 'ws-server' | 'socketio-server' | 'fastify-server' | 'pushwire-server',
): string => join(BUILD, `${name}.mjs`);

/** Builds packages/protocol and packages/server (incremental) unless their dist is fresh enough. */
export function buildServer(log: (s: string) => void): void {
  try {
    execFileSync(join(ROOT, 'node_modules/.bin/tsc'), ['-b', 'packages/protocol', 'packages/server'], {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
  } catch (err) {
    const out = (err as { stdout?: Buffer }).stdout?.toString() ?? '';
    if (!existsSync(join(ROOT, 'packages/server/dist/index.js'))) {
      throw new Error(`cannot build packages/server:\n${out.slice(0, 2000)}`);
    }
    log(`warning: tsc -b packages/server failed; using the existing dist:\n${out.slice(0, 600)}`);
  }
}
