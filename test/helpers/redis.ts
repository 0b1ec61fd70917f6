import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createConnection, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface RedisOptions {
  /** AOF with `appendfsync always`, so a restart keeps every acknowledged write. */
  appendonly?: boolean;
  /** Working directory (AOF files); a temp dir removed by `stop()` when not given. */
  dir?: string;
  /** Runs the server as a one-node Redis Cluster owning every slot (cross-slot access then fails). */
  cluster?: boolean;
  /** More redis-server arguments, e.g. `['--rename-command', 'CONFIG', '']`. */
  args?: string[];
}

export interface RedisServer {
  url: string;
  port: number;
  dir: string;
  /** The current redis-server process (a new one after `restart()`). */
  readonly proc: ChildProcess;
  /** Kills the server (SIGKILL, by PID) and removes the temp dir it created. */
  stop(): Promise<void>;
  /** Kills the server by PID without cleanup; `start()` brings it back on the same port and dir. */
  kill(signal?: NodeJS.Signals): Promise<void>;
  start(): Promise<void>;
  /** `kill()` then `start()`: same port, same dir, so AOF data comes back. */
  restart(): Promise<void>;
}

const REDIS_SERVER = process.env.REDIS_SERVER ?? '/usr/bin/redis-server';

/** Servers still running: killed when the test process exits without stopping them (a failed hook). */
const live = new Set<ChildProcess>();
process.once('exit', () => {
  for (const child of live) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
});

/** A free TCP port on 127.0.0.1 (redis-server does not accept `--port 0`). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
  });
}

/** Sends PING and resolves true on `+PONG` within `timeoutMs`. */
function ping(port: number, timeoutMs = 500): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createConnection({ host: '127.0.0.1', port });
    let reply = '';
    const done = (ok: boolean) => {
      clearTimeout(timer);
      socket.destroy();
      resolve(ok);
    };
    const timer = setTimeout(() => done(false), timeoutMs);
    socket.on('connect', () => socket.write('PING\r\n'));
    socket.on('data', (chunk) => {
      reply += chunk.toString();
      if (reply.includes('\r\n')) done(reply.startsWith('+PONG'));
    });
    socket.on('error', () => done(false));
  });
}

/** Sends one inline command and resolves with the raw reply (for cluster setup). */
function command(port: number, line: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = createConnection({ host: '127.0.0.1', port });
    let reply = '';
    socket.setTimeout(2000, () => {
      socket.destroy();
      reject(new Error(`redis ${line}: timeout`));
    });
    socket.on('connect', () => socket.write(`${line}\r\n`));
    socket.on('data', (chunk) => {
      reply += chunk.toString();
      if (reply.includes('\r\n')) {
        socket.destroy();
        resolve(reply);
      }
    });
    socket.on('error', reject);
  });
}

async function waitFor(check: () => Promise<boolean>, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`redis-server: ${what} within ${timeoutMs} ms`);
}

/**
 * Starts a private redis-server on a free loopback port (never the shared one on 6379), with no RDB
 * snapshots and, when asked, AOF fsynced on every write. Resolves once it answers PING.
 *
 * @example
 * const redis = await startRedis({ appendonly: true });
 * const store = await RedisStore.connect({ url: redis.url });
 * await redis.restart(); // same port and dir: AOF data survives
 * await redis.stop();
 */
export async function startRedis(opts: RedisOptions = {}): Promise<RedisServer> {
  const port = await freePort();
  const ownDir = opts.dir === undefined;
  const dir = opts.dir ?? mkdtempSync(join(tmpdir(), 'pushwire-redis-'));
  let proc: ChildProcess | undefined;
  let output = '';

  const args = ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--dir', dir];
  args.push('--appendonly', opts.appendonly ? 'yes' : 'no');
  if (opts.appendonly) args.push('--appendfsync', 'always');
  if (opts.args) args.push(...opts.args);
  if (opts.cluster) {
    args.push('--cluster-enabled', 'yes', '--cluster-config-file', `nodes-${port}.conf`);
    // A lone node does not know its own address (no peer told it): announce it for clients.
    args.push('--cluster-announce-ip', '127.0.0.1');
  }

  const start = async () => {
    output = '';
    const child = spawn(REDIS_SERVER, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    proc = child;
    live.add(child);
    child.once('exit', () => live.delete(child));
    child.stdout?.on('data', (d) => {
      output += d;
    });
    child.stderr?.on('data', (d) => {
      output += d;
    });
    const exited = new Promise<boolean>((resolve) => child.once('exit', () => resolve(false)));
    await waitFor(
      () => Promise.race([exited, ping(port)]).then((ok) => ok || child.exitCode !== null),
      'no PONG',
    );
    if (child.exitCode !== null) throw new Error(`redis-server exited (${child.exitCode}):\n${output}`);
    if (opts.cluster) {
      await command(port, 'CLUSTER ADDSLOTSRANGE 0 16383');
      await waitFor(
        async () => (await command(port, 'CLUSTER INFO')).includes('cluster_state:ok'),
        'cluster ok',
      );
    }
  };

  const kill = async (signal: NodeJS.Signals = 'SIGKILL') => {
    const child = proc;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    process.kill(child.pid!, signal);
    await exited;
  };

  await start();
  return {
    url: `redis://127.0.0.1:${port}`,
    port,
    dir,
    get proc() {
      return proc!;
    },
    kill,
    start,
    restart: async () => {
      await kill();
      await start();
    },
    stop: async () => {
      await kill();
      if (ownDir) rmSync(dir, { recursive: true, force: true });
    },
  };
}
