/**
 * Publish → deliver throughput and latency of Pushwire on one node with SQLite, one node on Redis
 * and three nodes on Redis (`npx tsx bench/cluster-throughput.ts [--help]`).
 *
 * Each setup runs real `pushwire serve` processes on loopback ports (and a private redis-server
 * with AOF, `appendfsync always` by default: every 202 is on disk, as with SQLite's group commit).
 * `--devices` bare protocol clients connect, spread over the nodes, and ack every message. The
 * publisher posts to a random device through a random node over keep-alive HTTP, each message
 * carrying its send time; latency is publish request sent → message frame received, in this
 * process (one clock). Two phases per setup:
 *   1. fixed rate (`--rate`/s, open loop): latency percentiles at a load every setup sustains;
 *   2. saturation (`--concurrency` publishes in flight, closed loop): the throughput ceiling.
 * For Redis setups it also counts, per accepted publish, what Redis served (INFO before and after
 * each phase): read events (≈ round trips: a pipeline arrives in one read, up to 16 KB), script
 * calls, and commands (script-internal ones included). Those include the bus, acks and deliveries'
 * reads; unlike the throughput, they hardly depend on the load.
 * Everything shares the machine (nodes, Redis, this generator): read the figures as relative.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { SUBPROTOCOL } from '@pushwire/protocol';
import { Redis } from 'ioredis';
import WebSocket from 'ws';
import { type PostgresServer, startPostgres } from '../test/helpers/postgres.js';
import { type RedisServer, startRedis } from '../test/helpers/redis.js';

const CLI = new URL('../packages/cli/bin/pushwire.js', import.meta.url).pathname;
const KEY = 'bench-key';

const { values: args } = parseArgs({
  options: {
    setups: { type: 'string', default: 'sqlite-1,redis-1,redis-3' },
    devices: { type: 'string', default: '300' },
    rate: { type: 'string', default: '500' },
    'rate-ms': { type: 'string', default: '5000' },
    concurrency: { type: 'string', default: '64' },
    'max-ms': { type: 'string', default: '5000' },
    fsync: { type: 'string', default: 'always' },
    via: { type: 'string', default: 'random' },
    help: { type: 'boolean', default: false },
  },
});
if (args.help) {
  console.log(`Usage: npx tsx bench/cluster-throughput.ts [options]
  --setups sqlite-1,redis-1,redis-3   which setups to run (also postgres-N: store and bus on PostgreSQL)
  --devices 300        connected devices (bare protocol clients, ack every message)
  --rate 500           publishes/s in the fixed-rate phase, for --rate-ms (default 5000)
  --concurrency 64     publishes in flight in the saturation phase, for --max-ms (default 5000)
  --fsync always       Redis appendfsync: always | everysec
  --via random         publish through a random node, or through the device's own node (holder)`);
  process.exit(0);
}
const DEVICES = Number(args.devices);
const RATE = Number(args.rate);
const RATE_MS = Number(args['rate-ms']);
const CONCURRENCY = Number(args.concurrency);
const MAX_MS = Number(args['max-ms']);
const VIA = String(args.via);

interface Node {
  url: string;
  proc: ChildProcess;
}

/** Starts one `pushwire serve` process; resolves with its URL. */
function serve(extra: string[], dir: string): Promise<Node> {
  const proc = spawn(
    process.execPath,
    [CLI, 'serve', '--port', '0', '--data', dir, '--api-key', KEY, '--log-level', 'error', ...extra],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let out = '';
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`node did not start:\n${out}`)), 20_000);
    const onData = (d: Buffer) => {
      out += d;
      const m = /listening on (http:\/\/\S+)/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve({ url: m[1]!, proc });
      }
    };
    proc.stdout?.on('data', onData);
    proc.stderr?.on('data', onData);
    proc.once('exit', (code) => reject(new Error(`node exited ${code}:\n${out}`)));
  });
}

async function api<T>(url: string, path: string, body: unknown): Promise<{ status: number; body: T }> {
  const res = await fetch(`${url}${path}`, {
    method: 'POST',
    headers: { authorization: `Bearer ${KEY}`, 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  return { status: res.status, body: (await res.json()) as T };
}

/** What the devices saw: latency samples (ms) of the current phase, by message id. */
class Receiver {
  readonly sentAt = new Map<string, number>();
  samples: number[] = [];
  delivered = 0;
  duplicates = 0;
  private readonly seen = new Set<string>();

  onMessage(id: string): void {
    const t0 = this.sentAt.get(id);
    if (this.seen.has(id)) {
      this.duplicates++;
      return;
    }
    this.seen.add(id);
    this.delivered++;
    if (t0 !== undefined) this.samples.push(performance.now() - t0);
  }
}

/** A bare protocol client: hello, then ack each message cumulatively. */
function connectDevice(url: string, device: { deviceId: string; token: string }, rx: Receiver) {
  const ws = new WebSocket(`${url.replace(/^http/, 'ws')}/v1/connect`, [SUBPROTOCOL]);
  ws.on('error', () => {});
  return new Promise<WebSocket>((resolve, reject) => {
    ws.once('open', () =>
      ws.send(JSON.stringify({ t: 'hello', v: 1, device: device.deviceId, token: device.token, hb: 600 })),
    );
    ws.on('message', (d) => {
      const f = JSON.parse(d.toString()) as { t: string; id?: string; stream?: string; seq?: number };
      if (f.t === 'welcome') resolve(ws);
      else if (f.t === 'msg') {
        rx.onMessage(f.id!);
        ws.send(JSON.stringify({ t: 'ack', acks: { [f.stream!]: f.seq } }));
      } else if (f.t === 'error') reject(new Error(d.toString()));
    });
    setTimeout(() => reject(new Error('no welcome')), 15_000).unref();
  });
}

/** CPU seconds (user + system) a process used so far, from /proc (Linux; 100 ticks per second). */
function cpuSeconds(pid: number): number {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return Number.NaN;
  }
}

const pick = <T>(xs: readonly T[]): T => xs[Math.floor(Math.random() * xs.length)]!;
let seq = 0;

/**
 * One publish to a random device through a random node (or, with `--via holder`, through the
 * node the device is connected to: no bus hop); records its send time.
 */
async function publishOne(nodes: Node[], devices: string[], rx: Receiver): Promise<boolean> {
  const id = `b${++seq}`;
  rx.sentAt.set(id, performance.now());
  const d = Math.floor(Math.random() * devices.length);
  const node = VIA === 'holder' ? nodes[d % nodes.length]! : pick(nodes);
  const r = await api(node.url, '/v1/messages', { id, to: { device: devices[d]! }, data: { n: seq } });
  return r.status === 202;
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

/** Waits until deliveries stop growing (every accepted publish delivered), bounded. */
async function settle(rx: Receiver, accepted: number, timeoutMs = 10_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (rx.delivered < accepted && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
}

interface PhaseResult {
  accepted: number;
  delivered: number;
  perSecond: number;
  p50: number;
  p99: number;
}

/** What Redis served per accepted publish in one phase (see the file comment). */
interface RedisServed {
  readsPerMsg: number;
  scriptsPerMsg: number;
  commandsPerMsg: number;
  /** Calls by command (`INFO commandstats`, script-internal ones included), per accepted publish. */
  byCommand: Record<string, number>;
}

type Measured = PhaseResult & { cpuNodesUs: number; cpuRedisUs: number; redis?: RedisServed };

/** Redis's counters: read events, script calls (EVALSHA + EVAL), commands, calls by command. */
async function redisCounters(raw: Redis): Promise<[number, number, number, Record<string, number>]> {
  const info = await raw.info('all');
  const num = (re: RegExp) => Number(re.exec(info)?.[1] ?? 0);
  const byCommand: Record<string, number> = {};
  for (const m of info.matchAll(/cmdstat_([\w|]+):calls=(\d+)/g)) byCommand[m[1]!] = Number(m[2]);
  return [
    num(/total_reads_processed:(\d+)/),
    num(/cmdstat_evalsha:calls=(\d+)/) + num(/cmdstat_eval:calls=(\d+)/),
    num(/total_commands_processed:(\d+)/),
    byCommand,
  ];
}

function summary(rx: Receiver, accepted: number, ms: number): PhaseResult {
  const sorted = [...rx.samples].sort((a, b) => a - b);
  return {
    accepted,
    delivered: rx.samples.length,
    perSecond: Math.round((rx.samples.length / ms) * 1000),
    p50: Number(percentile(sorted, 50).toFixed(1)),
    p99: Number(percentile(sorted, 99).toFixed(1)),
  };
}

async function fixedRate(nodes: Node[], devices: string[], rx: Receiver): Promise<PhaseResult> {
  rx.samples = [];
  rx.delivered = 0;
  let accepted = 0;
  const inflight: Promise<void>[] = [];
  const start = performance.now();
  const total = Math.round((RATE * RATE_MS) / 1000);
  for (let i = 0; i < total; i++) {
    const due = start + (i * 1000) / RATE;
    const wait = due - performance.now();
    if (wait > 1) await new Promise((r) => setTimeout(r, wait));
    inflight.push(publishOne(nodes, devices, rx).then((ok) => void (ok && accepted++)));
  }
  await Promise.all(inflight);
  await settle(rx, accepted);
  return summary(rx, accepted, performance.now() - start);
}

async function saturation(nodes: Node[], devices: string[], rx: Receiver): Promise<PhaseResult> {
  rx.samples = [];
  rx.delivered = 0;
  let accepted = 0;
  const start = performance.now();
  const end = start + MAX_MS;
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (performance.now() < end) if (await publishOne(nodes, devices, rx)) accepted++;
    }),
  );
  const sentMs = performance.now() - start;
  await settle(rx, accepted);
  const r = summary(rx, accepted, sentMs);
  return { ...r, perSecond: Math.round((Math.min(rx.samples.length, accepted) / sentMs) * 1000) };
}

async function runSetup(name: string): Promise<Record<string, unknown>> {
  const [engine, count] = name.split('-') as [string, string];
  const n = Number(count);
  const dirs: string[] = [];
  let redis: RedisServer | undefined;
  let postgres: PostgresServer | undefined;
  const nodes: Node[] = [];
  const sockets: WebSocket[] = [];
  try {
    const extra: string[][] = [];
    if (engine === 'redis') {
      redis = await startRedis({ appendonly: true, args: ['--appendfsync', String(args.fsync)] });
      for (let i = 0; i < n; i++) extra.push(['--redis', redis.url, '--node-id', `bench${i}`]);
    } else if (engine === 'postgres') {
      // PostgreSQL's defaults: fsync and synchronous_commit on (a 202 means on disk). Its CPU is
      // spent in backend processes, not counted below.
      postgres = await startPostgres();
      const url = await postgres.freshDatabase();
      for (let i = 0; i < n; i++) extra.push(['--postgres', url, '--node-id', `bench${i}`]);
    } else {
      extra.push([]);
    }
    for (const e of extra) {
      const dir = mkdtempSync(join(tmpdir(), 'pushwire-bench-'));
      dirs.push(dir);
      nodes.push(await serve(e, dir));
    }
    const rx = new Receiver();
    const devices: { deviceId: string; token: string }[] = [];
    for (let i = 0; i < DEVICES; i++) {
      const r = await api<{ deviceId: string; token: string }>(
        nodes[i % nodes.length]!.url,
        '/v1/devices',
        {},
      );
      devices.push(r.body);
    }
    for (const [i, d] of devices.entries())
      sockets.push(await connectDevice(nodes[i % nodes.length]!.url, d, rx));
    const ids = devices.map((d) => d.deviceId);
    // Warm-up: connections, JIT, Redis scripts.
    for (let i = 0; i < 200; i++) await publishOne(nodes, ids, rx);
    await settle(rx, 200);
    // CPU per delivered message (nodes together, Redis): robust to a machine shared with others.
    const pids = [...nodes.map((x) => x.proc.pid!), ...(redis ? [redis.proc.pid!] : [])];
    const raw = redis ? new Redis(redis.url) : undefined;
    const measure = async (phase: () => Promise<PhaseResult>): Promise<Measured> => {
      const served = raw && (await redisCounters(raw));
      const before = pids.map(cpuSeconds);
      const result = await phase();
      const used = pids.map((pid, i) => cpuSeconds(pid) - before[i]!);
      const perMsg = (sec: number) => Math.round((sec / Math.max(1, result.delivered)) * 1e6);
      const nodesCpu = used.slice(0, nodes.length).reduce((a, b) => a + b, 0);
      const measured = {
        ...result,
        cpuNodesUs: perMsg(nodesCpu),
        cpuRedisUs: redis ? perMsg(used.at(-1)!) : 0,
      };
      if (!raw || !served) return measured;
      const now = await redisCounters(raw);
      // Less the INFO that took the first snapshot (one read, one command).
      const accepted = Math.max(1, result.accepted);
      const per = (i: 0 | 1 | 2) => Number(((now[i] - served[i] - (i === 1 ? 0 : 1)) / accepted).toFixed(2));
      const byCommand: Record<string, number> = {};
      for (const [name, calls] of Object.entries(now[3])) {
        const n = calls - (served[3][name] ?? 0) - (name === 'info' ? 1 : 0);
        if (n > 0) byCommand[name] = Number((n / accepted).toFixed(2));
      }
      const counts = { readsPerMsg: per(0), scriptsPerMsg: per(1), commandsPerMsg: per(2), byCommand };
      return { ...measured, redis: counts };
    };
    const rate = await measure(() => fixedRate(nodes, ids, rx));
    const max = await measure(() => saturation(nodes, ids, rx));
    raw?.disconnect();
    return { setup: name, rate, max, duplicates: rx.duplicates };
  } finally {
    for (const s of sockets) s.terminate();
    for (const node of nodes) if (node.proc.exitCode === null) process.kill(node.proc.pid!, 'SIGKILL');
    await redis?.stop();
    await postgres?.stop();
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  }
}

const results: Record<string, unknown>[] = [];
for (const setup of String(args.setups).split(',')) {
  const r = await runSetup(setup.trim());
  console.log(JSON.stringify(r));
  results.push(r);
}
const fsync = `appendfsync ${args.fsync}`;
console.log(
  `\n${cpus().length} CPUs (${cpus()[0]?.model ?? '?'}), ${DEVICES} devices, Redis setups with ${fsync}`,
);
console.log(
  '| setup | fixed rate: delivered/s | p50 ms | p99 ms | CPU µs/msg nodes + Redis | saturation: delivered/s | p50 ms | p99 ms | CPU µs/msg nodes + Redis |',
);
console.log('| --- | --- | --- | --- | --- | --- | --- | --- | --- |');
for (const r of results) {
  const rate = r.rate as Measured;
  const max = r.max as Measured;
  const cpu = (m: Measured) => `${m.cpuNodesUs} + ${m.cpuRedisUs}`;
  console.log(
    `| ${r.setup} | ${rate.perSecond} | ${rate.p50} | ${rate.p99} | ${cpu(rate)} | ${max.perSecond} | ${max.p50} | ${max.p99} | ${cpu(max)} |`,
  );
}
const served = results.filter((r) => (r.rate as Measured).redis);
if (served.length > 0) {
  console.log('\nRedis served per accepted publish (bus, acks and reads included):');
  console.log('| setup | phase | reads (≈ round trips) | script calls | commands (in scripts too) |');
  console.log('| --- | --- | --- | --- | --- |');
  for (const r of served) {
    for (const phase of ['rate', 'max'] as const) {
      const m = (r[phase] as Measured).redis!;
      const label = phase === 'rate' ? 'fixed rate' : 'saturation';
      console.log(`| ${r.setup} | ${label} | ${m.readsPerMsg} | ${m.scriptsPerMsg} | ${m.commandsPerMsg} |`);
    }
  }
}
process.exit(0);
