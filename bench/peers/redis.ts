/**
 * A private redis-server for "Pushwire on Redis": a free port, AOF on with `appendfsync always`
 * (every write fsync'd before Redis answers, as durable as SQLite's commit), its files in a temp
 * dir on the same disk as Pushwire's SQLite data, pinned to the server core (the machine has two
 * cores: one for servers, one for the load generator).
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { type RedisServer, startRedis } from '../../test/helpers/redis.js';
import { HAS_TASKSET, SERVER_CORE, TMP } from '../lib/proc.js';

export interface PrivateRedis {
  url: string;
  pid: number;
  /** Counters of `INFO stats`: commands processed and read events (a pipelined batch is one read). */
  stats(): Promise<{ commands: number; reads: number }>;
  stop(): Promise<void>;
}

export async function startPrivateRedis(): Promise<PrivateRedis> {
  const dir = mkdtempSync(join(TMP, 'redis-'));
  let redis: RedisServer;
  try {
    redis = await startRedis({ appendonly: true, dir, args: ['--appendfsync', 'always'] });
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  if (HAS_TASKSET && redis.proc.pid) {
    try {
      execFileSync('taskset', ['-pc', String(SERVER_CORE), String(redis.proc.pid)], { stdio: 'ignore' });
    } catch {}
  }
  return {
    url: redis.url,
    pid: redis.proc.pid!,
    stats: () => infoStats(redis.port),
    async stop() {
      await redis.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** `INFO stats` over a fresh connection (its own command and read count 1 each). */
function infoStats(port: number): Promise<{ commands: number; reads: number }> {
  return new Promise((resolve, reject) => {
    const sock = connect({ host: '127.0.0.1', port });
    let text = '';
    const timer = setTimeout(() => {
      sock.destroy();
      reject(new Error('redis INFO: no answer'));
    }, 5000);
    sock.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    sock.on('data', (d: Buffer) => {
      text += d.toString('latin1');
      const head = /^\$(\d+)\r\n/.exec(text);
      if (!head || text.length < head[0].length + Number(head[1]) + 2) return;
      clearTimeout(timer);
      sock.destroy();
      const num = (k: string) => Number(new RegExp(`\r\n${k}:(\\d+)`).exec(text)?.[1] ?? Number.NaN);
      resolve({ commands: num('total_commands_processed'), reads: num('total_reads_processed') });
    });
    sock.write('*2\r\n$4\r\nINFO\r\n$5\r\nstats\r\n');
  });
}
