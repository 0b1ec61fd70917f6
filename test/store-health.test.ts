import { chmodSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { SqliteStore } from '@pushwire/server';
import { describe, expect, it } from 'vitest';
import { http, registerDevice, spawnServer, startServer, tempDir } from './helpers/server.js';

const mode = (path: string) => statSync(path).mode & 0o777;

describe('readiness while the disk is full', () => {
  it('answers /readyz 503 while every store write fails (SQLITE_FULL), and 200 once a write succeeds again', async () => {
    const s = await startServer();
    try {
      const store = s.server.options.store as SqliteStore;
      const dev = await registerDevice(s.url);
      expect((await http(s.url, 'GET', '/readyz')).status).toBe(200);

      // The database may not grow any more: SQLite itself answers SQLITE_FULL, as on a full disk.
      await store.setMaxPageCount(1);
      const data = 'x'.repeat(4000);
      let failed: { status: number; body: Record<string, unknown> } | undefined;
      for (let i = 0; i < 500 && !failed; i++) {
        const r = await http(s.url, 'POST', '/v1/messages', { to: { device: dev.deviceId }, data });
        if (r.status !== 202) failed = r;
      }
      expect(failed).toMatchObject({ status: 503, body: { error: 'STORE_IO' } });
      expect(String(failed?.body.message)).toMatch(/full/i);
      const unready = await http(s.url, 'GET', '/readyz');
      expect(unready.status).toBe(503);
      expect(unready.body).toMatchObject({
        error: 'STORE_UNAVAILABLE',
        message: expect.stringMatching(/failing/),
      });
      // Liveness stays: a restart would not free the disk.
      expect((await http(s.url, 'GET', '/healthz')).status).toBe(200);
      // The sweep probes the disk with a write of its own: still full, still not ready.
      await store.sweep(Date.now());
      expect((await http(s.url, 'GET', '/readyz')).status).toBe(503);

      // Room again: the next sweep's probe brings readiness back, with no publish needed (a load
      // balancer sends none to an unready node)…
      await store.setMaxPageCount(1_000_000);
      expect((await http(s.url, 'GET', '/readyz')).status).toBe(503);
      await store.sweep(Date.now());
      expect((await http(s.url, 'GET', '/readyz')).status).toBe(200);
      // …and publishes are stored again.
      const again = await http(s.url, 'POST', '/v1/messages', { to: { device: dev.deviceId }, data });
      expect(again.status).toBe(202);
    } finally {
      await s.stop();
    }
  });
});

describe('file modes', () => {
  it('creates the database directory 0700 and makes the database files 0600', async () => {
    const { dir, cleanup } = tempDir();
    try {
      const path = join(dir, 'new', 'data', 'pushwire.db');
      const store = SqliteStore.open({ path });
      await store.ready();
      await store.createDevice({ id: 'd1', tokenHash: 'h', createdAt: 1, lastSeen: 0 });
      expect(mode(join(dir, 'new', 'data'))).toBe(0o700);
      for (const f of [path, `${path}-wal`, `${path}-shm`]) expect(mode(f), f).toBe(0o600);
      await store.close();

      // A database left readable by others (an older version) is made private when opened.
      const old = join(dir, 'old.db');
      writeFileSync(old, '');
      chmodSync(old, 0o644);
      const reopened = SqliteStore.open({ path: old });
      expect(mode(old)).toBe(0o600);
      await reopened.close();
    } finally {
      cleanup();
    }
  });

  it('pushwire serve creates its data directory 0700 (and takes the limit flags)', async () => {
    const { dir, cleanup } = tempDir();
    const data = join(dir, 'data');
    const { proc, url } = await spawnServer(data, 0, ['--max-topics-per-device', '1']);
    try {
      expect(mode(data)).toBe(0o700);
      expect(mode(join(data, 'pushwire.db'))).toBe(0o600);
      const dev = await registerDevice(url);
      expect((await http(url, 'PUT', `/v1/devices/${dev.deviceId}/topics/a`)).status).toBe(200);
      expect((await http(url, 'PUT', `/v1/devices/${dev.deviceId}/topics/b`)).body).toMatchObject({
        error: 'TOO_MANY_TOPICS',
      });
    } finally {
      proc.kill('SIGKILL');
      await new Promise((r) => proc.once('exit', r));
      cleanup();
    }
  });
});

describe('device backlog with the default bounds', () => {
  it('refuses 20,000 messages of 4 KB to one offline device past 16 MiB, with 507', async () => {
    const s = await startServer();
    try {
      const dev = await registerDevice(s.url);
      const data = 'x'.repeat(3998); // 4,000 bytes of JSON
      let accepted = 0;
      let refused = 0;
      for (let b = 0; b < 20; b++) {
        const messages = Array.from({ length: 1000 }, () => ({ to: { device: dev.deviceId }, data }));
        const r = await http<{
          accepted: number;
          refused: number;
          results: { error?: string; status?: number }[];
        }>(s.url, 'POST', '/v1/messages/batch', { messages });
        expect(r.status).toBe(202);
        accepted += r.body.accepted;
        refused += r.body.refused;
        for (const x of r.body.results)
          if (x.error) expect(x).toMatchObject({ error: 'DEVICE_BACKLOG_FULL', status: 507 });
        if (r.body.accepted === 0) break;
      }
      // 16 MiB / 4,000 B = 4,194 messages; one batch in flight may pass it by a little.
      expect(accepted).toBeGreaterThanOrEqual(4194);
      expect(accepted).toBeLessThanOrEqual(4194 + 512);
      expect(refused).toBeGreaterThan(0);
    } finally {
      await s.stop();
    }
  });
});
