import { afterAll, describe, expect, it } from 'vitest';
import { report } from '../chaos/helpers.js';
import { http, registerDevice, until } from '../helpers/server.js';
import {
  type App,
  CLUSTER_ENGINES,
  type Cluster,
  openApp,
  pick,
  publishUntilAccepted,
  startCluster,
} from './cluster.js';

describe.each(CLUSTER_ENGINES)('cluster: three nodes on one %s', (engine) => {
  let cluster: Cluster | undefined;
  const apps: App[] = [];
  afterAll(async () => {
    await Promise.all(apps.map((a) => a.client.close()));
    await cluster?.stop();
  });

  it('devices on every node get every message once, in order, whichever node took the publish', async () => {
    cluster = await startCluster(3, {}, engine);
    const urls = cluster.nodes.map((n) => n.url);
    // 12 devices of 4 users, registered on random nodes; device i connects to node i % 3 only.
    const users = ['u0', 'u1', 'u2', 'u3'];
    const creds = await Promise.all(
      Array.from({ length: 12 }, (_, i) => registerDevice(pick(urls), users[i % 4])),
    );
    // Half subscribe before connecting, through any node.
    for (const [i, c] of creds.entries()) {
      if (i % 2 === 0)
        expect((await http(pick(urls), 'PUT', `/v1/devices/${c.deviceId}/topics/news`)).status).toBe(200);
    }
    for (const [i, c] of creds.entries()) apps.push(openApp(c, [urls[i % 3]!]));
    await until(() => apps.every((a) => a.client.state === 'open'), 15_000, 'all open');
    // The other half subscribe while connected, through a node that does not hold them: the
    // holding node must start following the topic live.
    for (const [i, c] of creds.entries()) {
      if (i % 2 === 1) {
        const other = urls[(i + 1) % 3]!;
        expect((await http(other, 'PUT', `/v1/devices/${c.deviceId}/topics/news`)).status).toBe(200);
      }
      if (i % 3 === 0) {
        expect((await http(pick(urls), 'PUT', `/v1/devices/${c.deviceId}/topics/sports`)).status).toBe(200);
      }
    }
    // Presence across nodes: every node sees every device online.
    for (const c of creds) {
      const r = await http<{ online: boolean }>(pick(urls), 'GET', `/v1/devices/${c.deviceId}`);
      expect(r.body.online).toBe(true);
    }

    // 150 publishes to devices, users and topics, each to a random node, 8 at a time.
    const expected = new Map<string, string[]>(apps.map((a) => [a.deviceId, []]));
    const sent: string[] = [];
    const started = Date.now();
    const jobs = Array.from({ length: 150 }, (_, n) => {
      const id = `c1-${n}`;
      const kind = n % 3;
      if (kind === 0) {
        const app = pick(apps);
        expected.get(app.deviceId)!.push(id);
        return { id, to: { device: app.deviceId } };
      }
      if (kind === 1) {
        const user = pick(users);
        creds.forEach((c, i) => {
          if (users[i % 4] === user) expected.get(c.deviceId)!.push(id);
        });
        return { id, to: { user } };
      }
      const topic = n % 2 === 0 ? 'news' : 'sports';
      creds.forEach((c, i) => {
        if (topic === 'news' || i % 3 === 0) expected.get(c.deviceId)!.push(id);
      });
      return { id, to: { topic } };
    });
    for (let i = 0; i < jobs.length; i += 8) {
      const batch = jobs.slice(i, i + 8);
      const results = await Promise.all(
        batch.map(({ id, to }) => publishUntilAccepted(() => urls, { id, to, data: { id } })),
      );
      for (const [j, r] of results.entries()) if (r.accepted) sent.push(batch[j]!.id);
    }
    expect(sent).toHaveLength(150);

    const total = [...expected.values()].reduce((n, ids) => n + ids.length, 0);
    await until(() => apps.every((a) => a.seen.has(expected.get(a.deviceId)!)), 20_000, 'every delivery');
    const elapsed = Date.now() - started;
    // Barrier, not a sleep: a marker on every stream the apps follow (each device's own, news,
    // sports), published after everything else. A stream is delivered in order, so when an app
    // has the markers of its streams, any extra copy on them has arrived before.
    const markers = new Map<string, string[]>(apps.map((a) => [a.deviceId, [`mk-${a.deviceId}`]]));
    for (const [i, a] of apps.entries()) {
      markers.get(a.deviceId)!.push('mk-news');
      if (i % 3 === 0) markers.get(a.deviceId)!.push('mk-sports');
    }
    const marks = [
      ...apps.map((a) => ({ id: `mk-${a.deviceId}`, to: { device: a.deviceId } })),
      { id: 'mk-news', to: { topic: 'news' } },
      { id: 'mk-sports', to: { topic: 'sports' } },
    ];
    for (const m of marks) {
      expect((await publishUntilAccepted(() => urls, { ...m, data: { marker: true } })).accepted).toBe(true);
    }
    await until(() => apps.every((a) => a.seen.has(markers.get(a.deviceId)!)), 20_000, 'every marker');
    const isMarker = (id: string) => id.startsWith('mk-');
    let received = 0;
    let duplicated = 0;
    let lost = 0;
    let unexpected = 0;
    for (const a of apps) {
      const want = new Set(expected.get(a.deviceId));
      const mine = new Set(markers.get(a.deviceId));
      const others = a.seen.messages.filter((m) => !isMarker(m.id));
      received += new Set(others.map((m) => m.id)).size;
      duplicated += a.seen.messages.length - new Set(a.seen.messages.map((m) => m.id)).size;
      lost += a.seen.lost(want).length;
      unexpected += a.seen.messages.filter((m) => !want.has(m.id) && !mine.has(m.id)).length;
      expect(a.seen.outOfOrder()).toEqual([]);
    }
    report(`cluster three nodes on ${engine}`, {
      published: sent.length,
      deliveries: total,
      received,
      duplicated,
      lost,
      unexpected,
      elapsedMs: elapsed,
    });
    expect({ received, duplicated, lost, unexpected }).toEqual({
      received: total,
      duplicated: 0,
      lost: 0,
      unexpected: 0,
    });
  }, 90_000);
});
