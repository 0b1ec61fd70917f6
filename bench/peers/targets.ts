import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import type { ServerOptions } from '@pushwire/server';
import { connectPacket, publishPacket } from '../lib/mqtt.js';
import {
  entry,
  freePort,
  MOSQUITTO,
  procSample,
  SERVER_CORE,
  spawnPinned,
  stopProcess,
  TMP,
  waitForOutput,
} from '../lib/proc.js';
import { benchPayload, wallMs } from '../lib/util.js';
import type { ClientSpec, Proto } from '../loadgen/messages.js';
import { API_KEY, copyPool, type DevicePool, registerDevices, TOPIC } from './devices.js';
import { startNats } from './nats.js';
import { waitForPort } from './net.js';
import { startPushwireProcess } from './pushwire-process.js';
import { startPrivateRedis } from './redis.js';

export type PeerName =
  | 'pushwire'
  | 'pushwire-redis'
  | 'ws'
  | 'socketio'
  | 'mosquitto'
  | 'mosquitto-dup'
  | 'fastify'
  | 'nats';
/** The default `--peers`: each scenario takes the ones it measures (see SCENARIO_PEERS). */
export const ALL_PEERS: PeerName[] = ['pushwire', 'ws', 'socketio', 'mosquitto', 'fastify', 'nats'];
/** Peers of the connection scenarios (idle, storm): the Fastify floor and NATS are publish peers. */
export const CONNECTION_PEERS: PeerName[] = ['pushwire', 'ws', 'socketio', 'mosquitto'];

export const PEER_LABEL: Record<PeerName, string> = {
  pushwire: 'Pushwire',
  'pushwire-redis': 'Pushwire on Redis',
  ws: 'ws',
  socketio: 'Socket.IO',
  mosquitto: 'Mosquitto',
  'mosquitto-dup': 'Mosquitto (allow_duplicate_messages)',
  fastify: 'Fastify + ws, stores nothing (HTTP floor)',
  nats: 'NATS JetStream',
};

export interface PeerOptions {
  pool?: DevicePool;
  /** Pushwire ServerOptions overrides (admissionRate, …). */
  pushwire?: Partial<ServerOptions>;
  /** Node flags for the Pushwire process (e.g. --cpu-prof). */
  nodeFlags?: string[];
  /** Scaled keep-alive interval for the idle-cost measurement (ms). */
  pingMs?: number;
  /** pushwire-redis: devices to register on the fresh Redis store. */
  devices?: number;
}

export interface Peer {
  name: PeerName;
  proto: Proto;
  host: string;
  port: number;
  path: string;
  /** Topic clients follow for broadcasts (Pushwire topic / MQTT topic). */
  topic: string;
  pid(): number;
  clients(n: number): ClientSpec[];
  /** Sends one broadcast of round `r`; resolves with the send time (wall ms). */
  broadcast(r: number, payloadBytes: number): Promise<number>;
  /** In-process unicast generator (ws, Socket.IO), or undefined when an external publisher is used. */
  generate?(rate: number, durationMs: number, payloadBytes: number): Promise<number>;
  /** Counters of the peer's backing store (Pushwire on Redis: commands and read events). */
  storeStats?(): Promise<{ commands: number; reads: number }>;
  /** CPU time (ms) of the peer's backing store process, when it has one. */
  storeCpuMs?(): number;
  /** Runs a full GC in the server (Node peers, started with --expose-gc); absent for the others. */
  gc?(): Promise<void>;
  kill9(): Promise<void>;
  /** Starts the server again on the same port and data; resolves with the spawn time (wall ms). */
  restart(): Promise<{ spawnedAt: number; listeningAt: number }>;
  stop(): Promise<void>;
}

const HOST = '127.0.0.1';

// ── Pushwire ───────────────────────────────────────────────────────────────────────────────────

/** Asks a bench peer started with --expose-gc for a full GC (SIGUSR2) and waits for its answer. */
export async function gcPeer(proc: ChildProcess): Promise<void> {
  const done = waitForOutput(proc, (out) => /gc done \d+/.test(out), 10_000, 'gc');
  proc.kill('SIGUSR2');
  await done;
}

async function startPushwire(o: PeerOptions, onRedis: boolean): Promise<Peer> {
  let devices: ClientSpec[];
  let dataDir: string;
  let redis: Awaited<ReturnType<typeof startPrivateRedis>> | undefined;
  if (onRedis) {
    redis = await startPrivateRedis();
    dataDir = mkdtempSync(join(TMP, 'pw-data-'));
    devices = [];
  } else {
    if (!o.pool) throw new Error('pushwire needs a device pool');
    dataDir = copyPool(o.pool);
    devices = o.pool.devices;
  }
  const port = await freePort();
  const cfg = {
    dataDir,
    port,
    apiKey: API_KEY,
    options: o.pushwire ?? {},
    ...(redis && { redis: redis.url }),
  };
  let p = await startPushwireProcess(cfg, o.nodeFlags).catch(async (err: unknown) => {
    await redis?.stop();
    throw err;
  });
  if (redis) devices = await registerDevices(p.url, o.devices ?? 0);
  const post = async (path: string, body: unknown) => {
    const res = await fetch(`${p.url}${path}`, {
      method: 'POST',
      headers: { authorization: `Bearer ${API_KEY}`, 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    const text = await res.text();
    if (res.status !== 202) throw new Error(`publish failed: ${res.status} ${text}`);
  };
  return {
    name: onRedis ? 'pushwire-redis' : 'pushwire',
    proto: 'pushwire',
    host: HOST,
    port,
    path: '/v1/connect',
    // Devices registered on Redis follow no topic (unicast only).
    topic: onRedis ? '' : TOPIC,
    pid: () => p.proc.pid!,
    clients: (n) => {
      if (n > devices.length) throw new Error(`pool has ${devices.length} devices, need ${n}`);
      return devices.slice(0, n);
    },
    gc: () => gcPeer(p.proc),
    ...(redis && {
      storeStats: redis.stats,
      storeCpuMs: () => procSample(redis.pid)?.cpuMs ?? 0,
    }),
    async broadcast(r, bytes) {
      const t0 = wallMs();
      await post('/v1/messages', { to: { topic: TOPIC }, data: benchPayload(r, bytes, t0) });
      return t0;
    },
    async kill9() {
      await stopProcess(p.proc, 'SIGKILL');
    },
    async restart() {
      const spawnedAt = wallMs();
      p = await startPushwireProcess(cfg, o.nodeFlags);
      return { spawnedAt, listeningAt: wallMs() };
    },
    async stop() {
      await p.stop();
      await redis?.stop();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

// ── ws and Socket.IO ──────────────────────────────────────────────────────────────────────────

const NODE_PEER_ENTRY = { ws: 'ws-server', socketio: 'socketio-server', fastify: 'fastify-server' } as const;

async function startNodePeer(name: 'ws' | 'socketio' | 'fastify', o: PeerOptions): Promise<Peer> {
  const port = await freePort();
  const spawnIt = async () => {
    const proc = spawnPinned(
      process.execPath,
      ['--expose-gc', entry(NODE_PEER_ENTRY[name]), '--port', String(port)],
      {
        core: SERVER_CORE,
        env: {
          ...process.env,
          BENCH_API_KEY: API_KEY,
          ...(o.pingMs && { BENCH_PING_MS: String(o.pingMs) }),
        },
      },
    );
    await waitForOutput(proc, (out) => /listening on \d+/.test(out), 15_000, `${name} server`);
    proc.stdout?.resume();
    proc.stderr?.resume();
    return proc;
  };
  let proc = await spawnIt();
  const base = `http://${HOST}:${port}`;
  const fastify = name === 'fastify';
  return {
    name,
    proto: name === 'socketio' ? 'socketio' : 'ws',
    host: HOST,
    port,
    path: { ws: '/', socketio: '/socket.io/?EIO=4&transport=websocket', fastify: '/ws?id={id}' }[name],
    topic: '',
    pid: () => proc.pid!,
    clients: (n) => Array.from({ length: n }, (_, i) => ({ id: String(i) })),
    gc: () => gcPeer(proc),
    async broadcast(r, bytes) {
      const t0 = wallMs();
      const payload = benchPayload(r, bytes, t0);
      const res = fastify
        ? await fetch(`${base}/v1/messages`, {
            method: 'POST',
            headers: { authorization: `Bearer ${API_KEY}`, 'content-type': 'application/json' },
            body: JSON.stringify({ to: { topic: TOPIC }, data: payload }),
          })
        : await fetch(`${base}/broadcast`, { method: 'POST', body: JSON.stringify(payload) });
      await res.text();
      return t0;
    },
    // The Fastify floor is published to over HTTP, like Pushwire; ws and Socket.IO generate in-process.
    ...(!fastify && {
      generate: async (rate: number, durationMs: number, payloadBytes: number) => {
        const res = await fetch(`${base}/generate`, {
          method: 'POST',
          body: JSON.stringify({ rate, durationMs, payloadBytes }),
        });
        return ((await res.json()) as { sent: number }).sent;
      },
    }),
    async kill9() {
      await stopProcess(proc, 'SIGKILL');
    },
    async restart() {
      const spawnedAt = wallMs();
      proc = await spawnIt();
      return { spawnedAt, listeningAt: wallMs() };
    },
    stop: () => stopProcess(proc),
  };
}

// ── Mosquitto ─────────────────────────────────────────────────────────────────────────────────

export const MQTT_TOPIC = 'bench/all';

async function startMosquitto(dup: boolean): Promise<Peer> {
  const port = await freePort();
  const conf = join(TMP, `mosquitto-${process.pid}-${port}.conf`);
  writeFileSync(
    conf,
    [
      `listener ${port} ${HOST}`,
      'allow_anonymous true',
      'persistence false',
      'max_connections -1',
      'log_dest stderr',
      'log_type error',
      'log_type warning',
      ...(dup ? ['allow_duplicate_messages true'] : []),
      '',
    ].join('\n'),
  );
  const spawnIt = async () => {
    if (!MOSQUITTO) throw new Error('mosquitto is not installed: run bash bench/setup.sh');
    const proc = spawnPinned(MOSQUITTO, ['-c', conf], { core: SERVER_CORE });
    proc.stdout?.resume();
    proc.stderr?.resume();
    await waitForPort(port, 10_000);
    return proc;
  };
  let proc = await spawnIt();
  let pub: Socket | undefined;
  const publisher = async (): Promise<Socket> => {
    if (pub && !pub.destroyed) return pub;
    const s = connect({ host: HOST, port });
    s.setNoDelay(true);
    s.on('error', () => {});
    await new Promise<void>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error('mosquitto: no CONNACK')), 5000);
      s.once('connect', () => s.write(connectPacket(`bench-pub-${process.pid}`, 600)));
      s.once('data', () => {
        clearTimeout(t);
        resolve();
      });
    });
    pub = s;
    return s;
  };
  return {
    name: dup ? 'mosquitto-dup' : 'mosquitto',
    proto: 'mqtt',
    host: HOST,
    port,
    path: '',
    topic: MQTT_TOPIC,
    pid: () => proc.pid!,
    clients: (n) => Array.from({ length: n }, (_, i) => ({ id: String(i) })),
    async broadcast(r, bytes) {
      const s = await publisher();
      const t0 = wallMs();
      s.write(publishPacket(MQTT_TOPIC, JSON.stringify(benchPayload(r, bytes, t0))));
      return t0;
    },
    async kill9() {
      pub?.destroy();
      pub = undefined;
      await stopProcess(proc, 'SIGKILL');
    },
    async restart() {
      const spawnedAt = wallMs();
      proc = await spawnIt();
      return { spawnedAt, listeningAt: wallMs() };
    },
    async stop() {
      pub?.destroy();
      await stopProcess(proc);
      rmSync(conf, { force: true });
    },
  };
}

export function startPeer(name: PeerName, o: PeerOptions = {}): Promise<Peer> {
  switch (name) {
    case 'pushwire':
    case 'pushwire-redis':
      return startPushwire(o, name === 'pushwire-redis');
    case 'ws':
    case 'socketio':
    case 'fastify':
      return startNodePeer(name, o);
    case 'nats':
      return startNats();
    case 'mosquitto':
    case 'mosquitto-dup':
      return startMosquitto(name === 'mosquitto-dup');
  }
}
