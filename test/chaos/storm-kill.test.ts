import { readFileSync } from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import { API_KEY, registerDevice, sleep, spawnServer, tempDir, until } from '../helpers/server.js';
import { markEvery, quantile, report, steadyPublisher } from './helpers.js';
import { Swarm } from './swarm-host.js';

const CLIENTS = 320;
const PROCS = 4;
/**
 * Admission control low enough that the storm meets it (the default 2000/s would admit all 320 at
 * once): a burst of 50 is below the 80 clients each swarm process opens at once.
 */
const ADMISSION = ['--admission-rate', '100', '--admission-burst', '50'];

/** Peak resident memory of a process (VmHWM), in MiB. */
function peakRssMiB(pid: number | undefined): number | undefined {
  try {
    const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Math.round(Number(m[1]) / 1024) : undefined;
  } catch {
    return undefined;
  }
}

async function metric(url: string, name: string): Promise<number | undefined> {
  const res = await fetch(`${url}/metrics`, { headers: { authorization: `Bearer ${API_KEY}` } });
  const m = new RegExp(`^${name} (\\S+)$`, 'm').exec(await res.text());
  return m ? Number(m[1]) : undefined;
}

/**
 * Scenario 3: `kill -9` of the real `pushwire serve` with 320 SDK clients (in 4 child processes)
 * connected and publishing going on; restart on the same data dir and port. Every client resumes;
 * every publish answered 202 is delivered exactly once.
 */
describe.sequential('chaos: server kill -9 with 320 clients, restart, reconnect storm', () => {
  const cleanups: (() => void)[] = [];
  afterAll(() => {
    for (const c of cleanups) c();
  });

  it('every client resumes; every acknowledged publish arrives once', async () => {
    const data = tempDir('pushwire-storm-');
    const states = tempDir('pushwire-storm-clients-');
    cleanups.push(data.cleanup, states.cleanup);
    let srv = await spawnServer(data.dir, 0, ADMISSION);
    const port = Number(new URL(srv.url).port);
    const devices: { deviceId: string; token: string }[] = [];
    for (let i = 0; i < CLIENTS; i += 40) {
      devices.push(
        ...(await Promise.all(
          Array.from({ length: Math.min(40, CLIENTS - i) }, () => registerDevice(srv.url)),
        )),
      );
    }
    // Sessions here live seconds before the kill, not hours: let one of 1 s count as stable, so
    // the backoff after the kill starts from its first step, as it would in production.
    const swarm = Swarm.start(srv.url, devices, PROCS, { fileStorageDir: states.dir, stableAfter: 1000 });
    try {
      await until(() => swarm.open === CLIENTS, 30_000, `all ${CLIENTS} clients open`);

      // Publishing at 100 msg/s, round-robin over the devices, from before the kill until after.
      const { attempted, accepted, stop } = steadyPublisher({
        url: () => srv.url,
        deviceIds: devices.map((d) => d.deviceId),
        prefix: 'storm',
        max: 5000,
        everyMs: 10,
      });

      await sleep(1500);
      const killedAt = Date.now();
      srv.proc.kill('SIGKILL');
      await new Promise((r) => srv.proc.once('exit', r));
      srv = await spawnServer(data.dir, port, ADMISSION);
      const upAt = Date.now();
      await until(() => swarm.allOpenSince(killedAt), 45_000, 'every client back after the restart');
      const back = swarm.firstOpenSince(killedAt).map((t) => t!);
      const allBackAt = Math.max(...back);
      await sleep(1000);
      await stop();

      // Every acknowledged publish reaches its device once.
      const sent = attempted.filter((a) => accepted.has(a.id));
      await until(
        () => sent.every((a) => swarm.clients[a.device]!.seen.has(a.id)),
        30_000,
        'every acknowledged message delivered',
      );
      const markers = await markEvery(
        srv.url,
        devices.map((d) => d.deviceId),
        (i) => swarm.clients[i]!.seen,
      );
      let duplicated = 0;
      let received = 0;
      let unackedDelivered = 0;
      for (const c of swarm.clients) {
        for (const [id, count] of c.seen) {
          if (markers.has(id)) continue;
          duplicated += count - 1;
          if (accepted.has(id)) received++;
          else unackedDelivered++;
        }
      }
      const lost = sent.filter((a) => !swarm.clients[a.device]!.seen.has(a.id)).length;
      const refusedAfterRestart = await metric(srv.url, 'pushwire_handshakes_refused_total');
      const figures = {
        clients: CLIENTS,
        processes: PROCS,
        serverDownMs: upAt - killedAt,
        stormRecoveryMs: allBackAt - upAt,
        killToAllResumedMs: allBackAt - killedAt,
        resumedP50Ms: quantile(
          back.map((t) => t - upAt),
          0.5,
        ),
        resumedP90Ms: quantile(
          back.map((t) => t - upAt),
          0.9,
        ),
        admission: '100/s burst 50',
        refusedAfterRestart,
        rateLimitedSeenByClients: swarm.errors.get('ERR_RATE_LIMITED') ?? 0,
        restartedServerPeakRssMiB: peakRssMiB(srv.proc.pid),
        attempted: attempted.length,
        sent: sent.length,
        received,
        duplicated,
        lost,
        unackedDelivered, // stored but the 202 never came back (the kill): delivered, not promised
      };
      report('kill -9 with 320 clients', figures);
      expect(sent.length).toBeGreaterThan(150);
      expect(attempted.length).toBeGreaterThan(sent.length); // some publishes hit the dead server
      expect({ received, duplicated, lost }).toEqual({ received: sent.length, duplicated: 0, lost: 0 });
      // The connect storm met admission control (RATE_LIMITED + retryAfter) and still completed.
      expect(swarm.errors.get('ERR_RATE_LIMITED') ?? 0).toBeGreaterThan(0);
      // Room for a loaded 2-core machine: across runs here the last of 320 clients was back after
      // 8–26 s (one client deep in its jittered backoff decides it); speed is the storm benchmark's
      // job (10,000 and 19,000 clients), this test's is lost 0 / duplicated 0.
      expect(allBackAt - upAt).toBeLessThan(45_000);
    } finally {
      await swarm.close();
      srv.proc.kill('SIGKILL');
    }
  }, 120_000);
});
