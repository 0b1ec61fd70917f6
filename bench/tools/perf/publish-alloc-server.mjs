// Child of publish-alloc.mjs: a Pushwire server on a SQLite file in a temp dir, run with
// --trace-gc-nvp --expose-gc; reports its CPU time between the parent's marks (and, with PROF=1, a
// sampling heap profile of everything allocated between them, minor-GC'd objects included).
import { mkdtempSync, rmSync } from 'node:fs';
import inspector from 'node:inspector';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const dist = process.env.DIST ?? new URL('../../packages/server/dist/index.js', import.meta.url).href;
const { createPushwireServer, SqliteStore } = await import(dist);
const dir = mkdtempSync(join(tmpdir(), 'pushwire-alloc-'));
const server = createPushwireServer({ apiKeys: ['k'], store: SqliteStore.open({ path: `${dir}/db` }) });
const url = await server.listen({ port: 0 });
let cpu0;

const session = new inspector.Session();
session.connect();
const post = (m, p = {}) => new Promise((res, rej) => session.post(m, p, (e, r) => (e ? rej(e) : res(r))));
const PROF = !!process.env.PROF;
process.on('message', async (m) => {
  if (m === 'start') {
    global.gc();
    global.gc();
    console.log('MARK START');
    cpu0 = process.cpuUsage();
    if (PROF)
      await post('HeapProfiler.startSampling', {
        samplingInterval: 512,
        includeObjectsCollectedByMinorGC: true,
        includeObjectsCollectedByMajorGC: true,
      });
    process.send('started');
  }
  if (m === 'end') {
    const c = process.cpuUsage(cpu0);
    global.gc();
    console.log('MARK END');
    if (PROF) {
      const { profile } = await post('HeapProfiler.stopSampling');
      const agg = new Map();
      let total = 0;
      const walk = (n) => {
        const f = n.callFrame;
        const key = `${f.functionName || '(anon)'} ${f.url.replace(/.*node_modules\//, '').replace(/.*packages\//, '')}:${f.lineNumber + 1}`;
        agg.set(key, (agg.get(key) ?? 0) + n.selfSize);
        total += n.selfSize;
        for (const c of n.children) walk(c);
      };
      walk(profile.head);
      const { writeFileSync } = await import('node:fs');
      writeFileSync(
        `${dir}/alloc-profile.txt`,
        [...agg]
          .sort((a, b) => b[1] - a[1])
          .slice(0, 60)
          .map(([k, v]) => `${(v / 1024 / 1024).toFixed(1)}MB ${k}`)
          .join('\n') + `\ntotal ${(total / 1024 / 1024).toFixed(1)}MB\n`,
      );
      writeFileSync(`${dir}/alloc-profile.json`, JSON.stringify(profile));
      console.error(`profile: ${dir}/alloc-profile.txt`);
    }
    process.send({ cpuUs: c.user + c.system });
  }
  if (m === 'exit') {
    await server.close();
    if (!PROF) rmSync(dir, { recursive: true, force: true });
    process.exit(0);
  }
});
process.send({ url });
