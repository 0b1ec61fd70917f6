import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { createClient, memoryStorage } from '@pushwire/client';
import { SqliteStore } from '@pushwire/server';
import Database from 'better-sqlite3';
import { afterAll, describe, expect, it } from 'vitest';
import { migrate, SCHEMA_VERSION } from '../packages/server/src/store/schema.js';
import { Collector } from './helpers/collector.js';
import { http, startServer, tempDir, until } from './helpers/server.js';

/**
 * Every schema an earlier release wrote opens, migrates and serves: for each version v below the
 * current one, a database is built by the migrations up to v and filled as that release's server
 * wrote it (devices, streams, entries, a topic subscription, cursors, publish records), then a
 * server opens it, a device resumes from its cursor and new messages flow.
 */

const sha256 = (s: string) => createHash('sha256').update(s).digest('hex');
const NOW = Date.now();
const EXP = NOW + 3_600_000;

/** What a release with schema version 1 left behind (its own statements' shapes). */
function fillAsVersion1(db: Database.Database): void {
  const device = db.prepare(
    'INSERT INTO devices (id, token_hash, user, created_at, last_seen) VALUES (?, ?, ?, ?, ?)',
  );
  device.run('dev-one', sha256('token-one'), 'alice', NOW - 60_000, NOW - 30_000);
  device.run('dev-two', sha256('token-two'), 'alice', NOW - 60_000, 0);
  const entry = db.prepare(
    `INSERT INTO entries (stream, seq, prev_seq, id, data, notification, urgency, collapse_key, ts, exp)
     VALUES (?, ?, ?, ?, ?, ?, ?, NULL, ?, ?)`,
  );
  const publish = db.prepare('INSERT INTO publishes (id, entries, ts, exp) VALUES (?, ?, ?, ?)');
  for (let seq = 1; seq <= 3; seq++) {
    const id = `old-${seq}`;
    entry.run(
      'd:dev-one',
      seq,
      seq - 1,
      id,
      JSON.stringify({ seq }),
      JSON.stringify({ title: `T${seq}` }),
      'normal',
      NOW - 10_000,
      EXP,
    );
    publish.run(id, JSON.stringify([{ stream: 'd:dev-one', seq }]), NOW - 10_000, EXP);
  }
  db.prepare('INSERT INTO streams (name, head) VALUES (?, ?)').run('d:dev-one', 3);
  db.prepare('INSERT INTO subscriptions (device_id, topic) VALUES (?, ?)').run('dev-one', 'news');
  entry.run('t:news', 1, 0, 'news-1', JSON.stringify('hello'), null, null, NOW - 5_000, EXP);
  publish.run('news-1', JSON.stringify([{ stream: 't:news', seq: 1 }]), NOW - 5_000, EXP);
  const cursor = db.prepare('INSERT INTO cursors (device_id, stream, seq) VALUES (?, ?, ?)');
  cursor.run('dev-one', 'd:dev-one', 1); // old-1 acknowledged
  cursor.run('dev-one', 't:news', 0);
}

describe('schema migrations from every earlier version', () => {
  const tmp = tempDir();
  afterAll(() => tmp.cleanup());

  const versions = Array.from({ length: SCHEMA_VERSION - 1 }, (_, i) => i + 1);
  it('there is at least one earlier version to test', () => {
    expect(SCHEMA_VERSION).toBeGreaterThanOrEqual(2);
  });

  it.each(versions)('a store written at schema version %i opens, migrates and serves', async (version) => {
    const path = join(tmp.dir, `v${version}.db`);
    const old = new Database(path);
    old.pragma('journal_mode = WAL');
    migrate(old, version);
    expect(old.pragma('user_version', { simple: true })).toBe(version);
    fillAsVersion1(old);
    old.close();

    const store = SqliteStore.open({ path });
    const { url, stop } = await startServer({ store });
    const col = new Collector();
    const client = createClient({
      url,
      credentials: { deviceId: 'dev-one', token: 'token-one' },
      storage: memoryStorage(),
    });
    client.on('message', col.onMessage);
    try {
      // Resumes after its stored cursor: old-2, old-3 and the topic's message; not old-1.
      await until(() => col.has(['old-2', 'old-3', 'news-1']), 10_000, 'the stored messages');
      const status = await http<{ id: string }>(url, 'GET', '/v1/messages/old-3');
      expect(status.status).toBe(200);
      // New messages continue each stream's numbering.
      const fresh = await http<{ recipients: number; entries: { stream: string; seq: number }[] }>(
        url,
        'POST',
        '/v1/messages',
        { to: { user: 'alice' }, data: 'after the migration' },
      );
      expect(fresh.status).toBe(202);
      expect(fresh.body.recipients).toBe(2);
      expect(fresh.body.entries).toContainEqual({ stream: 'd:dev-one', seq: 4 });
      expect(fresh.body.entries).toContainEqual({ stream: 'd:dev-two', seq: 1 });
      const topic = await http<{ recipients: number }>(url, 'POST', '/v1/messages', {
        to: { topic: 'news' },
      });
      expect(topic.body.recipients).toBe(1);
      await until(() => col.received === 5, 10_000, 'the new messages');
      expect(col.lost(['old-2', 'old-3', 'news-1'])).toEqual([]);
      expect(col.messages.map((m) => m.id)).not.toContain('old-1');
      expect(col.duplicated).toBe(0);
      expect(col.outOfOrder()).toEqual([]);
    } finally {
      await client.close();
      await stop();
    }
    const after = new Database(path, { readonly: true });
    expect(after.pragma('user_version', { simple: true })).toBe(SCHEMA_VERSION);
    after.close();
  });
});

describe('schema migration 5: Web Push subscriptions go with their device; devices remember their register key', () => {
  const tmp = tempDir();
  afterAll(() => tmp.cleanup());

  it('purges the subscriptions of devices deleted before, keeps the others, and counts register keys from then on', async () => {
    const path = join(tmp.dir, 'v4-webpush.db');
    const old = new Database(path);
    old.pragma('journal_mode = WAL');
    migrate(old, 4);
    fillAsVersion1(old);
    // The registry created its table on first use; one subscription's device was deleted since.
    old.exec(`CREATE TABLE webpush_subscriptions (id TEXT PRIMARY KEY, device_id TEXT NOT NULL,
      capability_hash TEXT NOT NULL UNIQUE, application_server_key TEXT, topic_key TEXT NOT NULL,
      created_at INTEGER NOT NULL, revoked_at INTEGER) STRICT`);
    const sub = old.prepare('INSERT INTO webpush_subscriptions VALUES (?, ?, ?, NULL, ?, ?, NULL)');
    sub.run('s-live', 'dev-one', sha256('cap-live'), 'tk1', NOW);
    sub.run('s-orphan', 'dev-gone', sha256('cap-orphan'), 'tk2', NOW);
    old.close();

    const store = SqliteStore.open({ path });
    try {
      expect((await store.webPushRegistry.listByDevice('dev-one')).map((s) => s.id)).toEqual(['s-live']);
      expect(await store.webPushRegistry.byId('s-orphan')).toBeUndefined();
      // Devices of earlier releases have no key; new ones are counted against theirs.
      const limits = { maxDevicesPerKey: 1 };
      const made = { tokenHash: 'h', createdAt: NOW, lastSeen: 0, keyId: 'key_x' };
      await store.createDevice({ id: 'dev-new', ...made }, limits);
      await expect(store.createDevice({ id: 'dev-new2', ...made }, limits)).rejects.toMatchObject({
        quota: 'DEVICE_QUOTA_EXCEEDED',
      });
      await store.deleteDevice('dev-one');
      expect(await store.webPushRegistry.byId('s-live')).toBeUndefined();
    } finally {
      await store.close();
    }
  });
});
