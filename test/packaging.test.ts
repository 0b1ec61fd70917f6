import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { ROOT, tempDir, until } from './helpers/server.js';

/**
 * What a user installs is what works: the workspaces packed as npm would publish them, installed
 * from those tarballs into an empty project outside the clone (dependencies from the npm cache,
 * never from the clone's node_modules), then `npx pushwire serve` and `npx pushwire listen` there
 * see a push arrive, and the SDK works from that project as an ES module and through `require`.
 *
 * better-sqlite3 is compiled by its install script when no prebuilt binary can be downloaded (here:
 * no GitHub), which takes minutes. Its binary is kept in ~/.cache/pushwire-test (or
 * PUSHWIRE_TEST_CACHE), keyed by its version and Node's ABI, after the first such build; without
 * one, the binary the clone's own install compiled (same version, same Node) is used. Such runs
 * install with scripts off and put the binary in place. PUSHWIRE_PACK_FRESH=1 always builds.
 */

const run = promisify(execFile);
const KEY = 'pack-test-key';
const CACHE = process.env.PUSHWIRE_TEST_CACHE ?? join(homedir(), '.cache', 'pushwire-test');

interface Proc {
  proc: ChildProcess;
  out: () => string;
}

describe('packages as a user installs them', () => {
  const tmp = tempDir('pushwire-pack-');
  const procs: ChildProcess[] = [];
  const groups: ChildProcess[] = [];
  /** Signals a process group started by `start`. */
  const signal = (p: ChildProcess, sig: NodeJS.Signals) => {
    try {
      process.kill(-p.pid!, sig);
    } catch {}
  };
  afterAll(() => {
    for (const p of procs) if (p.exitCode === null) p.kill('SIGKILL');
    for (const p of groups) signal(p, 'SIGKILL');
    tmp.cleanup();
  });

  /** A clean environment: nothing that points back into the clone. */
  const env = () => {
    const e: NodeJS.ProcessEnv = { ...process.env, npm_config_audit: 'false', npm_config_fund: 'false' };
    for (const k of Object.keys(e)) {
      if (k === 'NODE_PATH' || k.startsWith('VITEST') || k === 'NODE_OPTIONS') delete e[k];
    }
    return e;
  };
  const sh = (cmd: string, args: string[], cwd: string, timeout = 120_000) =>
    run(cmd, args, { cwd, env: env(), timeout, maxBuffer: 16 * 1024 * 1024 });
  const start = (args: string[], cwd: string): Proc => {
    // Its own process group: npx does not pass signals on, so signals go to the whole group.
    const proc = spawn('npx', ['--no', ...args], {
      cwd,
      env: env(),
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    });
    groups.push(proc);
    let out = '';
    proc.stdout?.on('data', (d) => {
      out += d;
    });
    proc.stderr?.on('data', (d) => {
      out += d;
    });
    return { proc, out: () => out };
  };

  it('npm pack → npm install from tarballs → npx pushwire serve/listen/publish; SDK in ESM and CommonJS', async () => {
    const started = Date.now();
    const tarballs = join(tmp.dir, 'tarballs');
    const project = join(tmp.dir, 'project');
    mkdirSync(tarballs);
    mkdirSync(project);

    // 1. Pack every workspace; each tarball carries a README and the LICENSE.
    const packed = JSON.parse(
      (await sh('npm', ['pack', '--workspaces', '--pack-destination', tarballs, '--json'], ROOT)).stdout,
    ) as { name: string; filename: string; files: { path: string }[] }[];
    expect(packed.map((p) => p.name).sort()).toEqual([
      '@pushwire/client',
      '@pushwire/protocol',
      '@pushwire/server',
      'pushwire',
    ]);
    for (const p of packed) {
      const files = p.files.map((f) => f.path);
      expect(files, p.name).toContain('README.md');
      expect(files, p.name).toContain('LICENSE');
      expect(
        files.filter((f) => f.includes('.test.')),
        p.name,
      ).toEqual([]);
    }
    const license = readFileSync(join(ROOT, 'LICENSE'), 'utf8');
    for (const dir of ['protocol', 'client', 'server', 'cli']) {
      expect(readFileSync(join(ROOT, 'packages', dir, 'LICENSE'), 'utf8'), dir).toBe(license);
    }

    // 2. An empty project installs them (all four: the @pushwire ones must come from these tarballs).
    writeFileSync(join(project, 'package.json'), JSON.stringify({ name: 'app', private: true }));
    const files = packed.map((p) => join(tarballs, p.filename));
    const abi = `${process.platform}-${process.arch}-node${process.versions.modules}`;
    const bsqlVersion = (
      JSON.parse(readFileSync(join(ROOT, 'node_modules/better-sqlite3/package.json'), 'utf8')) as {
        version: string;
      }
    ).version;
    const cached = join(CACHE, `better-sqlite3-${bsqlVersion}-${abi}.node`);
    // The same version compiled for this Node by the clone's own `npm ci` is as good as a cached
    // one: the installed project gets the binary file only, never the clone's node_modules.
    const own = join(ROOT, 'node_modules/better-sqlite3/build/Release/better_sqlite3.node');
    const prebuilt = existsSync(cached) ? cached : existsSync(own) ? own : undefined;
    const fresh = process.env.PUSHWIRE_PACK_FRESH === '1' || prebuilt === undefined;
    const installArgs = ['install', '--prefer-offline', '--no-audit', '--no-fund', '--no-save', ...files];
    const binary = join(project, 'node_modules/better-sqlite3/build/Release/better_sqlite3.node');
    if (fresh) {
      // The install script compiles better-sqlite3 (no prebuilt download here): minutes.
      await sh('npm', installArgs, project, 480_000);
      mkdirSync(CACHE, { recursive: true });
      copyFileSync(binary, cached);
    } else {
      await sh('npm', [...installArgs, '--ignore-scripts'], project);
      mkdirSync(join(binary, '..'), { recursive: true });
      copyFileSync(prebuilt!, binary);
    }
    const installed = JSON.parse(
      readFileSync(join(project, 'node_modules/better-sqlite3/package.json'), 'utf8'),
    ) as { version: string };
    expect(installed.version).toBe(bsqlVersion);
    const installDone = Date.now();

    // 3. `npx pushwire serve` in the project; a device listens; a publish arrives.
    const serve = start(
      ['pushwire', 'serve', '--port', '0', '--data', './data', '--api-key', KEY, '--log-level', 'warn'],
      project,
    );
    const url = (await until(() => /listening on (http:\/\/\S+)/.exec(serve.out()), 30_000, 'serve').catch(
      (err: Error) => {
        throw new Error(`${err.message}:\n${serve.out()}`);
      },
    ))![1]!;
    const listen = start(
      [
        'pushwire',
        'listen',
        '--server',
        url,
        '--api-key',
        KEY,
        '--state',
        './data/device.json',
        '--user',
        'u',
      ],
      project,
    );
    await until(() => listen.out().includes('→ open'), 30_000, 'listen open').catch((err: Error) => {
      throw new Error(`${err.message}:\n${listen.out()}`);
    });

    // 4. The SDK from the project, as an ES module and through require (a device each, user "u").
    const sdk = (kind: 'esm' | 'cjs') => `
      ${kind === 'esm' ? "import { createClient, memoryStorage } from '@pushwire/client';" : "const { createClient, memoryStorage } = require('@pushwire/client');"}
      const client = createClient({ url: ${JSON.stringify(url)}, register: { apiKey: ${JSON.stringify(KEY)}, user: 'u' }, storage: memoryStorage() });
      client.on('state', ({ to }) => { if (to === 'open') console.log('open'); });
      client.on('message', (m) => { console.log(JSON.stringify(m.notification)); client.close().then(() => process.exit(0)); });
      setTimeout(() => process.exit(2), 30000);
    `;
    writeFileSync(join(project, 'sdk.mjs'), sdk('esm'));
    writeFileSync(join(project, 'sdk.cjs'), sdk('cjs'));
    const esm = spawn(process.execPath, ['sdk.mjs'], { cwd: project, env: env() });
    const cjs = spawn(process.execPath, ['sdk.cjs'], { cwd: project, env: env() });
    procs.push(esm, cjs);
    const outputs = [esm, cjs].map((p) => {
      let out = '';
      p.stdout.on('data', (d) => {
        out += d;
      });
      p.stderr.on('data', (d) => {
        out += d;
      });
      return { out: () => out, exit: new Promise<number | null>((r) => p.once('exit', r)) };
    });
    await until(() => outputs.every((o) => o.out().includes('open')), 30_000, 'SDK clients open').catch(
      (err: Error) => {
        throw new Error(`${err.message}:\n${outputs.map((o) => o.out()).join('\n---\n')}`);
      },
    );

    const pub = await sh(
      'npx',
      ['--no', 'pushwire', 'publish', '--server', url, '--api-key', KEY, '--user', 'u', '--title', 'packed'],
      project,
      60_000,
    );
    expect(JSON.parse(pub.stdout)).toMatchObject({ recipients: 3 });
    await until(() => listen.out().includes('"title":"packed"'), 30_000, 'the push through listen');
    expect(await Promise.all(outputs.map((o) => o.exit))).toEqual([0, 0]);
    for (const o of outputs) expect(o.out()).toContain('{"title":"packed"}');

    // 5. Nothing came from the clone: the server ran from the project's node_modules.
    const where = await sh(process.execPath, ['-p', "require.resolve('@pushwire/server')"], project);
    expect(where.stdout.trim().startsWith(join(project, 'node_modules'))).toBe(true);

    // SIGTERM: the server drains and stops answering.
    signal(listen.proc, 'SIGTERM');
    signal(serve.proc, 'SIGTERM');
    await until(
      () =>
        fetch(`${url}/healthz`).then(
          () => false,
          () => true,
        ),
      20_000,
      'the server to stop',
    );
    console.log(
      `packaging: install ${((installDone - started) / 1000).toFixed(1)} s (${fresh ? 'better-sqlite3 compiled' : 'cached better-sqlite3 binary'}), total ${((Date.now() - started) / 1000).toFixed(1)} s`,
    );
  }, 600_000);
});
