// Memory per idle connection, measured inside the server process.
//
//   node --expose-gc bench/tools/mem-probe/probe.mjs pw|ws N POOL_DIR [--snap]
//
// POOL_DIR is a device pool of the benchmark (.tmp/bench/pool-*: pushwire.db with devices
// subscribed to "bench", devices.json); it needs N + 1000 devices. The server runs in this
// process (createPushwireServer on a copy of the pool's database, or a plain `ws` server), the
// clients in child processes (client.mjs, 10,000 each). 1,000 clients are connected first and kept,
// then the heap and RSS are taken after repeated full GCs (the baseline); then N more clients,
// RSS 3 s later without a forced GC (what the benchmark samples), and heap and RSS after full GCs
// 12 s later (past the 10 s handshake deadline). Figures are bytes per connection.
// PW_DIST=path/to/dist/index.js measures another build of the server. --snap writes heap
// snapshots before and after to the OS temp dir (compare them with owners.mjs; the snapshots
// themselves inflate the RSS figures of that run).
import { fork } from 'node:child_process';
import { copyFileSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { writeHeapSnapshot } from 'node:v8';

const [mode, nArg, pool] = process.argv.slice(2);
const N = Number(nArg ?? 5000);
const snap = process.argv.includes('--snap');
const WARM = 1000;
const PER_CHILD = 10_000;
if (!global.gc || (mode !== 'pw' && mode !== 'ws') || !pool) {
  console.error('usage: node --expose-gc probe.mjs pw|ws N POOL_DIR [--snap]');
  process.exit(2);
}
const devices = JSON.parse(readFileSync(join(pool, 'devices.json'), 'utf8'));

let port;
let stop;
if (mode === 'pw') {
  const { createPushwireServer, SqliteStore } = await import(process.env.PW_DIST ?? '@pushwire/server');
  const dir = mkdtempSync(join(tmpdir(), 'pw-mem-'));
  copyFileSync(join(pool, 'pushwire.db'), join(dir, 'pushwire.db'));
  const store = SqliteStore.open({ path: join(dir, 'pushwire.db') });
  const server = createPushwireServer({
    store,
    apiKeys: ['bench-key'],
    admissionRate: 1e6,
    admissionBurst: 1e6,
    maxPendingPerAddress: 0,
  });
  port = Number(new URL(await server.listen({ host: '127.0.0.1', port: 0 })).port);
  stop = async () => {
    // close() may wait on unref'd timers only: a timer of our own keeps the process up meanwhile.
    await Promise.race([server.close(), sleep(5000)]);
    rmSync(dir, { recursive: true, force: true });
  };
} else {
  const { WebSocketServer } = await import('ws');
  const clients = [];
  const server = createServer();
  const wss = new WebSocketServer({ server });
  wss.on('connection', (ws) => {
    clients.push(ws);
    ws.on('error', () => {});
    ws.on('close', () => {
      const i = clients.indexOf(ws);
      if (i >= 0) clients[i] = clients[clients.length - 1];
      if (i >= 0) clients.pop();
    });
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  port = server.address().port;
  stop = async () => {
    for (const c of clients) c.terminate();
    server.close();
  };
}

async function fullGc() {
  for (let i = 0; i < 6; i++) {
    global.gc();
    await sleep(50);
  }
}

function sample() {
  const m = process.memoryUsage();
  return { heap: m.heapUsed, rss: m.rss };
}

async function connectAll(specs) {
  const kids = [];
  const answers = [];
  for (let i = 0; i < specs.length; i += PER_CHILD) {
    const kid = fork(new URL('./client.mjs', import.meta.url), { stdio: 'inherit' });
    kids.push(kid);
    answers.push(new Promise((r) => kid.once('message', r)));
    const slice = specs.slice(i, i + PER_CHILD);
    kid.send({ cmd: 'open', port, proto: mode, specs: slice, hb: 900, concurrency: 200 });
  }
  const res = await Promise.all(answers);
  return { kids, ready: res.reduce((a, r) => a + r.ready, 0), failed: res.reduce((a, r) => a + r.failed, 0) };
}

async function closeAll(kids) {
  for (const k of kids) k.send({ cmd: 'close' });
  await Promise.all(kids.map((k) => new Promise((r) => k.once('exit', r))));
}

const warm = await connectAll(devices.slice(N, N + WARM));
await sleep(12_000);
await fullGc();
await sleep(500);
await fullGc();
const before = sample();
if (snap) writeHeapSnapshot(join(tmpdir(), `${mode}-before.heapsnapshot`));
const t0 = performance.now();
const c = await connectAll(devices.slice(0, N));
const connectMs = Math.round(performance.now() - t0);
await sleep(3000);
const noGc = sample();
await sleep(9000);
await fullGc();
await sleep(500);
await fullGc();
const after = sample();
if (snap) writeHeapSnapshot(join(tmpdir(), `${mode}-after.heapsnapshot`));
const per = (a, k) => Math.round((a[k] - before[k]) / c.ready);
console.log(
  JSON.stringify({
    mode,
    N,
    ready: c.ready,
    failed: c.failed,
    connectMs,
    rssNoGc: per(noGc, 'rss'),
    heapNoGc: per(noGc, 'heap'),
    heap: per(after, 'heap'),
    rss: per(after, 'rss'),
  }),
);
await closeAll(c.kids);
await closeAll(warm.kids);
await stop();
process.exit(0);
