import { rmSync, writeFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import type { ServerOptions } from '@pushwire/server';
import { connectPacket, publishPacket } from '../lib/mqtt.js';
import {
  entry,
  freePort,
  MOSQUITTO,
  SERVER_CORE,
  spawnPinned,
  stopProcess,
  TMP,
  waitForOutput,
} from '../lib/proc.js';
import { benchPayload, sleep, wallMs } from '../lib/util.js';
import type { ClientSpec, Proto } from '../loadgen/messages.js';
import { API_KEY, copyPool, type DevicePool, TOPIC } from './devices.js';
import { startPushwireProcess } from './pushwire-process.js';

export type PeerName = 'pushwire' | 'ws' | 'socketio' | 'mosquitto' | 'mosquitto-dup';
export const ALL_PEERS: PeerName[] = ['pushwire', 'ws', 'socketio', 'mosquitto'];

export const PEER_LABEL: Record<PeerName, string> = {
  pushwire: 'Pushwire',
  ws: 'ws',
  socketio: 'Socket.IO',
  mosquitto: 'Mosquitto',
  'mosquitto-dup': 'Mosquitto (allow_duplicate_messages)',
};

export interface PeerOptions {
  pool?: DevicePool;
  /** Pushwire ServerOptions overrides (admissionRate, …). */
  pushwire?: Partial<ServerOptions>;
  /** Node flags for the Pushwire process (e.g. --cpu-prof). */
  nodeFlags?: string[];
  /** Scaled keep-alive interval for the idle-cost measurement (ms). */
  pingMs?: number;
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
  kill9(): Promise<void>;
  /** Starts the server again on the same port and data; resolves with the spawn time (wall ms). */
  restart(): Promise<{ spawnedAt: number; listeningAt: number }>;
  stop(): Promise<void>;
}

const HOST = '127.0.0.1';

// ── Pushwire ───────────────────────────────────────────────────────────────────────────────────

async function startPushwire(o: PeerOptions): Promise<Peer> {
  if (!o.pool) throw new Error('pushwire needs a device pool');
  const pool = o.pool;
  const dataDir = copyPool(pool);
  const port = await freePort();
  const cfg = { dataDir, port, apiKey: API_KEY, options: o.pushwire ?? {} };
  let p = await startPushwireProcess(cfg, o.nodeFlags);
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
    name: 'pushwire',
    proto: 'pushwire',
    host: HOST,
    port,
    path: '/v1/connect',
    topic: TOPIC,
    pid: () => p.proc.pid!,
    clients: (n) => {
      if (n > pool.devices.length) throw new Error(`pool has ${pool.devices.length} devices, need ${n}`);
      return pool.devices.slice(0, n);
    },
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
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

// ── ws and Socket.IO ──────────────────────────────────────────────────────────────────────────

async function startNodePeer(name: 'ws' | 'socketio', o: PeerOptions): Promise<Peer> {
  const port = await freePort();
  const spawnIt = async () => {
    const proc = spawnPinned(
      process.execPath,
      [entry(name === 'ws' ? 'ws-server' : 'socketio-server'), '--port', String(port)],
      {
        core: SERVER_CORE,
        env: { ...process.env, ...(o.pingMs && { BENCH_PING_MS: String(o.pingMs) }) },
      },
    );
    await waitForOutput(proc, (out) => /listening on \d+/.test(out), 15_000, `${name} server`);
    proc.stdout?.resume();
    proc.stderr?.resume();
    return proc;
  };
  let proc = await spawnIt();
  const base = `http://${HOST}:${port}`;
  return {
    name,
    proto: name,
    host: HOST,
    port,
    path: name === 'ws' ? '/' : '/socket.io/?EIO=4&transport=websocket',
    topic: '',
    pid: () => proc.pid!,
    clients: (n) => Array.from({ length: n }, (_, i) => ({ id: String(i) })),
    async broadcast(r, bytes) {
      const t0 = wallMs();
      const res = await fetch(`${base}/broadcast`, {
        method: 'POST',
        body: JSON.stringify(benchPayload(r, bytes, t0)),
      });
      await res.text();
      return t0;
    },
    async generate(rate, durationMs, payloadBytes) {
      const res = await fetch(`${base}/generate`, {
        method: 'POST',
        body: JSON.stringify({ rate, durationMs, payloadBytes }),
      });
      return ((await res.json()) as { sent: number }).sent;
    },
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

async function waitForPort(port: number, timeoutMs: number): Promise<void> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = connect({ host: HOST, port });
      s.once('connect', () => {
        s.destroy();
        resolve(true);
      });
      s.once('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > end) throw new Error(`nothing listens on ${port} after ${timeoutMs} ms`);
    await sleep(25);
  }
}

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
      return startPushwire(o);
    case 'ws':
    case 'socketio':
      return startNodePeer(name, o);
    case 'mosquitto':
    case 'mosquitto-dup':
      return startMosquitto(name === 'mosquitto-dup');
  }
}
