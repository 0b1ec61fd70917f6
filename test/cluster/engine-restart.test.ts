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

// Redis with AOF and appendfsync always; PostgreSQL as configured by default (fsync, synchronous_commit on).
describe.each(CLUSTER_ENGINES)('cluster on %s: the engine killed (SIGKILL) and restarted', (engine) => {
  let cluster: Cluster | undefined;
  const apps: App[] = [];
  afterAll(async () => {
    await Promise.all(apps.map((a) => a.client.close()));
    await cluster?.stop();
  });

  it('nodes reconnect to the engine; every acknowledged publish survives and is delivered once', async () => {
    cluster = await startCluster(3, { appendonly: true }, engine);
    const c = cluster;
    const urls = c.nodes.map((n) => n.url);
    const creds = await Promise.all(Array.from({ length: 9 }, () => registerDevice(pick(urls))));
    for (const cr of creds) await http(pick(urls), 'PUT', `/v1/devices/${cr.deviceId}/topics/all`);
    // Six devices online (two per node); three stay offline through the restart and connect after.
    const online = creds.slice(0, 6);
    const offline = creds.slice(6);
    for (const [i, cr] of online.entries()) apps.push(openApp(cr, [urls[i % 3]!]));
    await until(() => apps.every((a) => a.client.state === 'open'), 15_000, 'all open');

    const expected = new Map<string, string[]>(creds.map((cr) => [cr.deviceId, []]));
    const sent: string[] = [];
    const statuses: number[] = [];
    let n = 0;
    const publishOne = async () => {
      const id = `r-${n}`;
      const toTopic = n % 3 === 2;
      const target = creds[n % creds.length]!;
      n++;
      const body = { id, to: toTopic ? { topic: 'all' } : { device: target.deviceId }, data: { id } };
      const r = await publishUntilAccepted(() => urls, body, 20_000);
      statuses.push(...r.statuses);
      if (!r.accepted) return;
      sent.push(id);
      for (const cr of toTopic ? creds : [target]) expected.get(cr.deviceId)!.push(id);
    };

    // A steady stream of publishes (4 at a time) while the engine is killed (SIGKILL) and started again.
    let stop = false;
    const publishers = Array.from({ length: 4 }, async () => {
      while (!stop && n < 400) {
        await publishOne();
        await sleep(20);
      }
    });
    await sleep(1000);
    await c.engine.kill();
    const downAt = Date.now();
    await sleep(1500);
    await c.engine.start();
    const upAt = Date.now();
    await sleep(1500);
    stop = true;
    await Promise.all(publishers);
    const after = sent.length;

    // Nodes are back on the engine: ready again, and the offline devices connect now.
    for (const url of urls) {
      await until(async () => (await http(url, 'GET', '/readyz')).status === 200, 10_000, `${url} ready`);
    }
    for (const [i, cr] of offline.entries()) apps.push(openApp(cr, [urls[i % 3]!]));
    await until(
      () => apps.every((a) => a.seen.has(expected.get(a.deviceId)!)),
      30_000,
      'every delivery',
    ).catch((err) => {
      report(`cluster ${engine} restart: timed out`, {
        missing: apps.map((a) => a.seen.lost(expected.get(a.deviceId)!)),
      });
      throw err;
    });
    // Barrier, not a sleep: markers on every device's stream and on the topic, after everything.
    await markStreams(() => urls, apps, { all: apps });
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
    const deliveries = [...expected.values()].reduce((x, ids) => x + ids.length, 0);
    report(`cluster ${engine} restart`, {
      published: after,
      deliveries,
      received,
      duplicated,
      lost,
      answered503: statuses.filter((s) => s === 503).length,
      engineDownMs: upAt - downAt,
    });
    expect(statuses).toContain(503); // the outage was seen by publishers, and answered cleanly
    expect({ lost, duplicated, received }).toEqual({ lost: 0, duplicated: 0, received: deliveries });
    // The online devices never lost their sockets: the engine going away is not a reason to drop them.
    for (const a of apps.slice(0, 6)) expect(a.states).toEqual(['connecting', 'open']);
  }, 120_000);
});
