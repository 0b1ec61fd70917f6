import { spawn } from 'node:child_process';
import { afterAll, describe, expect, it } from 'vitest';
import { freePort, type RedisServer, startRedis } from '../helpers/redis.js';
import { CLI, spawnServer, tempDir } from '../helpers/server.js';

/** Runs `pushwire serve` expecting it to exit; resolves with its exit code and output. */
function serveExits(
  args: string[],
  env: Record<string, string> = {},
): Promise<{ code: number | null; out: string }> {
  const proc = spawn(process.execPath, [CLI, 'serve', '--port', '0', ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, PUSHWIRE_API_KEY: '', ...env },
  });
  let out = '';
  proc.stdout.on('data', (d) => {
    out += d;
  });
  proc.stderr.on('data', (d) => {
    out += d;
  });
  const timer = setTimeout(() => proc.kill('SIGKILL'), 15_000);
  return new Promise((resolve) =>
    proc.once('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, out });
    }),
  );
}

describe('pushwire serve --redis: startup checks', () => {
  const redis: RedisServer[] = [];
  const dirs: (() => void)[] = [];
  afterAll(async () => {
    await Promise.all(redis.map((r) => r.stop()));
    for (const d of dirs) d();
  });

  it('says what Redis it found and what a Redis crash would lose', async () => {
    const durable = await startRedis({ appendonly: true });
    const bare = await startRedis();
    redis.push(durable, bare);
    const a = tempDir();
    const b = tempDir();
    dirs.push(a.cleanup, b.cleanup);
    const good = await spawnServer(a.dir, 0, ['--redis', durable.url, '--node-id', 'alpha']);
    const weak = await spawnServer(b.dir, 0, ['--redis', bare.url]);
    try {
      await new Promise((r) => setTimeout(r, 200));
      expect(good.output()).toMatch(
        new RegExp(`Redis \\d+\\.\\d+\\.\\d+ at ${durable.url}: AOF on, appendfsync always, RDB off`),
      );
      expect(good.output()).toContain('nothing acknowledged is lost');
      expect(good.output()).toMatch(/Node id: +alpha/);
      expect(weak.output()).toMatch(/AOF off, appendfsync \w+, RDB off/);
      expect(weak.output()).toContain('a Redis restart loses every stored message');
      expect(weak.output()).toMatch(/Node id: +[0-9a-f]{12}/); // random when not given
    } finally {
      good.proc.kill('SIGKILL');
      weak.proc.kill('SIGKILL');
    }
  }, 30_000);

  it('refuses to start without Redis, and without a shared API key', async () => {
    const port = await freePort(); // nothing listens there
    const down = await serveExits(['--redis', `redis://127.0.0.1:${port}`, '--api-key', 'k']);
    expect(down.code).toBe(1);
    expect(down.out).toMatch(/cannot use Redis at redis:\/\/127\.0\.0\.1:\d+/);
    const nokey = await serveExits(['--redis', `redis://127.0.0.1:${port}`]);
    expect(nokey.code).toBe(1);
    expect(nokey.out).toContain('every node of a cluster must accept the same key');
  }, 30_000);
});
