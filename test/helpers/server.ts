import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createPushwireServer, type PushwireServer, type ServerOptions, SqliteStore } from '@pushwire/server';

export const API_KEY = 'test-key';
export const ROOT = new URL('../../', import.meta.url).pathname;
export const CLI = join(ROOT, 'packages/cli/bin/pushwire.js');

export function tempDir(prefix = 'pushwire-test-'): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/** A real server in this process on 127.0.0.1:0 with a SQLite file in a temp dir. */
export async function startServer(opts: Partial<ServerOptions> = {}): Promise<{
  server: PushwireServer;
  url: string;
  dir: string;
  stop: () => Promise<void>;
}> {
  const { dir, cleanup } = tempDir();
  const store = opts.store ?? SqliteStore.open({ path: join(dir, 'pushwire.db') });
  const server = createPushwireServer({ apiKeys: [API_KEY], ...opts, store });
  const url = await server.listen({ host: '127.0.0.1', port: 0 });
  return {
    server,
    url,
    dir,
    stop: async () => {
      await server.close();
      cleanup();
    },
  };
}

/** A `pushwire serve` child process: the real binary, for kill -9 and SIGTERM tests. */
export async function spawnServer(
  dataDir: string,
  port = 0,
  extra: string[] = [],
): Promise<{ proc: ChildProcess; url: string; output: () => string }> {
  const proc = spawn(
    process.execPath,
    [
      CLI,
      'serve',
      '--host',
      '127.0.0.1',
      '--port',
      String(port),
      '--data',
      dataDir,
      '--api-key',
      API_KEY,
      '--log-level',
      'warn',
      ...extra,
    ],
    {
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let out = '';
  proc.stdout?.on('data', (d) => {
    out += d;
  });
  proc.stderr?.on('data', (d) => {
    out += d;
  });
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`server did not start:\n${out}`)), 15_000);
    const onData = () => {
      const m = /listening on (https?:\/\/[^\s]+)/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]!);
      }
    };
    proc.stdout?.on('data', onData);
    proc.once('exit', (code) => reject(new Error(`server exited with ${code}:\n${out}`)));
  });
  return { proc, url, output: () => out };
}

/** Calls the HTTP API with the test key. */
export async function http<T = Record<string, unknown>>(
  url: string,
  method: string,
  path: string,
  body?: unknown,
  key = API_KEY,
): Promise<{ status: number; body: T; headers: Headers }> {
  const res = await fetch(`${url}${path}`, {
    method,
    headers: {
      authorization: `Bearer ${key}`,
      ...(body !== undefined && { 'content-type': 'application/json' }),
    },
    ...(body !== undefined && { body: typeof body === 'string' ? body : JSON.stringify(body) }),
  });
  const text = await res.text();
  return { status: res.status, body: (text ? JSON.parse(text) : {}) as T, headers: res.headers };
}

export async function registerDevice(
  url: string,
  user?: string,
): Promise<{ deviceId: string; token: string }> {
  const r = await http<{ deviceId: string; token: string }>(url, 'POST', '/v1/devices', user ? { user } : {});
  if (r.status !== 201) throw new Error(`register failed: ${r.status} ${JSON.stringify(r.body)}`);
  return r.body;
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Polls `check` until it returns truthy or the timeout passes. */
export async function until<T>(
  check: () => T | Promise<T>,
  timeoutMs = 10_000,
  what = 'condition',
): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await check();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}
