import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { API_KEY, CLI, http, registerDevice, tempDir } from './helpers/server.js';

// `pushwire serve --config FILE`: the real binary, its file, environment and flags together.

const tmp = tempDir('pushwire-config-');
const procs: ChildProcess[] = [];
afterAll(() => {
  for (const p of procs) if (p.exitCode === null && p.signalCode === null) process.kill(p.pid!, 'SIGKILL');
  tmp.cleanup();
});

/** Runs `pushwire serve ARGS` with only the given PUSHWIRE_* variables. */
function serve(args: string[], env: Record<string, string> = {}) {
  const clean = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('PUSHWIRE_')));
  const proc = spawn(process.execPath, [CLI, 'serve', ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...clean, ...env },
  });
  procs.push(proc);
  let stdout = '';
  let stderr = '';
  proc.stdout.on('data', (d) => {
    stdout += d;
  });
  proc.stderr.on('data', (d) => {
    stderr += d;
  });
  const exited = new Promise<number | null>((resolve) => proc.once('exit', resolve));
  const listening = new Promise<string>((resolve, reject) => {
    proc.stdout.on('data', () => {
      const m = /listening on (https?:\/\/\S+)/.exec(stdout);
      if (m) resolve(m[1]!);
    });
    void exited.then((code) => reject(new Error(`serve exited ${code}:\n${stdout}\n${stderr}`)));
  });
  listening.catch(() => {});
  return { proc, exited, listening, out: () => stdout, err: () => stderr };
}

describe('pushwire serve --config', () => {
  it('starts from a TOML file whose options take effect; env and flags override it', async () => {
    const data = join(tmp.dir, 'data');
    const config = join(tmp.dir, 'pushwire.toml');
    writeFileSync(
      config,
      [
        `data = ${JSON.stringify(data)}`,
        'port = 1', // the flag below wins
        'metrics-public = true',
        'max-payload = 100', // PUSHWIRE_MAX_PAYLOAD wins
        'log-level = "warn"',
        '[limits]',
        'max-topics-per-device = 2',
        '[webpush]',
        'enabled = false',
        '',
      ].join('\n'),
    );
    const node = serve(['--config', config, '--port', '0', '--host', '127.0.0.1'], {
      PUSHWIRE_API_KEY: API_KEY,
      PUSHWIRE_MAX_PAYLOAD: '300',
    });
    const url = await node.listening;
    // metrics-public (file): /metrics answers without the key (401 by default).
    expect((await fetch(`${url}/metrics`)).status).toBe(200);
    // max-payload: the variable's 300 bytes, not the file's 100.
    const device = await registerDevice(url);
    const publish = (bytes: number) =>
      http(url, 'POST', '/v1/messages', { to: { device: device.deviceId }, data: { s: 'x'.repeat(bytes) } });
    expect((await publish(200)).status).toBe(202);
    const big = await publish(400);
    expect([big.status, big.body.error]).toEqual([413, 'PAYLOAD_TOO_LARGE']);
    // limits.max-topics-per-device (file): the third topic is refused.
    const follow = (t: string) => http(url, 'PUT', `/v1/devices/${device.deviceId}/topics/${t}`);
    expect([(await follow('a')).status, (await follow('b')).status]).toEqual([200, 200]);
    const third = await follow('c');
    expect([third.status, third.body.error]).toEqual([429, 'TOO_MANY_TOPICS']);
    // webpush.enabled = false: no subscription routes.
    expect((await http(url, 'POST', `/v1/devices/${device.deviceId}/webpush`, {})).status).toBe(404);
    process.kill(node.proc.pid!, 'SIGTERM');
    expect(await node.exited).toBe(0);
  });

  it('refuses a file with an unknown key or a wrong type at start, naming it, exit 1', async () => {
    const cases: [string, RegExp][] = [
      ['[limits]\nmax-topic = 3\n', /pushwire: config .*bad\.toml: unknown key "limits\.max-topic"/],
      [
        'port = "8787"\n',
        /pushwire: config .*bad\.toml: "port" must be an integer ≥ 0, not the string "8787"/,
      ],
      ['[webpush\nrate = 1\n', /pushwire: config .*bad\.toml:1:\d+: not valid TOML/],
    ];
    for (const [text, message] of cases) {
      const config = join(tmp.dir, 'bad.toml');
      writeFileSync(config, text);
      const node = serve(['--config', config, '--port', '0', '--data', join(tmp.dir, 'never')]);
      expect(await node.exited).toBe(1);
      expect(node.err()).toMatch(message);
      expect(node.out()).not.toContain('listening');
    }
    expect(existsSync(join(tmp.dir, 'never'))).toBe(false);
    const bad = serve(['--port', '0'], { PUSHWIRE_ADMISSION_RATE: 'fast' });
    expect(await bad.exited).toBe(1);
    expect(bad.err()).toContain('PUSHWIRE_ADMISSION_RATE must be an integer ≥ 1, not the string "fast"');
  });

  it('--print-config shows the effective configuration with secrets redacted, and exits', async () => {
    const config = join(tmp.dir, 'print.toml');
    writeFileSync(config, 'api-key = "pw_from_the_file"\n[redis]\nurl = "redis://ops:s3cret@db:6379"\n');
    const node = serve(
      ['--config', config, '--print-config', '--port', '9999', '--no-webpush', '--metrics-public'],
      {
        PUSHWIRE_SESSION_REQUEST_RATE: '7',
      },
    );
    expect(await node.exited).toBe(0);
    const out = node.out();
    expect(out).not.toMatch(/pw_from_the_file|s3cret/);
    expect(out).toContain('# api-key = "***"  # file, redacted');
    expect(out).toContain('# url = "redis://ops:***@db:6379"  # file, redacted');
    expect(out).toContain('port = 9999  # flag');
    expect(out).toContain('session-request-rate = 7  # env PUSHWIRE_SESSION_REQUEST_RATE');
    expect(out).toContain('metrics-public = true  # flag');
    expect(out).toMatch(/\[webpush\]\nenabled = false {2}# flag/);
    expect(out).not.toContain('listening');
  });
});
