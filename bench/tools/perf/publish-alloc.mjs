// Bytes allocated and CPU time per single-message POST /v1/messages (issue 18):
//   node bench/tools/perf/publish-alloc.mjs [N=20000]      (after npm run build)
// N requests over 16 keep-alive connections (64 in flight, no pipelining) to 5 devices whose SDK
// clients receive and ack, after 3,000 warm-up requests. Bytes: the sum of V8's `allocated` over
// the GCs between two forced GCs (--trace-gc-nvp); CPU: process.cpuUsage() of the server process.
// DIST=path/to/server/dist/index.js compares another build (A/B); PROF=1 adds a heap profile.
import { fork } from 'node:child_process';
import http from 'node:http';

const { createClient, memoryStorage } = await import(
  new URL('../../packages/client/dist/node.js', import.meta.url).href
);
const N = Number(process.argv[2] ?? 20000);
const child = fork(new URL('./publish-alloc-server.mjs', import.meta.url).pathname, [], {
  execArgv: ['--trace-gc-nvp', '--expose-gc'],
  stdio: ['ignore', 'pipe', 'inherit', 'ipc'],
  env: { ...process.env },
});
let out = '';
child.stdout.on('data', (d) => (out += d));
const next = () => new Promise((r) => child.once('message', r));
const { url } = await next();
const u = new URL(url);
const agent = new http.Agent({ keepAlive: true, maxSockets: 16 });
const post = (path, body) =>
  new Promise((resolve, reject) => {
    const data = JSON.stringify(body);
    const req = http.request(
      {
        host: u.hostname,
        port: u.port,
        path,
        method: 'POST',
        agent,
        headers: {
          authorization: 'Bearer k',
          'content-type': 'application/json',
          'content-length': Buffer.byteLength(data),
        },
      },
      (res) => {
        let t = '';
        res.on('data', (c) => (t += c));
        res.on('end', () => resolve({ status: res.statusCode, body: t }));
      },
    );
    req.on('error', reject);
    req.end(data);
  });
const devs = JSON.parse((await post('/v1/devices/batch', { devices: [{}, {}, {}, {}, {}] })).body).devices;
let received = 0;
const clients = devs.map((d) => {
  const c = createClient({ url, credentials: d, storage: memoryStorage() });
  c.on('message', () => received++);
  return c;
});
while (!clients.every((c) => c.state === 'open')) await new Promise((r) => setTimeout(r, 20));
const payload = { r: 0, t: Date.now(), p: 'x'.repeat(70) };
const run = async (n) => {
  let i = 0;
  let bad = 0;
  await Promise.all(
    Array.from({ length: 64 }, async () => {
      while (i < n) {
        const k = i++;
        const r = await post('/v1/messages', { to: { device: devs[k % 5].deviceId }, data: payload });
        if (r.status !== 202) bad++;
      }
    }),
  );
  return bad;
};
await run(3000); // warm-up (JIT)
child.send('start');
await next();
const t0 = performance.now();
const bad = await run(N);
const wall = performance.now() - t0;
child.send('end');
const { cpuUs } = await next();
await new Promise((r) => setTimeout(r, 300));
const lines = out.split('\n');
const a = lines.indexOf('MARK START'),
  b = lines.indexOf('MARK END');
let alloc = 0;
let scav = 0;
let pause = 0;
for (let i = a + 1; i < lines.length; i++) {
  const m = /allocated=(\d+)/.exec(lines[i]);
  if (!m) continue;
  alloc += Number(m[1]);
  if (i > b) break; // the forced GC after END covers the tail
  if (/gc=s\b/.test(lines[i])) {
    scav++;
    pause += Number(/pause=([\d.]+)/.exec(lines[i])[1]);
  }
}
console.log(
  JSON.stringify({
    N,
    bad,
    bytesPerReq: Math.round(alloc / N),
    cpuUsPerReq: Math.round(cpuUs / N),
    scavenges: scav,
    scavPauseMsTotal: Math.round(pause),
    reqPerS: Math.round((N / wall) * 1000),
    received,
  }),
);
await Promise.all(clients.map((c) => c.close()));
child.send('exit');
