import { afterAll, describe, expect, it } from 'vitest';
import { registerDevice, sleep, spawnServer, tempDir, until } from '../helpers/server.js';
import { markEvery, quantile, report, spread, steadyPublisher } from './helpers.js';
import { Swarm } from './swarm-host.js';

const CLIENTS = 320;
const PROCS = 4;
const WINDOW_MS = 8000;

/**
 * Scenario 4: SIGTERM drain of the real `pushwire serve` with 320 SDK clients. The server spreads
 * goaway `reconnectAfter` over the drain window; the clients' reconnect attempts must follow it
 * instead of coming back as a herd. A new server starts on the same port and data dir at once.
 */
describe.sequential('chaos: SIGTERM drain with 320 clients', () => {
  const cleanups: (() => void)[] = [];
  afterAll(() => {
    for (const c of cleanups) c();
  });

  it('reconnects spread over the drain window; nothing published is lost or doubled', async () => {
    const data = tempDir('pushwire-drain-');
    cleanups.push(data.cleanup);
    const flags = ['--drain-window', String(WINDOW_MS)];
    let srv = await spawnServer(data.dir, 0, flags);
    const port = Number(new URL(srv.url).port);
    const devices: { deviceId: string; token: string }[] = [];
    for (let i = 0; i < CLIENTS; i += 40) {
      devices.push(
        ...(await Promise.all(
          Array.from({ length: Math.min(40, CLIENTS - i) }, () => registerDevice(srv.url)),
        )),
      );
    }
    const swarm = Swarm.start(srv.url, devices, PROCS, { stableAfter: 1000 });
    try {
      await until(() => swarm.open === CLIENTS, 30_000, `all ${CLIENTS} clients open`);

      // 50 msg/s round-robin from before the SIGTERM until after the new server is up.
      const { attempted, accepted, stop } = steadyPublisher({
        url: () => srv.url,
        deviceIds: devices.map((d) => d.deviceId),
        prefix: 'drain',
        max: 2000,
        everyMs: 20,
      });
      await sleep(1000);

      const termAt = Date.now();
      const exited = new Promise<number | null>((r) => srv.proc.once('exit', (code) => r(code)));
      srv.proc.kill('SIGTERM');
      expect(await exited).toBe(0);
      const exitedAt = Date.now();
      srv = await spawnServer(data.dir, port, flags);
      const upAt = Date.now();
      await until(() => swarm.allOpenSince(termAt), 30_000, 'every client back');
      await stop();

      // When each client first tried again (its goaway timer fired) and when it was back.
      const attempts = swarm.firstSince('connecting', termAt).map((t) => t! - termAt);
      const back = swarm.firstOpenSince(termAt).map((t) => t! - termAt);
      // goaway waits reconnectAfter plus up to 10% jitter: judge the spread over 1.1 × window.
      const s = spread(attempts, WINDOW_MS * 1.1);
      const sent = attempted.filter((a) => accepted.has(a.id));
      await until(
        () => sent.every((a) => swarm.clients[a.device]!.seen.has(a.id)),
        20_000,
        'every acknowledged message delivered',
      );
      const markers = await markEvery(
        srv.url,
        devices.map((d) => d.deviceId),
        (i) => swarm.clients[i]!.seen,
      );
      let duplicated = 0;
      let received = 0;
      for (const c of swarm.clients) {
        for (const [id, count] of c.seen) {
          if (markers.has(id)) continue;
          duplicated += count - 1;
          if (accepted.has(id)) received++;
        }
      }
      const lost = sent.filter((a) => !swarm.clients[a.device]!.seen.has(a.id)).length;
      const nonDrainErrors = [...swarm.errors].filter(([code]) => code !== 'ERR_CONNECTION');
      report('SIGTERM drain with 320 clients', {
        windowMs: WINDOW_MS,
        drainToExitMs: exitedAt - termAt,
        restartMs: upAt - exitedAt,
        firstAttemptMs: {
          min: Math.min(...attempts),
          p10: quantile(attempts, 0.1),
          p50: quantile(attempts, 0.5),
          p90: quantile(attempts, 0.9),
          max: Math.max(...attempts),
        },
        attemptCoverage: Number(s.coverage.toFixed(2)),
        attemptMaxSliceShare: Number(s.maxSlice.toFixed(3)),
        backMs: { p50: quantile(back, 0.5), max: Math.max(...back) },
        refusedWhileDown: swarm.errors.get('ERR_CONNECTION') ?? 0,
        sent: sent.length,
        received,
        duplicated,
        lost,
      });
      expect(s.coverage).toBeGreaterThanOrEqual(0.6);
      expect(s.maxSlice).toBeLessThanOrEqual(0.2); // even would be 10% per slice
      expect(Math.min(...attempts)).toBeLessThan(WINDOW_MS * 0.1);
      expect(Math.max(...attempts)).toBeGreaterThan(WINDOW_MS * 0.9);
      expect(nonDrainErrors).toEqual([]); // a drain is not a failure; only refused while down
      expect(sent.length).toBeGreaterThan(40);
      expect({ received, duplicated, lost }).toEqual({ received: sent.length, duplicated: 0, lost: 0 });
    } finally {
      await swarm.close();
      srv.proc.kill('SIGKILL');
    }
  }, 120_000);
});
