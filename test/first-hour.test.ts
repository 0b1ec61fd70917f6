import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { type AddressInfo, createServer } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { API_KEY, CLI, http, ROOT, registerDevice, spawnServer, tempDir, until } from './helpers/server.js';

/**
 * A new operator's first hour, from a fresh clone (issue 17): the commands `serve` prints work from
 * any directory and leave nothing in the clone; `publish` and `listen` say clearly what happened.
 */

interface Run {
  proc: ChildProcess;
  stdout: () => string;
  stderr: () => string;
  lines: () => Record<string, unknown>[];
}

function run(cmd: string, args: string[], cwd = ROOT, env = process.env): Run {
  const proc = spawn(cmd, args, { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  proc.stdout?.on('data', (d) => {
    out += d;
  });
  proc.stderr?.on('data', (d) => {
    err += d;
  });
  return {
    proc,
    stdout: () => out,
    stderr: () => err,
    lines: () =>
      out
        .split('\n')
        .filter((l) => l.startsWith('{'))
        .map((l) => JSON.parse(l) as Record<string, unknown>),
  };
}

const cli = (args: string[], cwd = ROOT) => run(process.execPath, [CLI, ...args], cwd);

async function finish(r: Run, timeoutMs = 15_000): Promise<number | string | null> {
  if (r.proc.exitCode !== null || r.proc.signalCode !== null) return r.proc.exitCode ?? r.proc.signalCode;
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      r.proc.kill('SIGKILL');
      reject(new Error(`still running after ${timeoutMs} ms:\n${r.stdout()}\n${r.stderr()}`));
    }, timeoutMs);
    r.proc.once('exit', (code, signal) => {
      clearTimeout(timer);
      resolve(code ?? signal);
    });
  });
}

describe('first hour with pushwire', () => {
  let server: Awaited<ReturnType<typeof spawnServer>>;
  let tmp: ReturnType<typeof tempDir>;
  let dataDir: string;
  const running: Run[] = [];
  beforeAll(async () => {
    tmp = tempDir();
    dataDir = join(tmp.dir, 'data');
    server = await spawnServer(dataDir);
  });
  afterAll(() => {
    for (const r of running) r.proc.kill('SIGKILL');
    server.proc.kill('SIGKILL');
    tmp.cleanup();
  });

  const publish = async (...args: string[]) => {
    const r = cli(['publish', '--server', server.url, '--api-key', API_KEY, ...args]);
    const code = await finish(r);
    return { code, json: r.lines()[0]!, stderr: r.stderr() };
  };

  it('the printed listen and publish commands work from another directory and keep state in the data dir', async () => {
    const lines = server.output().split('\n');
    const listenLine = lines.find((l) => / listen --server /.test(l))!.trim();
    const publishLine = lines.find((l) => / publish --server /.test(l))!.trim();
    // Not `npx pushwire` (which outside the clone would fetch whatever the registry calls pushwire).
    expect(listenLine).not.toMatch(/^npx /);
    expect(listenLine).toContain(`--state ${join(dataDir, 'device.json')}`);
    expect(server.output()).toMatch(/from any directory/);
    // The key is never on a printed command line (arguments are visible to other local users):
    // the operator gave it to serve, so it is in their environment, as the banner says.
    expect(listenLine).not.toContain(API_KEY);
    expect(publishLine).not.toContain(API_KEY);

    const elsewhere = tmp.dir; // not the clone
    // The banner's advice: the admin key in PUSHWIRE_API_KEY (this server was given it, so it prints no export line).
    expect(server.output()).toMatch(/The admin key goes in\s+PUSHWIRE_API_KEY/);
    const withKey = { ...process.env, PUSHWIRE_API_KEY: API_KEY };
    const listen = run('sh', ['-c', `exec ${listenLine}`], elsewhere, withKey);
    running.push(listen);
    await until(() => /device [\w-]{22} \(registered now\)/.test(listen.stderr()), 15_000, 'device id');
    await until(() => listen.stderr().includes('→ open'), 15_000, 'listen open');
    const pub = run('sh', ['-c', publishLine], elsewhere, withKey);
    expect(await finish(pub), pub.stderr()).toBe(0);
    const accepted = JSON.parse(pub.stdout()) as { id: string; recipients: number };
    expect(accepted.recipients).toBe(1);
    await until(() => listen.lines().length === 1, 15_000, 'the push');
    expect(listen.lines()[0]).toMatchObject({ id: accepted.id, notification: { title: 'Hello' } });
    expect(existsSync(join(dataDir, 'device.json'))).toBe(true);
    expect(existsSync(join(elsewhere, 'device.json'))).toBe(false);
    expect(existsSync(join(ROOT, 'device.json'))).toBe(false);
    listen.proc.kill('SIGTERM');
    expect(await finish(listen)).toBe(0);
    // A second start names the same device, from the state file.
    const again = run('sh', ['-c', `exec ${listenLine}`], elsewhere, withKey);
    running.push(again);
    const id = JSON.parse(readFileSync(join(dataDir, 'device.json'), 'utf8')).deviceId as string;
    await until(() => again.stderr().includes(`device ${id}, state in`), 15_000, 'device id again');
    again.proc.kill('SIGTERM');
    await finish(again);
  });

  it('--server without a scheme is refused with the URL to use', async () => {
    for (const command of ['publish', 'listen']) {
      const r = cli([
        command,
        '--server',
        server.url.replace('http://', ''),
        '--api-key',
        API_KEY,
        ...(command === 'listen' ? ['--state', join(tmp.dir, 'never.json')] : []),
        '--topic',
        'x',
      ]);
      expect(await finish(r)).toBe(1);
      expect(r.stderr()).toContain(`--server must start with http:// or https://`);
      expect(r.stderr()).toContain(`did you mean ${server.url}?`);
    }
    const keys = cli(['keys', 'list', '--server', server.url.replace('http://', ''), '--api-key', API_KEY]);
    expect(await finish(keys)).toBe(1);
    expect(keys.stderr()).toContain(`did you mean ${server.url}?`);
  });

  it('publish that reaches no device says so on stderr and exits 0; recipients counts devices; ttl is echoed', async () => {
    const nobody = await publish('--user', 'nobody-here', '--title', 'x');
    expect(nobody.code).toBe(0);
    expect(nobody.json.recipients).toBe(0);
    expect(nobody.stderr).toMatch(/no device will receive it: user "nobody-here" has no devices/);

    const empty = await publish('--topic', 'no-followers');
    expect(empty.code).toBe(0);
    expect(empty.json.recipients).toBe(0);
    expect(empty.stderr).toMatch(/topic "no-followers" has no subscribers/);

    // Three devices follow a topic; a user has two devices.
    for (let i = 0; i < 3; i++) {
      const d = await registerDevice(server.url, i < 2 ? 'two-devices' : undefined);
      expect((await http(server.url, 'PUT', `/v1/devices/${d.deviceId}/topics/three`)).status).toBe(200);
    }
    const topic = await publish('--topic', 'three', '--ttl', '60');
    expect(topic.json).toMatchObject({ recipients: 3, ttl: 60 });
    expect(topic.json.entries).toHaveLength(1); // one stream entry for three devices
    expect(topic.stderr).toBe('');
    const user = await publish('--user', 'two-devices', '--ttl', '0');
    expect(user.json).toMatchObject({ recipients: 2, ttl: 0 });
    const batch = await http<{ results: { recipients: number; ttl: number }[] }>(
      server.url,
      'POST',
      '/v1/messages/batch',
      { messages: [{ to: { topic: 'three' }, ttl: 5 }, { to: { user: 'nobody-here' } }] },
    );
    expect(batch.body.results.map((r) => [r.recipients, r.ttl])).toEqual([
      [3, 5],
      [0, 30 * 24 * 3600],
    ]);
  });

  it('listen with a stale state file exits non-zero with the hint to delete it', async () => {
    const state = join(tmp.dir, 'stale.json');
    const l1 = cli(['listen', '--server', server.url, '--api-key', API_KEY, '--state', state]);
    running.push(l1);
    await until(() => l1.stderr().includes('→ open'), 15_000, 'open');
    l1.proc.kill('SIGTERM');
    await finish(l1);
    const id = JSON.parse(readFileSync(state, 'utf8')).deviceId as string;
    // The operator resets the data (here: deletes the device): the state file is stale.
    expect((await http(server.url, 'DELETE', `/v1/devices/${id}`)).status).toBe(204);
    const l2 = cli(['listen', '--server', server.url, '--state', state]);
    expect(await finish(l2)).toBe(1);
    expect(l2.stderr()).toContain(`device ${id}`);
    expect(l2.stderr()).toContain(`delete ${state} to register anew`);
  });

  it('a refused registration exits non-zero and shows its cause; an unreachable server shows why', async () => {
    const wrong = cli([
      'listen',
      '--server',
      server.url,
      '--api-key',
      'wrong',
      '--state',
      join(tmp.dir, 'wrong.json'),
    ]);
    expect(await finish(wrong)).toBe(1);
    expect(wrong.stderr()).toMatch(/device registration failed \(HTTP 401 UNAUTHORIZED/);
    expect(wrong.stderr()).toMatch(/check --api-key/);

    const port = await new Promise<number>((resolve) => {
      const probe = createServer().listen(0, '127.0.0.1', () => {
        const { port } = probe.address() as AddressInfo;
        probe.close(() => resolve(port));
      });
    });
    const away = cli([
      'listen',
      '--server',
      `http://127.0.0.1:${port}`,
      '--api-key',
      API_KEY,
      '--state',
      join(tmp.dir, 'away.json'),
    ]);
    running.push(away);
    await until(() => /ECONNREFUSED/.test(away.stderr()), 15_000, 'the cause of the failure').catch(
      (err: Error) => {
        throw new Error(`${err.message}:\n${away.stderr()}`);
      },
    );
    expect(away.stderr()).toMatch(/registration request failed: .*ECONNREFUSED/);
    away.proc.kill('SIGTERM');
    await finish(away);
  });

  it('two listen with one state file: the replaced one stops instead of taking turns', async () => {
    const state = join(tmp.dir, 'shared.json');
    const a = cli(['listen', '--server', server.url, '--api-key', API_KEY, '--state', state]);
    running.push(a);
    await until(() => a.stderr().includes('→ open'), 15_000, 'first open');
    const b = cli(['listen', '--server', server.url, '--state', state]);
    running.push(b);
    expect(await finish(a)).toBe(1);
    expect(a.stderr()).toMatch(/connected elsewhere/);
    await until(() => b.stderr().includes('→ open'), 15_000, 'second open');
    b.proc.kill('SIGTERM');
    expect(await finish(b)).toBe(0);
    rmSync(state, { force: true });
  });

  it('GET / is a small page linking demo, dashboard, docs and health; LICENSE is MIT', async () => {
    const res = await fetch(`${server.url}/`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/html/);
    const html = await res.text();
    for (const href of ['/demo', '/dashboard', '/docs', '/healthz', '/readyz']) {
      expect(html).toContain(`href="${href}"`);
    }
    const license = readFileSync(join(ROOT, 'LICENSE'), 'utf8');
    expect(license).toMatch(/^MIT License/);
    const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { license: string };
    expect(pkg.license).toBe('MIT');
  });
});
