import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RawClient } from '../helpers/raw-client.js';
import { http, registerDevice } from '../helpers/server.js';
import { type Cluster, startCluster } from './cluster.js';

describe('scoped keys on a Redis cluster of two nodes', () => {
  let c: Cluster;
  beforeAll(async () => {
    c = await startCluster(2);
  }, 60_000);
  afterAll(() => c?.stop());

  it('a key created on one node works on the other; revoked on one, the other refuses it at once', async () => {
    const [a, b] = c.nodes.map((n) => n.url) as [string, string];
    const created = await http<{ id: string; key: string }>(a, 'POST', '/v1/keys', {
      scopes: ['publish', 'status'],
      label: 'cluster',
    });
    expect(created.status).toBe(201);
    const { id, key } = created.body;
    expect((await http(b, 'GET', '/v1/admin/stats', undefined, key)).status).toBe(200);
    expect((await http(b, 'POST', '/v1/messages', { to: { topic: 'news' }, data: 1 }, key)).status).toBe(202);
    // A register-only scope is still refused on the other node.
    expect((await http(b, 'DELETE', `/v1/keys/${id}`, undefined, key)).status).toBe(403);

    expect((await http(a, 'DELETE', `/v1/keys/${id}`)).status).toBe(204);
    const after = await http<{ error: string }>(b, 'POST', '/v1/messages', { to: { topic: 'news' } }, key);
    expect(after.status).toBe(401);
    expect(after.body.error).toBe('UNAUTHORIZED');
    expect((await http(a, 'GET', '/v1/admin/stats', undefined, key)).status).toBe(401);
    const listed = await http<{ keys: { id: string; revokedAt: number | null }[] }>(b, 'GET', '/v1/keys');
    expect(listed.body.keys.find((k) => k.id === id)?.revokedAt).toBeGreaterThan(0);
  });

  it('a token rotated on one node closes the session held by the other at once', async () => {
    const [a, b] = c.nodes.map((n) => n.url) as [string, string];
    const d = await registerDevice(a);
    const ws = new RawClient(b);
    await ws.opened();
    ws.hello(d.deviceId, d.token);
    await ws.next('welcome');
    const r = await fetch(`${a}/v1/devices/${d.deviceId}/token`, {
      method: 'POST',
      headers: { authorization: `Device ${d.deviceId}:${d.token}` },
    });
    expect(r.status).toBe(200);
    expect(await ws.next('error', 10_000)).toMatchObject({ code: 'TOKEN_ROTATED', fatal: true });
    expect((await ws.whenClosed()).code).toBe(4012);
    const stale = new RawClient(b);
    await stale.opened();
    stale.hello(d.deviceId, d.token);
    expect(await stale.next('error')).toMatchObject({ code: 'UNAUTHORIZED' });
  });
});
