import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { createConnection } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { freePort } from './redis.js';

export interface PostgresServer {
  /** `postgres://pushwire@127.0.0.1:PORT/pushwire` (trust authentication on loopback). */
  url: string;
  port: number;
  dir: string;
  /** The current postmaster process (a new one after `restart()`). */
  readonly proc: ChildProcess;
  /** A URL of a new, empty database on this server (one per test store). */
  freshDatabase(): Promise<string>;
  /** Kills the postmaster (SIGKILL, by PID) and removes the temp dir. */
  stop(): Promise<void>;
  /** Kills the postmaster by PID (SIGKILL: a crash; committed data survives through the WAL). */
  kill(signal?: NodeJS.Signals): Promise<void>;
  /** Starts it again on the same port and data dir (crash recovery replays the WAL). */
  start(): Promise<void>;
  restart(): Promise<void>;
}

/** The directory of PostgreSQL's server binaries: $PG_BIN, else the newest /usr/lib/postgresql/N/bin. */
export function postgresBin(): string | undefined {
  if (process.env.PG_BIN) return process.env.PG_BIN;
  const root = '/usr/lib/postgresql';
  if (!existsSync(root)) return undefined;
  const versions = readdirSync(root)
    .filter((v) => existsSync(join(root, v, 'bin', 'initdb')))
    .sort((a, b) => Number(b) - Number(a));
  return versions[0] && join(root, versions[0], 'bin');
}

/** Servers still running: killed when the test process exits without stopping them. */
const live = new Set<ChildProcess>();
process.once('exit', () => {
  for (const child of live) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
});

/** PostgreSQL refuses to run as root: as root, run it as the `postgres` (or `nobody`) account. */
function runAs(): { uid: number; gid: number } | undefined {
  if (process.getuid?.() !== 0) return undefined;
  for (const name of ['postgres', 'nobody']) {
    try {
      const uid = Number(execFileSync('id', ['-u', name], { encoding: 'utf8' }));
      const gid = Number(execFileSync('id', ['-g', name], { encoding: 'utf8' }));
      if (Number.isInteger(uid) && Number.isInteger(gid)) return { uid, gid };
    } catch {}
  }
  throw new Error('running as root and no postgres or nobody account to run PostgreSQL as');
}

/** Resolves true once the port accepts a TCP connection. */
function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createConnection({ host: '127.0.0.1', port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

let databases = 0;

/**
 * Starts a private PostgreSQL (initdb into a temp dir, then the `postgres` binary in the
 * foreground, so this process owns its PID) on a free loopback port, with the durability settings
 * of production (`fsync`, `synchronous_commit` on). Resolves once it accepts queries.
 *
 * @example
 * const pg = await startPostgres();
 * const store = await PostgresStore.connect({ url: await pg.freshDatabase() });
 * await pg.restart(); // a crash and recovery: committed data survives
 * await pg.stop();
 */
export async function startPostgres(): Promise<PostgresServer> {
  const bin = postgresBin();
  if (!bin)
    throw new Error('PostgreSQL server binaries not found (apt-get install postgresql; or set PG_BIN)');
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'pushwire-pg-'));
  const data = join(dir, 'data');
  const as = runAs();
  if (as) chownSync(dir, as.uid, as.gid);
  execFileSync(
    join(bin, 'initdb'),
    ['-D', data, '-U', 'pushwire', '--auth=trust', '--encoding=UTF8', '--locale=C', '-N'],
    { stdio: 'pipe', ...(as && { uid: as.uid, gid: as.gid }), cwd: dir },
  );
  let proc: ChildProcess | undefined;
  let output = '';
  const args = [
    '-D',
    data,
    '-p',
    String(port),
    '-c',
    'listen_addresses=127.0.0.1',
    '-c',
    `unix_socket_directories=${dir}`,
    '-c',
    'max_connections=200',
    '-c',
    'shared_buffers=32MB',
  ];

  const start = async () => {
    // A postmaster killed with SIGKILL leaves backends that exit within moments; retry meanwhile.
    const deadline = Date.now() + 20_000;
    for (;;) {
      output = '';
      const child = spawn(join(bin, 'postgres'), args, {
        stdio: ['ignore', 'pipe', 'pipe'],
        ...(as && { uid: as.uid, gid: as.gid }),
        cwd: dir,
      });
      proc = child;
      live.add(child);
      child.once('exit', () => live.delete(child));
      child.stdout?.on('data', (d) => {
        output += d;
      });
      child.stderr?.on('data', (d) => {
        output += d;
      });
      while (Date.now() < deadline && child.exitCode === null && !/ready to accept connections/.test(output))
        await new Promise((r) => setTimeout(r, 50));
      if (child.exitCode === null && (await accepts(port))) return;
      if (child.exitCode === null) await kill();
      if (Date.now() > deadline) throw new Error(`postgres did not start:\n${output}`);
      await new Promise((r) => setTimeout(r, 200));
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
  const url = `postgres://pushwire@127.0.0.1:${port}/postgres`;
  const admin = async (sql: string) => {
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    try {
      await client.query(sql);
    } finally {
      await client.end();
    }
  };
  return {
    url,
    port,
    dir,
    get proc() {
      return proc!;
    },
    async freshDatabase() {
      const name = `pw_test_${process.pid}_${++databases}`;
      await admin(`CREATE DATABASE ${name}`);
      return `postgres://pushwire@127.0.0.1:${port}/${name}`;
    },
    kill,
    start,
    restart: async () => {
      await kill();
      await start();
    },
    stop: async () => {
      await kill();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
