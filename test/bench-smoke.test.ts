/**
 * Keeps the benchmark harness from rotting: runs `npm run bench -- smoke` (every scenario, a few
 * hundred connections, a few seconds each) as a child process and checks that it succeeded and
 * wrote a summary with every scenario's results. Figures are not asserted: benchmarks are not
 * timed unit tests, and this machine's cores are shared.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, expect, test } from 'vitest';

const ROOT = new URL('../', import.meta.url).pathname;
const out = mkdtempSync(join(tmpdir(), 'pushwire-bench-smoke-'));
afterAll(() => rmSync(out, { recursive: true, force: true }));

const SCENARIOS = ['idle', 'node', 'broadcast', 'unicast', 'storm', 'idle-cost', 'sdk-size'];
const natsInstalled = ['/usr/sbin/nats-server', '/usr/bin/nats-server', '/usr/local/bin/nats-server'].some(
  (p) => existsSync(p),
);

test('bench smoke runs every scenario against every peer and writes results', {
  timeout: 260_000,
}, async () => {
  const tsx = join(ROOT, 'node_modules/.bin/tsx');
  const child = spawn(tsx, ['bench/run.ts', 'smoke', '--no-build', '--out', out], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout.on('data', (d) => {
    output += d;
  });
  child.stderr.on('data', (d) => {
    output += d;
  });
  const code = await new Promise<number | null>((resolve) => {
    const timer = setTimeout(() => child.kill('SIGTERM'), 240_000);
    child.on('exit', (c) => {
      clearTimeout(timer);
      resolve(c);
    });
  });
  expect(code, output.slice(-4000)).toBe(0);
  expect(output).toMatch(/bench ok: 7\/7 scenarios ok/);

  const summaryFile = readdirSync(out).find((f) => /^smoke-.*\.json$/.test(f));
  expect(summaryFile, `files: ${readdirSync(out).join(', ')}`).toBeDefined();
  const summary = JSON.parse(readFileSync(join(out, summaryFile!), 'utf8')) as {
    ok: boolean;
    machine: Record<string, unknown>;
    scenarios: Record<
      string,
      { ok: boolean; rows: Record<string, unknown>[]; targets: unknown[]; columns: unknown[] }
    >;
  };
  expect(summary.ok).toBe(true);
  expect(summary.machine).toHaveProperty('node');
  expect(Object.keys(summary.scenarios).sort()).toEqual([...SCENARIOS].sort());
  for (const name of SCENARIOS) {
    const s = summary.scenarios[name]!;
    expect(s.ok, name).toBe(true);
    expect(s.rows.length, name).toBeGreaterThan(0);
    expect(s.columns.length, name).toBeGreaterThan(0);
    // Each scenario also wrote its own table and JSON.
    expect(
      readdirSync(out).some((f) => f.startsWith(`${name}-`) && f.endsWith('.md')),
      name,
    ).toBe(true);
  }

  const peers = (name: string) => new Set(summary.scenarios[name]!.rows.map((r) => r.peer));
  for (const name of ['idle', 'broadcast', 'unicast', 'storm']) {
    expect([...peers(name)].sort(), name).toEqual(
      expect.arrayContaining(['Mosquitto', 'Pushwire', 'Socket.IO', 'ws']),
    );
  }
  // Every broadcast round reached every client; no accepted message was lost in the storm.
  for (const r of summary.scenarios.broadcast!.rows) expect(r.lost).toBe(0);
  const storm = summary.scenarios.storm!.rows.find((r) => r.peer === 'Pushwire')!;
  expect(storm.lost).toBe(0);
  expect(Number(storm.accepted)).toBeGreaterThan(0);
  // Unicast: Pushwire with its four publishers (max, and the 50% level of two), on SQLite and Redis,
  // beside the HTTP floor and NATS JetStream; every accepted message delivered.
  const unicastRows = summary.scenarios.unicast!.rows;
  const unicast = unicastRows.filter((r) => r.peer === 'Pushwire');
  expect(unicast.map((r) => `${r.mode} ${String(r.level).slice(0, 3)}`)).toEqual([
    'single max',
    'single 50%',
    'pipelined max',
    'pipelined 50%',
    'batch max',
    'stream max',
  ]);
  const unicastPeers = [
    'Pushwire on Redis',
    'Fastify + ws, stores nothing (HTTP floor)',
    ...(natsInstalled ? ['NATS JetStream'] : []),
  ];
  expect([...peers('unicast')]).toEqual(expect.arrayContaining(unicastPeers));
  if (!natsInstalled) expect(output).toMatch(/NATS JetStream was skipped: nats-server is not installed/);
  for (const r of unicastRows) {
    expect(Number(r.accepted), `${r.peer} ${r.mode} ${r.level}`).toBeGreaterThan(0);
    expect(Number(r.received), `${r.peer} ${r.mode} ${r.level}`).toBeGreaterThanOrEqual(Number(r.accepted));
  }
  // Idle: RSS per connection after a full GC is measured for every peer.
  for (const r of summary.scenarios.idle!.rows)
    expect(Number.isFinite(Number(r.perConnGcKiB)), String(r.peer)).toBe(true);
  // The issue #18 table: one row per figure, each with a status, written beside the results.
  const targetsFile = readdirSync(out).find((f) => /^targets-.*\.md$/.test(f));
  expect(targetsFile).toBeDefined();
  const table = readFileSync(join(out, targetsFile!), 'utf8');
  for (const figure of [
    'durable unicast, batch API',
    'one message per request',
    'broadcast to 300 with acks flowing',
    'idle RSS per connection after GC',
    'one node on Redis vs one node on SQLite',
    'NATS JetStream (file storage, publish with ack)',
  ])
    expect(table).toContain(figure);
  // The node scenario held every client over its processes, each under its own port.
  const node = summary.scenarios.node!.rows[0]!;
  expect(Number(node.ready)).toBe(Number(node.n));
  expect(Number(node.perProcess)).toBeLessThan(Number(node.n));
  expect(existsSync(join(out, summaryFile!))).toBe(true);
});
