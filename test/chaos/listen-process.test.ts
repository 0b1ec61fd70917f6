import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { API_KEY, sleep, startServer, tempDir, until } from '../helpers/server.js';
import { FaultProxy } from './fault-proxy.js';
import { type ListenRun, publish, report, runListen } from './helpers.js';

type Started = Awaited<ReturnType<typeof startServer>>;

/** Counts of messages `sent` against what a `pushwire listen` process printed. */
function counts(sent: string[], run: ListenRun) {
  const printed = run.messages().map((m) => m.id);
  const ids = new Set(sent);
  const got = printed.filter((id) => ids.has(id));
  return {
    sent: sent.length,
    received: new Set(got).size,
    duplicated: printed.length - new Set(printed).size,
    lost: sent.filter((id) => !printed.includes(id)).length,
  };
}

/**
 * Scenario 5 and the CLI check: the real `pushwire listen` process as the device.
 * - SIGSTOP past the server's idle timeout, then SIGCONT (an OS suspending the app).
 * - `--heartbeat 5` through a path that goes silent.
 */
describe.sequential('chaos: a `pushwire listen` process', () => {
  let s: Started;
  let tmp: ReturnType<typeof tempDir>;
  const runs: ListenRun[] = [];
  beforeAll(async () => {
    // Idle grace 2 s: the server gives up on a silent device 2 s after its declared heartbeat.
    s = await startServer({ idleGrace: 2 });
    tmp = tempDir('pushwire-listen-');
  });
  afterAll(async () => {
    await Promise.all(runs.map((r) => r.stop()));
    await s.stop();
    tmp.cleanup();
  });

  it('stopped with SIGSTOP past the idle timeout, then SIGCONT: reconnects and prints what came meanwhile', async () => {
    const user = 'sleeper';
    const run = runListen([
      '--server',
      s.url,
      '--api-key',
      API_KEY,
      '--state',
      join(tmp.dir, 'sleeper.json'),
      '--user',
      user,
      '--heartbeat',
      '2',
    ]);
    runs.push(run);
    await until(() => run.states().some((x) => x.to === 'open'), 15_000, 'listen open');
    const sent = [(await publish(s.url, { to: { user }, data: { n: 0 } }))!];
    await until(() => run.messages().length === 1, 5000, 'first message');

    const idleBefore = s.server.gateway.counters.idleClosed;
    run.proc.kill('SIGSTOP');
    const stoppedAt = Date.now();
    // Published while it sleeps: this one is written into the sleeping process's socket buffer…
    sent.push((await publish(s.url, { to: { user }, data: { n: 1 } }))!);
    // …then the server's idle deadline (heartbeat 2 s + grace 2 s) passes and it drops the session.
    await until(() => s.server.gateway.counters.idleClosed > idleBefore, 10_000, 'server idle close');
    const idleClosedAfterMs = Date.now() - stoppedAt;
    // …and this one is only in the store.
    sent.push((await publish(s.url, { to: { user }, data: { n: 2 } }))!);
    await sleep(1000);

    const statesBefore = run.states().length;
    const contAt = Date.now();
    run.proc.kill('SIGCONT');
    await until(() => counts(sent, run).received === 3, 15_000, 'everything after SIGCONT');
    const deliveredAfterMs = Date.now() - contAt;
    const after = run.states().slice(statesBefore);
    const reopened = after.find((x) => x.to === 'open');
    // A marker after the three: a repeated line would be printed before the marker's.
    const marker = (await publish(s.url, { to: { user }, data: { marker: true } }))!;
    await until(() => run.messages().some((m) => m.id === marker), 10_000, 'the marker');
    const c = counts(sent, run);
    report('SIGSTOP past the idle timeout, then SIGCONT (pushwire listen --heartbeat 2)', {
      stoppedMs: contAt - stoppedAt,
      serverIdleCloseAfterMs: idleClosedAfterMs,
      reconnectedAfterContMs: reopened ? reopened.t - contAt : undefined,
      allDeliveredAfterContMs: deliveredAfterMs,
      transitions: after.map((x) => `${x.from}→${x.to}`),
      ...c,
    });
    expect(c).toEqual({ sent: 3, received: 3, duplicated: 0, lost: 0 });
    // It noticed the dead session itself and opened a new one.
    expect(after.some((x) => x.from === 'open')).toBe(true);
    expect(reopened).toBeDefined();
    expect(run.messages().map((m) => m.id)).toEqual([...sent, marker]);
    expect(run.messages().map((m) => (m.data as { n?: number }).n)).toEqual([0, 1, 2, undefined]);
  }, 60_000);

  it('--heartbeat 5 through a path that goes silent: a message published meanwhile arrives within ~20 s', async () => {
    const proxy = await FaultProxy.start({ target: { port: Number(new URL(s.url).port) } });
    try {
      const user = 'walker';
      const run = runListen([
        '--server',
        proxy.url,
        '--api-key',
        API_KEY,
        '--state',
        join(tmp.dir, 'walker.json'),
        '--user',
        user,
        '--heartbeat',
        '5',
      ]);
      runs.push(run);
      await until(() => run.states().some((x) => x.to === 'open'), 15_000, 'listen open');
      await sleep(1000);
      // Everything on the path goes silent: the WebSocket, and the idle keep-alive HTTP
      // connection the registration left in the pool.
      const holed = proxy.blackholeAll();
      expect(holed.length).toBeGreaterThanOrEqual(1);
      const at = Date.now();
      const statesBefore = run.states().length;
      const id = (await publish(s.url, { to: { user }, data: { n: 1 } }))!;
      await until(() => run.messages().some((m) => m.id === id), 30_000, 'message after the black-hole');
      const arrivedMs = Date.now() - at;
      const after = run.states().slice(statesBefore);
      const detectedMs = (after.find((x) => x.from === 'open')?.t ?? Number.NaN) - at;
      const c = counts([id], run);
      report('pushwire listen --heartbeat 5, black-hole', {
        detectedMs,
        boundMs: 10_000,
        arrivedMs,
        bytesDroppedInHole: holed.map((h) => h.dropped),
        ...c,
      });
      expect(c).toEqual({ sent: 1, received: 1, duplicated: 0, lost: 0 });
      // Interval 5 s + pong deadline 5 s = 10 s by design (the figure reported above); the bounds
      // leave room for a child process's late timers on a loaded 2-core machine.
      expect(detectedMs).toBeLessThanOrEqual(10_000 + 2_500);
      expect(arrivedMs).toBeLessThanOrEqual(20_000 + 2_500);
    } finally {
      await proxy.close();
    }
  }, 60_000);
});
