import type { ChildProcess } from 'node:child_process';
import { createClient, memoryStorage, type PushwireClient } from '@pushwire/client';
import { Collector } from '../helpers/collector.js';
import { startPostgres } from '../helpers/postgres.js';
import { type RedisOptions, startRedis } from '../helpers/redis.js';
import { http, sleep, spawnServer, tempDir, until } from '../helpers/server.js';

/** The shared engines a cluster runs on: the tests that kill nodes or the engine run on each. */
export type EngineKind = 'redis' | 'postgres';

/** Engines whose server binaries are installed here (PostgreSQL is skipped without them). */
export const CLUSTER_ENGINES: EngineKind[] = ['redis', 'postgres'];

/** The engine's server process, as the tests drive it. */
export interface EngineServer {
  url: string;
  /** Kills it by PID (SIGKILL: a crash). */
  kill(): Promise<void>;
  /** Starts it again on the same port and data (after `kill`). */
  start(): Promise<void>;
  stop(): Promise<void>;
}

/** One `pushwire serve --redis` (or `--postgres`) child process. */
export interface Node {
  id: string;
  url: string;
  proc: ChildProcess;
  output(): string;
  alive: boolean;
}

export interface Cluster {
  kind: EngineKind;
  /** Redis, or PostgreSQL (with AOF / fsync on: a restart keeps every acknowledged write). */
  engine: EngineServer;
  nodes: Node[];
  /** Live nodes' URLs. */
  alive(): string[];
  /** `kill -9` of a node, by PID; resolves once it exited. */
  kill(node: Node): Promise<void>;
  /** Kills every node and the engine, removes temp dirs. */
  stop(): Promise<void>;
}

/**
 * A real Redis (or PostgreSQL) on a free port and `n` real `pushwire serve --redis URL` (or
 * `--postgres URL`: store on PostgreSQL, bus on LISTEN/NOTIFY) processes on loopback ports, each
 * with its own node id; every node accepts the test API key.
 */
export async function startCluster(
  n: number,
  redisOpts: RedisOptions = {},
  kind: EngineKind = 'redis',
): Promise<Cluster> {
  const engine: EngineServer = kind === 'redis' ? await startRedis(redisOpts) : await startPostgres();
  const flag = kind === 'redis' ? '--redis' : '--postgres';
  const dirs: (() => void)[] = [];
  const nodes: Node[] = [];
  const kill = async (node: Node) => {
    if (!node.alive) return;
    node.alive = false;
    const exited = new Promise((r) => node.proc.once('exit', r));
    if (node.proc.exitCode === null && node.proc.signalCode === null) process.kill(node.proc.pid!, 'SIGKILL');
    else return;
    await exited;
  };
  const cluster: Cluster = {
    kind,
    engine,
    nodes,
    alive: () => nodes.filter((x) => x.alive).map((x) => x.url),
    kill,
    stop: async () => {
      await Promise.all(nodes.map(kill));
      await engine.stop();
      for (const d of dirs) d();
    },
  };
  try {
    const started = await Promise.all(
      Array.from({ length: n }, (_, i) => {
        const { dir, cleanup } = tempDir('pushwire-node-');
        dirs.push(cleanup);
        return spawnServer(dir, 0, [flag, engine.url, '--node-id', `node${i}`]);
      }),
    );
    started.forEach((s, i) => {
      nodes.push({ id: `node${i}`, url: s.url, proc: s.proc, output: s.output, alive: true });
    });
  } catch (err) {
    await cluster.stop();
    throw err;
  }
  return cluster;
}

/** A device app: an SDK client (server list `urls`) whose callback counts what it saw. */
export interface App {
  deviceId: string;
  token: string;
  client: PushwireClient;
  seen: Collector;
  /** Connection states the client went through, in order. */
  states: string[];
}

export function openApp(
  creds: { deviceId: string; token: string },
  urls: string[],
  more: { heartbeat?: { interval: number; pongTimeout: number } } = {},
): App {
  const seen = new Collector();
  const client = createClient({
    url: urls,
    credentials: creds,
    storage: memoryStorage(),
    backoff: { initial: 200, max: 2000 },
    ...more,
  });
  const states: string[] = [];
  client.on('message', seen.onMessage);
  client.on('state', (s) => states.push(s.to));
  client.on('error', () => {});
  return { ...creds, client, seen, states };
}

/**
 * Publishes until the message is acknowledged (202), retrying with the same id on another live
 * node after a network error or a 503, as a publisher with an idempotency key would. Resolves
 * true when accepted within `deadlineMs`.
 */
export async function publishUntilAccepted(
  urls: () => string[],
  body: Record<string, unknown> & { id: string },
  deadlineMs = 15_000,
): Promise<{ accepted: boolean; attempts: number; statuses: number[] }> {
  const end = Date.now() + deadlineMs;
  const statuses: number[] = [];
  for (let attempt = 0; Date.now() < end; attempt++) {
    const live = urls();
    const url = live[Math.floor(Math.random() * live.length)];
    if (url === undefined) break;
    try {
      const r = await http(url, 'POST', '/v1/messages', body);
      statuses.push(r.status);
      if (r.status === 202) return { accepted: true, attempts: attempt + 1, statuses };
      if (r.status !== 503) throw new Error(`publish ${r.status}: ${JSON.stringify(r.body)}`);
    } catch (err) {
      if (err instanceof Error && err.message.startsWith('publish ')) throw err;
      statuses.push(0); // connection refused or reset: the node died
    }
    await sleep(100);
  }
  return { accepted: false, attempts: statuses.length, statuses };
}

/** Picks one element at random. */
export const pick = <T>(xs: readonly T[]): T => xs[Math.floor(Math.random() * xs.length)]!;

/**
 * Barrier for "nothing more arrived": a marker (id `mk-…`) on each app's own stream and on each
 * given topic, published after everything else; streams are delivered in order, so once every app
 * has the markers of its streams, any extra copy on them has arrived before. Resolves with the
 * marker ids (a {@link tally} on the sent ids leaves them out).
 */
export async function markStreams(
  urls: () => string[],
  apps: readonly App[],
  topics: Record<string, readonly App[]> = {},
  timeoutMs = 30_000,
): Promise<Set<string>> {
  const want = new Map<App, string[]>(apps.map((a) => [a, [`mk-${a.deviceId}`]]));
  const marks: { id: string; to: Record<string, string> }[] = apps.map((a) => ({
    id: `mk-${a.deviceId}`,
    to: { device: a.deviceId },
  }));
  for (const [topic, followers] of Object.entries(topics)) {
    marks.push({ id: `mk-t-${topic}`, to: { topic } });
    for (const a of followers) want.get(a)?.push(`mk-t-${topic}`);
  }
  for (const m of marks) {
    const r = await publishUntilAccepted(urls, { ...m, data: { marker: true } });
    if (!r.accepted) throw new Error(`marker ${m.id} not accepted: ${r.statuses.join(',')}`);
  }
  await until(() => apps.every((a) => a.seen.has(want.get(a)!)), timeoutMs, 'every marker');
  return new Set(marks.map((m) => m.id));
}
