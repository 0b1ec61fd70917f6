import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startPostgres } from '../helpers/postgres.js';
import { PushProviders } from '../helpers/push-providers.js';
import { RawClient } from '../helpers/raw-client.js';
import { startRedis } from '../helpers/redis.js';
import { http, registerDevice, spawnServer, tempDir, until } from '../helpers/server.js';
import { makeTestCertificates } from '../helpers/tls.js';
import { CLUSTER_ENGINES, type EngineServer } from './cluster.js';

// Two real `pushwire serve --redis` (or `--postgres`) processes configured with the APNs flags (trusting the
// stand-in's throw-away CA through NODE_EXTRA_CA_CERTS, as an operator would for a private CA):
// the node that takes a publish asks the cluster's presence before waking a device.

describe.each(CLUSTER_ENGINES)('wake-ups in a cluster on %s (pushwire serve --apns-*)', (engine) => {
  const tmp = tempDir('pushwire-cluster-wake-');
  let server: EngineServer;
  let providers: PushProviders;
  const nodes: Awaited<ReturnType<typeof spawnServer>>[] = [];
  const dirs: (() => void)[] = [];

  beforeAll(async () => {
    const certs = makeTestCertificates(tmp.dir);
    providers = await new PushProviders().start(certs);
    const keyFile = join(tmp.dir, 'AuthKey.p8');
    writeFileSync(keyFile, providers.apnsKeyPem);
    server = engine === 'redis' ? await startRedis() : await startPostgres();
    const previous = process.env.NODE_EXTRA_CA_CERTS;
    process.env.NODE_EXTRA_CA_CERTS = certs.caFile; // inherited by the children spawned now
    try {
      for (const id of ['a', 'b']) {
        const { dir, cleanup } = tempDir('pushwire-node-');
        dirs.push(cleanup);
        nodes.push(
          await spawnServer(dir, 0, [
            ...[`--${engine}`, server.url, '--node-id', id],
            ...['--apns-key', keyFile, '--apns-key-id', providers.keyId, '--apns-team-id', providers.teamId],
            ...['--apns-topic', providers.topic, '--apns-url', providers.url, '--wake-after', '0.3'],
          ]),
        );
      }
    } finally {
      if (previous === undefined) delete process.env.NODE_EXTRA_CA_CERTS;
      else process.env.NODE_EXTRA_CA_CERTS = previous;
    }
  });

  afterAll(async () => {
    for (const n of nodes) if (n.proc.exitCode === null) process.kill(n.proc.pid as number, 'SIGKILL');
    await server?.stop();
    await providers?.close();
    for (const d of dirs) d();
    tmp.cleanup();
  });

  it('no wake while the device is connected to another node; one once it is gone', async () => {
    const [a, b] = nodes.map((n) => n.url) as [string, string];
    const dev = await registerDevice(a);
    const token = 'ab'.repeat(32);
    const setToken = async (d: { deviceId: string; token: string }, t: string) => {
      const put = await fetch(`${b}/v1/devices/${d.deviceId}/wake`, {
        method: 'PUT',
        headers: { authorization: `Device ${d.deviceId}:${d.token}`, 'content-type': 'application/json' },
        body: JSON.stringify({ provider: 'apns', token: t }),
      });
      expect(put.status).toBe(200);
    };
    await setToken(dev, token);
    const wakes = () => providers.apns.filter((r) => r.path === `/3/device/${token}`);
    const publish = (node = a, deviceId = dev.deviceId) =>
      fetch(`${node}/v1/messages`, {
        method: 'POST',
        headers: { authorization: 'Bearer test-key', 'content-type': 'application/json' },
        body: JSON.stringify({ to: { device: deviceId }, data: { secret: 'not for Apple' } }),
      });
    /**
     * Barrier, not a sleep: a message for a fresh device (a token, never connected) through
     * `node`, armed there after whatever that node armed for `dev` with the same delay, so its
     * timer fires after dev's; when its wake reaches the provider, the node has run dev's check
     * (the same steps — presence, token, pending — begun earlier), and a wake for dev would have
     * gone out on the same connection first.
     */
    let markers = 0;
    const marker = async (node: string) => {
      const m = await registerDevice(a);
      const t = (++markers).toString(16).padStart(64, 'c');
      await setToken(m, t);
      expect((await publish(node, m.deviceId)).status).toBe(202);
      await until(
        () => providers.apns.some((r) => r.path === `/3/device/${t}`),
        15_000,
        `marker wake ${markers}`,
      );
    };

    const c = new RawClient(b); // the session lives on node b; the publishes go to node a
    await c.opened();
    c.hello(dev.deviceId, dev.token);
    await c.next('welcome');
    expect((await publish()).status).toBe(202);
    const msg = await c.next('msg');
    c.send(JSON.stringify({ t: 'ack', acks: { [msg.stream]: msg.seq } }));
    await marker(a);
    expect(wakes()).toHaveLength(0);

    c.ws.close();
    await c.whenClosed();
    // Presence: node b tells the cluster the device left; node a sees it offline.
    await until(
      async () => {
        const r = await http<{ online: boolean }>(a, 'GET', `/v1/devices/${dev.deviceId}`);
        return r.status === 200 && !r.body.online;
      },
      15_000,
      'the device offline on node a',
    );
    // And node b's disconnect timer has run (nothing pending then: no wake from b).
    await marker(b);
    expect(wakes()).toHaveLength(0);
    expect((await publish()).status).toBe(202);
    await until(() => wakes().length === 1, 15_000, 'the wake');
    // No second wake from node a (it waits for the app now).
    await marker(a);
    expect(wakes()).toHaveLength(1);
    expect(wakes()[0]?.problems).toEqual([]);
    expect(wakes()[0]?.body).toBe('{"aps":{"content-available":1}}');
  });
});
