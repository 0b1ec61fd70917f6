/**
 * A private redis-server for "Pushwire on Redis": a free port, AOF on with `appendfsync always`
 * (every write fsync'd before Redis answers, as durable as SQLite's commit), its files in a temp
 * dir on the same disk as Pushwire's SQLite data, pinned to the server core (the machine has two
 * cores: one for servers, one for the load generator).
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { type RedisServer, startRedis } from '../../test/helpers/redis.js';
import { HAS_TASKSET, SERVER_CORE, TMP } from '../lib/proc.js';

export async function startPrivateRedis(): Promise<{ url: string; pid: number; stop(): Promise<void> }> {
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
    async stop() {
      await redis.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
