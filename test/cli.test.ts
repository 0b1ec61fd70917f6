import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { API_KEY, CLI, spawnServer, tempDir, until } from './helpers/server.js';

interface Run {
  proc: ChildProcess;
  lines: () => Record<string, unknown>[];
  stderr: () => string;
  stdout: () => string;
}

function run(args: string[], env: NodeJS.ProcessEnv = process.env): Run {
  const proc = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env });
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
    lines: () =>
      out
        .split('\n')
        .filter((l) => l.trim())
        .map((l) => JSON.parse(l) as Record<string, unknown>),
    stderr: () => err,
    stdout: () => out,
  };
}

/** Exit code, or the signal's name when the process was killed by one. */
async function finish(r: Run): Promise<number | string | null> {
  if (r.proc.exitCode !== null || r.proc.signalCode !== null) return r.proc.exitCode ?? r.proc.signalCode;
  return new Promise((resolve) => r.proc.once('exit', (code, signal) => resolve(code ?? signal)));
}

describe('the pushwire command line', () => {
  let server: Awaited<ReturnType<typeof spawnServer>>;
  let tmp: ReturnType<typeof tempDir>;
  beforeAll(async () => {
    tmp = tempDir();
    server = await spawnServer(join(tmp.dir, 'data'));
  });
  afterAll(() => {
    server.proc.kill('SIGKILL');
    tmp.cleanup();
  });

  const publish = async (...args: string[]) => {
    const r = run(['publish', '--server', server.url, '--api-key', API_KEY, ...args]);
    const code = await finish(r);
    return { code, json: r.lines()[0], stderr: r.stderr() };
  };

  it('serve prints the URL and the listen/publish commands to paste, never a key given by flag', () => {
    expect(server.output()).toContain(`--server ${server.url} --state`);
    expect(server.output()).toMatch(/pushwire(\.js)? listen .*--state/);
    expect(server.output()).toMatch(/pushwire(\.js)? publish .*--title/);
    expect(server.output()).toContain('from --api-key / PUSHWIRE_API_KEY (not shown)');
    expect(server.output()).not.toContain(API_KEY);
  });

  it('keys create prints the key once; list shows it without the key; revoke refuses it at once', async () => {
    const env = { ...process.env, PUSHWIRE_API_KEY: API_KEY };
    const create = run(
      [
        'keys',
        'create',
        '--scope',
        'publish,status',
        '--topics',
        'news/*',
        '--rate',
        '100/s',
        '--label',
        'ci',
        '--server',
        server.url,
      ],
      env,
    );
    expect(await finish(create)).toBe(0);
    const key = create.stdout().trim();
    expect(key).toMatch(/^pwk_[A-Za-z0-9_-]{43}$/);
    const id = /created (key_[A-Za-z0-9_-]+)/.exec(create.stderr())?.[1];
    expect(id).toBeDefined();
    const news = run(['publish', '--server', server.url, '--api-key', key, '--topic', 'news/today']);
    expect(await finish(news)).toBe(0);
    const alerts = run(['publish', '--server', server.url, '--api-key', key, '--topic', 'alerts']);
    expect(await finish(alerts)).toBe(2);
    expect(alerts.stderr()).toMatch(/403 FORBIDDEN/);

    const list = run(['keys', 'list', '--server', server.url], env);
    expect(await finish(list)).toBe(0);
    expect(list.stdout()).toMatch(/ID\s+LABEL\s+SCOPES\s+CREATED\s+LAST USED/);
    expect(list.stdout()).toContain(id);
    expect(list.stdout()).toContain('publish,status; topics news/*; 100/s');
    expect(list.stdout()).not.toContain(key);

    const revoke = run(['keys', 'revoke', id!, '--server', server.url], env);
    expect(await finish(revoke)).toBe(0);
    const after = run(['publish', '--server', server.url, '--api-key', key, '--topic', 'news/today']);
    expect(await finish(after)).toBe(2);
    expect(after.stderr()).toMatch(/401 UNAUTHORIZED/);
    const again = run(['keys', 'revoke', 'key_nope', '--server', server.url], env);
    expect(await finish(again)).toBe(2);
    const badScope = run(['keys', 'create', '--scope', 'root', '--server', server.url], env);
    expect(await finish(badScope)).not.toBe(0);
    expect(badScope.stderr()).toMatch(/unknown scope/);
    const notAdmin = run(['keys', 'list', '--server', server.url, '--api-key', key]);
    expect(await finish(notAdmin)).toBe(2);
  });

  it('serve without --api-key creates a key once and reuses it', async () => {
    const dir = join(tmp.dir, 'fresh');
    const first = run(['serve', '--port', '0', '--data', dir, '--log-level', 'silent']);
    // Started (its signal handlers are installed before it listens): under load, the files alone
    // can exist well before that.
    await until(
      () =>
        existsSync(join(dir, 'api-key')) &&
        existsSync(join(dir, 'pushwire.db')) &&
        first.stdout().includes('listening on'),
      15_000,
      'first start',
    );
    const key = readFileSync(join(dir, 'api-key'), 'utf8').trim();
    expect(key).toMatch(/^pw_[A-Za-z0-9_-]{32}$/);
    expect(first.stdout()).toContain(`Admin key: ${key}`); // generated now: shown once
    expect(existsSync(join(dir, 'demo-key'))).toBe(true);
    first.proc.kill('SIGTERM');
    const code = await finish(first);
    expect(code, `serve output:\n${first.stdout()}\n${first.stderr()}`).toBe(0);
    const second = run(['serve', '--port', '0', '--data', dir, '--log-level', 'silent']);
    await until(() => second.stdout().includes('listening on'), 15_000, 'second start');
    expect(readFileSync(join(dir, 'api-key'), 'utf8').trim()).toBe(key);
    expect(second.stdout()).not.toContain(key); // not again: only where it is
    expect(second.stdout()).toContain(`Admin key: in ${join(dir, 'api-key')}`);
    second.proc.kill('SIGTERM');
    await finish(second);
  });

  it('a second serve on the same data dir is refused clearly; the running one is unharmed', async () => {
    const second = run(['serve', '--port', '0', '--data', join(tmp.dir, 'data'), '--api-key', API_KEY]);
    expect(await finish(second)).toBe(1);
    expect(second.stderr()).toMatch(/in use by another pushwire serve \(pid \d+\)/);
    const ok = await publish('--topic', 'still-up');
    expect(ok.code).toBe(0);
  });

  it('listen registers, prints messages as JSON lines, runs --exec, and resumes after a restart', async () => {
    const state = join(tmp.dir, 'device.json');
    const execOut = join(tmp.dir, 'exec.log');
    const args = [
      'listen',
      '--server',
      server.url,
      '--api-key',
      API_KEY,
      '--state',
      state,
      '--user',
      'dana',
      '--exec',
      `cat >> ${execOut}`,
      '--notify',
    ];
    const l1 = run(args, { ...process.env, DISPLAY: '', WAYLAND_DISPLAY: '', DBUS_SESSION_BUS_ADDRESS: '' });
    await until(() => existsSync(state) && l1.stderr().includes('open'), 10_000, 'listen open');
    const saved = JSON.parse(readFileSync(state, 'utf8'));
    expect(saved.deviceId).toMatch(/^[A-Za-z0-9_-]{22}$/);
    expect(l1.stderr()).toMatch(/--notify: cannot show desktop notifications/);

    const p1 = await publish('--user', 'dana', '--title', 'T1', '--body', 'B1', '--data', '{"n":1}');
    expect(p1.code).toBe(0);
    expect(p1.json).toMatchObject({ recipients: 1, duplicate: false });
    await until(() => l1.lines().length === 1, 10_000, 'first line');
    expect(l1.lines()[0]).toMatchObject({
      id: p1.json!.id,
      stream: `d:${saved.deviceId}`,
      seq: 1,
      data: { n: 1 },
      notification: { title: 'T1', body: 'B1' },
    });
    await until(
      () => existsSync(execOut) && readFileSync(execOut, 'utf8').includes(String(p1.json!.id)),
      5000,
      '--exec output',
    );
    l1.proc.kill('SIGTERM');
    expect(await finish(l1)).toBe(0);

    // While it is stopped: three more, one of them with a device target.
    const ids = [
      (await publish('--user', 'dana', '--data', '2')).json!.id,
      (await publish('--device', saved.deviceId, '--data', '3', '--id', 'fixed-id-3')).json!.id,
      (
        await publish(
          '--user',
          'dana',
          '--data',
          '4',
          '--ttl',
          '60',
          '--urgency',
          'high',
          '--collapse-key',
          'k',
        )
      ).json!.id,
    ];
    const l2 = run(['listen', '--server', server.url, '--state', state]);
    await until(() => l2.lines().length === 3, 10_000, 'resumed lines');
    // A marker after the three: a repeated line would be printed before the marker's.
    const marker = (await publish('--device', saved.deviceId, '--data', '"marker"')).json!.id;
    await until(() => l2.lines().some((m) => m.id === marker), 10_000, 'the marker line');
    expect(l2.lines().map((m) => m.id)).toEqual([...ids, marker]);
    expect(l2.lines().map((m) => m.seq)).toEqual([2, 3, 4, 5]);
    l2.proc.kill('SIGTERM');
    await finish(l2);
  });

  it('listen --rotate-token rotates the device token, saves it, and keeps receiving', async () => {
    const state = join(tmp.dir, 'rotating.json');
    const l = run([
      'listen',
      '--server',
      server.url,
      '--api-key',
      API_KEY,
      '--state',
      state,
      '--rotate-token',
    ]);
    await until(() => l.stderr().includes('token rotated'), 15_000, 'rotation');
    const saved = JSON.parse(readFileSync(state, 'utf8')) as {
      credentials: { deviceId: string; token: string };
    };
    const { deviceId, token } = saved.credentials;
    // The token in the state file is the one the server accepts now.
    const check = await fetch(`${server.url}/v1/devices/${deviceId}/token`, {
      method: 'POST',
      headers: { authorization: `Device ${deviceId}:${token}` },
    });
    expect(check.status).toBe(200); // (this rotates it again, from outside: listen must now stop)
    await until(
      () => /UNAUTHORIZED|ERR_AUTH|AuthError/.test(l.stderr()),
      15_000,
      'listen told the token is gone',
    );
    // A token the server refuses is fatal: listen stops by itself, non-zero (scripts and systemd see it).
    expect(await finish(l), l.stderr()).toBe(1);

    // A rotation it asked for is survived: a message published after it arrives.
    const state2 = join(tmp.dir, 'rotating2.json');
    const l2 = run([
      'listen',
      '--server',
      server.url,
      '--api-key',
      API_KEY,
      '--state',
      state2,
      '--rotate-token',
    ]);
    await until(() => l2.stderr().includes('token rotated'), 15_000, 'rotation');
    const dev = JSON.parse(readFileSync(state2, 'utf8')) as { deviceId: string };
    const p = await publish('--device', dev.deviceId, '--data', '"after rotation"');
    expect(p.code).toBe(0);
    await until(() => l2.lines().some((m) => m.id === p.json!.id), 15_000, 'message after rotation');
    l2.proc.kill('SIGTERM');
    expect(await finish(l2)).toBe(0);
  });

  it('publish reports API errors clearly and exits non-zero', async () => {
    const unknown = await publish('--device', 'nope');
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toMatch(/404 UNKNOWN_DEVICE/);
    const two = await publish('--device', 'a', '--topic', 'b');
    expect(two.code).not.toBe(0);
    expect(two.stderr).toMatch(/exactly one of --device, --user, --topic/);
    const badJson = await publish('--topic', 'x', '--data', 'hello');
    expect(badJson.code).not.toBe(0);
    expect(badJson.stderr).toMatch(/--data must be JSON/);
    const wrongKey = run(['publish', '--server', server.url, '--api-key', 'nope', '--topic', 'x']);
    expect(await finish(wrongKey)).toBe(2);
    expect(wrongKey.stderr()).toMatch(/401 UNAUTHORIZED/);
  });
});
