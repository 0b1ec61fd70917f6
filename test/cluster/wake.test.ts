import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startPostgres } from '../helpers/postgres.js';
import { PushProviders } from '../helpers/push-providers.js';
import { RawClient } from '../helpers/raw-client.js';
import { startRedis } from '../helpers/redis.js';
import { registerDevice, sleep, spawnServer, tempDir, until } from '../helpers/server.js';
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
    const put = await fetch(`${b}/v1/devices/${dev.deviceId}/wake`, {
      method: 'PUT',
      headers: { authorization: `Device ${dev.deviceId}:${dev.token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ provider: 'apns', token }),
    });
    expect(put.status).toBe(200);
    const wakes = () => providers.apns.filter((r) => r.path === `/3/device/${token}`);
    const publish = () =>
      fetch(`${a}/v1/messages`, {
        method: 'POST',
        headers: { authorization: 'Bearer test-key', 'content-type': 'application/json' },
        body: JSON.stringify({ to: { device: dev.deviceId }, data: { secret: 'not for Apple' } }),
      });

    const c = new RawClient(b); // the session lives on node b; the publishes go to node a
    await c.opened();
    c.hello(dev.deviceId, dev.token);
    await c.next('welcome');
    expect((await publish()).status).toBe(202);
    const msg = await c.next('msg');
    c.send(JSON.stringify({ t: 'ack', acks: { [msg.stream]: msg.seq } }));
    await sleep(1500);
    expect(wakes()).toHaveLength(0);

    c.ws.close();
    await c.whenClosed();
    await sleep(500); // presence: node b tells the cluster the device left
    expect((await publish()).status).toBe(202);
    await until(() => wakes().length === 1, 15_000, 'the wake');
    await sleep(1500);
    expect(wakes()).toHaveLength(1);
    expect(wakes()[0]?.problems).toEqual([]);
    expect(wakes()[0]?.body).toBe('{"aps":{"content-available":1}}');
  });
});
