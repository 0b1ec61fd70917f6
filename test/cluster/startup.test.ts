import { spawn } from 'node:child_process';
import { afterAll, describe, expect, it } from 'vitest';
import { type PostgresServer, startPostgres } from '../helpers/postgres.js';
import { freePort, type RedisServer, startRedis } from '../helpers/redis.js';
import { CLI, http, registerDevice, spawnServer, tempDir, until } from '../helpers/server.js';
import { openApp } from './cluster.js';

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

describe('pushwire serve --postgres: startup checks', () => {
  let pg: PostgresServer | undefined;
  let redis: RedisServer | undefined;
  const dirs: (() => void)[] = [];
  afterAll(async () => {
    await Promise.all([pg?.stop(), redis?.stop()]);
    for (const d of dirs) d();
  });

  it('says what PostgreSQL it found, what a crash would lose, and which bus; with --redis too the bus is on Redis', async () => {
    pg = await startPostgres();
    redis = await startRedis();
    const [url, shared] = [await pg.freshDatabase(), await pg.freshDatabase()];
    const [a, b, c] = [tempDir(), tempDir(), tempDir()];
    dirs.push(a.cleanup, b.cleanup, c.cleanup);
    const onPg = await spawnServer(a.dir, 0, ['--postgres', url, '--node-id', 'alpha']);
    // Two nodes with the store on PostgreSQL and the bus on Redis.
    const combo = [
      await spawnServer(b.dir, 0, ['--postgres', shared, '--redis', redis.url]),
      await spawnServer(c.dir, 0, ['--postgres', shared, '--redis', redis.url]),
    ] as const;
    try {
      expect(onPg.output()).toMatch(
        /PostgreSQL \d+\.\d+.* at postgres:\/\/pushwire@127\.0\.0\.1:\d+\/pw_test_\w+ \(schema pushwire\): fsync on, synchronous_commit on/,
      );
      expect(onPg.output()).toContain('loses no acknowledged publish');
      expect(onPg.output()).toContain('Bus:      PostgreSQL LISTEN/NOTIFY');
      expect(onPg.output()).toMatch(/Node id: +alpha/);
      expect(combo[0].output()).toContain(`Bus:      Redis at ${redis.url}`);
      // A device registered through one node, connected to the other, gets live what the first accepts.
      const cr = await registerDevice(combo[0].url);
      const app = openApp(cr, [combo[1].url]);
      try {
        await until(() => app.client.state === 'open', 10_000, 'open');
        const sent = await http<{ id: string }>(combo[0].url, 'POST', '/v1/messages', {
          to: { device: cr.deviceId },
          data: { hello: 1 },
        });
        expect(sent.status).toBe(202);
        await until(() => app.seen.has([sent.body.id]), 5000, 'delivered through the Redis bus');
      } finally {
        await app.client.close();
      }
    } finally {
      for (const node of [onPg, ...combo]) node.proc.kill('SIGKILL');
    }
  }, 60_000);

  it('refuses to start without PostgreSQL, and without a shared API key', async () => {
    const port = await freePort(); // nothing listens there
    const down = await serveExits([
      '--postgres',
      `postgres://u:secret@127.0.0.1:${port}/db`,
      '--api-key',
      'k',
    ]);
    expect(down.code).toBe(1);
    expect(down.out).toMatch(/cannot use PostgreSQL at postgres:\/\/u:\*\*\*@127\.0\.0\.1:\d+\/db/);
    expect(down.out).not.toContain('secret');
    const bad = await serveExits(['--postgres', 'db.internal:5432', '--api-key', 'k']);
    expect(bad.code).toBe(1);
    expect(bad.out).toContain('not a PostgreSQL URL: "db.internal:5432" (expected postgres://');
    const nokey = await serveExits([], { PUSHWIRE_POSTGRES: `postgres://127.0.0.1:${port}/db` });
    expect(nokey.code).toBe(1);
    expect(nokey.out).toContain('--postgres: every node of a cluster must accept the same key');
  }, 30_000);
});
