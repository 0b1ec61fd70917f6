import { afterAll, describe, expect, it } from 'vitest';
import { report, tally } from '../chaos/helpers.js';
import { http, registerDevice, sleep, until } from '../helpers/server.js';
import {
  type App,
  CLUSTER_ENGINES,
  type Cluster,
  markStreams,
  openApp,
  pick,
  publishUntilAccepted,
  startCluster,
} from './cluster.js';

describe.each(CLUSTER_ENGINES)('cluster on %s: kill -9 of a node under a steady publish rate', (engine) => {
  let cluster: Cluster | undefined;
  const apps: App[] = [];
  afterAll(async () => {
    await Promise.all(apps.map((a) => a.client.close()));
    await cluster?.stop();
  });

  it("the dead node's devices move to the others and resume: lost 0, duplicated to the app 0", async () => {
    cluster = await startCluster(3, {}, engine);
    const c = cluster;
    const urls = c.nodes.map((n) => n.url);
    // 9 devices, 3 per node: each client's list starts with its own node, then the others.
    const creds = await Promise.all(Array.from({ length: 9 }, () => registerDevice(pick(urls))));
    for (const [i, cr] of creds.entries()) {
      apps.push(
        openApp(
          cr,
          [0, 1, 2].map((k) => urls[(i + k) % 3]!),
        ),
      );
      await http(pick(urls), 'PUT', `/v1/devices/${cr.deviceId}/topics/all`);
    }
    await until(() => apps.every((a) => a.client.state === 'open'), 15_000, 'all open');
    const victims = apps.filter((_, i) => i % 3 === 0);

    // ~40 publishes per second for 4 s, to devices and to the topic, through live nodes.
    const sent: string[] = [];
    const expected = new Map<string, string[]>(apps.map((a) => [a.deviceId, []]));
    const inflight: Promise<void>[] = [];
    let statuses: number[] = [];
    const started = Date.now();
    let killedAt = 0;
    for (let n = 0; Date.now() - started < 4000 && n < 400; n++) {
      if (killedAt === 0 && Date.now() - started > 1500) {
        killedAt = Date.now();
        void c.kill(c.nodes[0]!);
      }
      const id = `k-${n}`;
      const toTopic = n % 4 === 3;
      const app = apps[n % apps.length]!;
      const targets = toTopic ? apps : [app];
      const body = { id, to: toTopic ? { topic: 'all' } : { device: app.deviceId }, data: { n } };
      inflight.push(
        // The publisher keeps all three URLs: attempts on the dead node fail and go to another.
        publishUntilAccepted(() => urls, body).then((r) => {
          statuses = statuses.concat(r.statuses);
          if (!r.accepted) return;
          sent.push(id);
          for (const t of targets) expected.get(t.deviceId)!.push(id);
        }),
      );
      await sleep(25);
    }
    await Promise.all(inflight);
    expect(killedAt).toBeGreaterThan(0);

    // The victims reconnected to another node (their second URL) and everyone got everything.
    await until(
      () => apps.every((a) => a.seen.has(expected.get(a.deviceId)!)),
      30_000,
      'every delivery',
    ).catch((err) => {
      const missing = apps.map((a) => a.seen.lost(expected.get(a.deviceId)!));
      report(`cluster on ${engine}: kill -9 timed out`, {
        missing,
        states: apps.map((a) => a.states.join(',')),
      });
      throw err;
    });
    // Barrier, not a sleep: markers on every device's stream and on the topic, through live nodes.
    await markStreams(() => c.alive(), apps, { all: apps });
    for (const v of victims) {
      expect(v.client.state).toBe('open');
      expect(v.states.filter((s) => s === 'open').length).toBeGreaterThanOrEqual(2);
    }
    let lost = 0;
    let duplicated = 0;
    let received = 0;
    for (const a of apps) {
      const t = tally(expected.get(a.deviceId)!, a.seen);
      lost += t.lost;
      received += t.received;
      duplicated += a.seen.duplicated;
      expect(a.seen.outOfOrder()).toEqual([]);
    }
    const deliveries = [...expected.values()].reduce((n, ids) => n + ids.length, 0);
    report(`cluster on ${engine}: kill -9`, {
      published: sent.length,
      deliveries,
      received,
      duplicated,
      lost,
      failedAttempts: statuses.filter((s) => s !== 202).length,
    });
    expect(sent.length).toBeGreaterThan(100);
    expect({ lost, duplicated, received }).toEqual({ lost: 0, duplicated: 0, received: deliveries });
    // The dead node's devices show online again (on the others) within the presence TTL.
    for (const v of victims) {
      const r = await http<{ online: boolean }>(c.alive()[0]!, 'GET', `/v1/devices/${v.deviceId}`);
      expect(r.body.online).toBe(true);
    }
  }, 90_000);
});
