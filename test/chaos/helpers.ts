import { type ChildProcess, spawn } from 'node:child_process';
import type { Collector } from '../helpers/collector.js';
import { CLI, http, until } from '../helpers/server.js';

/** The counts every chaos scenario asserts. */
export interface Tally {
  sent: number;
  received: number;
  duplicated: number;
  lost: number;
}

/** Counts for messages `sent` (acknowledged publishes) against what an app callback saw. */
export function tally(sent: readonly string[], seen: Collector | Collector[]): Tally {
  const cols = Array.isArray(seen) ? seen : [seen];
  const ids = new Set(sent);
  let received = 0;
  let duplicated = 0;
  const got = new Set<string>();
  for (const c of cols) {
    for (const m of c.messages) {
      if (!ids.has(m.id)) continue;
      if (got.has(m.id)) duplicated++;
      else {
        got.add(m.id);
        received++;
      }
    }
  }
  return { sent: ids.size, received, duplicated, lost: ids.size - received };
}

/** Publishes one message; returns its id when the server answered 202, else undefined. */
export async function publish(url: string, body: Record<string, unknown>): Promise<string | undefined> {
  try {
    const r = await http<{ id: string }>(url, 'POST', '/v1/messages', body);
    return r.status === 202 ? r.body.id : undefined;
  } catch {
    return undefined; // server down: not acknowledged, so not promised
  }
}

/** Prints a measured figure so it shows in the test output (and can be quoted in the docs). */
export function report(scenario: string, figures: Record<string, unknown>): void {
  console.log(`[chaos] ${scenario}: ${JSON.stringify(figures)}`);
}

/** Spread of event times over a window: coverage and the fullest of ten equal slices. */
export function spread(times: readonly number[], windowMs: number): { coverage: number; maxSlice: number } {
  const sorted = [...times].sort((a, b) => a - b);
  const first = sorted[0] ?? 0;
  const last = sorted.at(-1) ?? 0;
  const slices = new Array<number>(10).fill(0);
  for (const t of sorted) slices[Math.min(9, Math.max(0, Math.floor((t / windowMs) * 10)))]!++;
  return {
    coverage: (last - first) / windowMs,
    maxSlice: Math.max(...slices) / Math.max(1, sorted.length),
  };
}

export const quantile = (xs: readonly number[], q: number): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))] ?? Number.NaN;
};

/** A `pushwire listen` child process: its stdout JSON lines (messages) and stderr (state log). */
export interface ListenRun {
  proc: ChildProcess;
  /** Messages printed so far, parsed. */
  messages: () => { id: string; seq: number; data?: unknown }[];
  stderr: () => string;
  /** State changes logged so far, as `from → to`, with the time each line arrived. */
  states: () => { from: string; to: string; t: number }[];
  stop: () => Promise<void>;
}

/** Starts `pushwire listen` (the real CLI) with `args` after `listen`. */
export function runListen(args: string[]): ListenRun {
  const proc = spawn(process.execPath, [CLI, 'listen', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  const states: { from: string; to: string; t: number }[] = [];
  proc.stdout?.on('data', (d) => {
    out += d;
  });
  proc.stderr?.on('data', (d) => {
    err += d;
    for (const m of String(d).matchAll(/pushwire listen: (\w+) → (\w+)/g)) {
      states.push({ from: m[1]!, to: m[2]!, t: Date.now() });
    }
  });
  return {
    proc,
    messages: () =>
      out
        .split('\n')
        .filter((l) => l.trim())
        .map((l) => JSON.parse(l) as { id: string; seq: number }),
    stderr: () => err,
    states: () => states,
    stop: async () => {
      if (proc.exitCode !== null || proc.signalCode !== null) return;
      const exited = new Promise((r) => proc.once('exit', r));
      proc.kill('SIGCONT'); // a stopped process cannot handle SIGTERM
      proc.kill('SIGTERM');
      const timer = setTimeout(() => proc.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(timer);
    },
  };
}

/** A bounded, steady stream of publishes round-robin over devices, counting what was accepted. */
export interface SteadyPublisher {
  /** Every publish tried, in order, with the index of its target device. */
  readonly attempted: { id: string; device: number }[];
  /** Ids answered 202 (durable): the ones that must arrive. */
  readonly accepted: Set<string>;
  /** Stops after the publish in flight and waits for every answer. */
  stop(): Promise<void>;
}

/**
 * Publishes one message every `everyMs` (at most `max`) to `deviceIds` round-robin, through
 * whatever server `url()` names at that moment (it may be restarted meanwhile).
 */
export function steadyPublisher(opts: {
  url: () => string;
  deviceIds: readonly string[];
  prefix: string;
  max: number;
  everyMs: number;
}): SteadyPublisher {
  const attempted: { id: string; device: number }[] = [];
  const accepted = new Set<string>();
  let publishing = true;
  const done = (async () => {
    const inflight: Promise<void>[] = [];
    for (let n = 0; publishing && n < opts.max; n++) {
      const device = n % opts.deviceIds.length;
      const id = `${opts.prefix}-${n}`;
      attempted.push({ id, device });
      inflight.push(
        publish(opts.url(), { id, to: { device: opts.deviceIds[device] }, data: { n } }).then((got) => {
          if (got === id) accepted.add(id);
        }),
      );
      await new Promise((r) => setTimeout(r, opts.everyMs));
    }
    await Promise.all(inflight);
  })();
  return {
    attempted,
    accepted,
    stop: () => {
      publishing = false;
      return done;
    },
  };
}

/**
 * Echo barrier for a swarm: publishes a marker to every device and waits until each client has
 * seen its own. A device stream is delivered in order, so a duplicate or late replay of anything
 * sent before would have reached that client first. Returns the markers' ids (not part of `sent`).
 */
export async function markEvery(
  url: string,
  deviceIds: readonly string[],
  seen: (device: number) => ReadonlyMap<string, number>,
  timeoutMs = 30_000,
): Promise<Set<string>> {
  const ids: string[] = [];
  for (let i = 0; i < deviceIds.length; i += 40) {
    const batch = deviceIds.slice(i, i + 40);
    const got = await Promise.all(
      batch.map((d) => publish(url, { to: { device: d }, data: { marker: true } })),
    );
    for (const id of got) {
      if (id === undefined) throw new Error('a marker was not accepted');
      ids.push(id);
    }
  }
  await until(() => ids.every((id, i) => seen(i).has(id)), timeoutMs, 'a marker on every device');
  return new Set(ids);
}
