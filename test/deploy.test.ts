import { execFile, spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { ROOT, spawnServer, tempDir } from './helpers/server.js';

/**
 * The install paths under deploy/: the systemd unit passes `systemd-analyze verify` without a
 * warning and its offline security exposure stays low; the Dockerfile and compose.yaml have the
 * shape operators expect (no Docker here to build them: the image's install step is what
 * test/packaging.test.ts does, and its HEALTHCHECK command runs here against a real server).
 */

const run = promisify(execFile);
const DEPLOY = join(ROOT, 'deploy');

describe('deploy/: systemd unit', () => {
  const unit = join(DEPLOY, 'pushwire.service');

  it('passes systemd-analyze verify with no warning at all', async () => {
    const r = spawnSync('systemd-analyze', ['verify', unit], { encoding: 'utf8' });
    expect(r.error, 'systemd-analyze missing: run scripts/ci-setup.sh (apt-get install systemd)').toBe(
      undefined,
    );
    expect(r.status, r.stderr).toBe(0);
    expect(r.stderr.trim()).toBe('');
  });

  it('is hardened: transient user, state directory, no new privileges, read-only system', async () => {
    const text = readFileSync(unit, 'utf8');
    for (const line of [
      'DynamicUser=yes',
      'StateDirectory=pushwire',
      'NoNewPrivileges=yes',
      'ProtectSystem=strict',
      'KillSignal=SIGTERM',
      'PUSHWIRE_DATA=/var/lib/pushwire',
    ]) {
      expect(text).toMatch(new RegExp(`^(Environment=.*)?${line.replace(/[.]/g, '\\.')}`, 'm'));
    }
    const { stdout } = await run('systemd-analyze', ['security', '--offline=true', '--no-pager', unit]);
    const exposure = Number(/Overall exposure level for pushwire\.service: ([\d.]+)/.exec(stdout)?.[1]);
    expect(exposure).toBeLessThanOrEqual(2);
  });
});

describe('deploy/: Dockerfile and compose.yaml', () => {
  const dockerfile = readFileSync(join(DEPLOY, 'Dockerfile'), 'utf8');
  const instructions = dockerfile
    .replace(/\\\n/g, ' ')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'));
  const stages = instructions.filter((l) => l.startsWith('FROM '));
  const final = instructions.slice(instructions.lastIndexOf(stages.at(-1)!));

  it('Dockerfile: multi-stage, non-root, data volume, readiness health check, SIGTERM', () => {
    expect(stages.length).toBeGreaterThanOrEqual(2);
    expect(stages.slice(0, -1).every((s) => / AS \w+$/i.test(s))).toBe(true);
    const user = final.filter((l) => l.startsWith('USER ')).at(-1);
    expect(user).toBeDefined();
    expect(user).not.toMatch(/USER (root|0)\b/);
    expect(final).toContain('VOLUME ["/data"]');
    expect(final.find((l) => l.startsWith('ENV '))).toMatch(/PUSHWIRE_DATA=\/data/);
    expect(final.find((l) => l.startsWith('HEALTHCHECK '))).toMatch(/\/readyz/);
    expect(final).toContain('STOPSIGNAL SIGTERM');
    // The run stage has no compiler and no sources: it copies the installed app only.
    expect(final.filter((l) => l.startsWith('COPY '))).toEqual(['COPY --from=install /app /app']);
    expect(final.some((l) => /apt-get install/.test(l))).toBe(false);
    // Every file the build stage copies from the context exists.
    for (const l of instructions.filter((l) => /^COPY (?!--from)/.test(l))) {
      for (const src of l.split(/\s+/).slice(1, -1)) expect(existsSync(join(ROOT, src)), src).toBe(true);
    }
    expect(existsSync(join(DEPLOY, 'Dockerfile.dockerignore'))).toBe(true);
  });

  describe('the HEALTHCHECK command, run against a real server', () => {
    const tmp = tempDir();
    let server: Awaited<ReturnType<typeof spawnServer>>;
    beforeAll(async () => {
      server = await spawnServer(join(tmp.dir, 'data'), 0, ['--drain-window', '3000']);
    });
    afterAll(() => {
      server.proc.kill('SIGKILL');
      tmp.cleanup();
    });

    it('succeeds while the server serves and fails once it has drained and exited', async () => {
      const check = JSON.parse(/HEALTHCHECK .*CMD (\[.*\])$/m.exec(dockerfile.replace(/\\\n\s*/g, ''))![1]!);
      expect(check[0]).toBe('node');
      const port = new URL(server.url).port;
      const probe = () =>
        spawnSync(process.execPath, check.slice(1), {
          env: { ...process.env, PUSHWIRE_PORT: port },
          timeout: 10_000,
        }).status;
      expect(probe()).toBe(0);
      const exited = new Promise((r) => server.proc.once('exit', r));
      server.proc.kill('SIGTERM');
      expect(await exited).toBe(0);
      expect(probe()).toBe(1);
    });
  });

  it('compose.yaml: Pushwire alone by default; profile "cluster" adds Redis and three nodes', () => {
    const compose = parse(readFileSync(join(DEPLOY, 'compose.yaml'), 'utf8'), { merge: true }) as {
      services: Record<
        string,
        {
          profiles?: string[];
          build?: { context: string; dockerfile: string };
          environment?: Record<string, string>;
          ports?: string[];
          volumes?: string[];
          stop_grace_period?: string;
          depends_on?: Record<string, unknown>;
        }
      >;
      volumes: Record<string, unknown>;
    };
    const { services } = compose;
    const alone = Object.entries(services).filter(([, s]) => !s.profiles);
    expect(alone.map(([name]) => name)).toEqual(['pushwire']);
    expect(services.pushwire!.volumes).toEqual(['pushwire-data:/data']);
    const cluster = Object.entries(services).filter(([, s]) => s.profiles?.includes('cluster'));
    expect(cluster.map(([name]) => name).sort()).toEqual(['node1', 'node2', 'node3', 'redis']);
    const nodes = cluster.filter(([name]) => name.startsWith('node')).map(([, s]) => s);
    for (const n of nodes) {
      expect(n.environment?.PUSHWIRE_REDIS).toBe('redis://redis:6379');
      expect(n.environment?.PUSHWIRE_API_KEY).toBeDefined();
      expect(n.depends_on).toHaveProperty('redis');
    }
    expect(new Set(nodes.map((n) => n.environment?.PUSHWIRE_NODE_ID)).size).toBe(3);
    expect(new Set(nodes.flatMap((n) => n.ports)).size).toBe(3);
    for (const s of [services.pushwire!, ...nodes]) {
      expect(s.build).toEqual({ context: '..', dockerfile: 'deploy/Dockerfile' });
      expect(s.stop_grace_period).toBe('30s');
    }
    expect(Object.keys(compose.volumes).sort()).toEqual(['pushwire-data', 'redis-data']);
  });

  // No Docker on the machines this suite runs on: `docker compose config` is not run here (no
  // skipped test standing in for it); the shape checks above are what CI proves.
});
