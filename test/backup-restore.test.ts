import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createClient, fileStorage, type PushwireClient } from '@pushwire/client/node';
import { afterAll, describe, expect, it } from 'vitest';
import { Collector } from './helpers/collector.js';
import { API_KEY, CLI, http, registerDevice, spawnServer, tempDir, until } from './helpers/server.js';

/**
 * `pushwire backup` while a server takes publishes, `pushwire restore` into a fresh data dir, a
 * server on it: every message accepted before the backup began reaches its devices once, nothing
 * is invented, and devices that had received messages after the backup (their cursors are past
 * the restored streams) still get new ones.
 */

function cli(args: string[]): Promise<{ code: number | null; out: string }> {
  const proc: ChildProcess = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  proc.stdout?.on('data', (d) => {
    out += d;
  });
  proc.stderr?.on('data', (d) => {
    out += d;
  });
  return new Promise((resolve) => proc.once('exit', (code) => resolve({ code, out })));
}

type Target = { user: string } | { topic: string };
const TARGETS: Target[] = [{ user: 'on' }, { user: 'off' }, { topic: 'news' }];
const key = (t: Target) => ('user' in t ? `u:${t.user}` : `t:${t.topic}`);

describe('backup under load, restore, serve', () => {
  const tmp = tempDir();
  const procs: ChildProcess[] = [];
  const clients: PushwireClient[] = [];
  afterAll(async () => {
    await Promise.all(clients.map((c) => c.close()));
    for (const p of procs) p.kill('SIGKILL');
    tmp.cleanup();
  });

  it('loses no message accepted before the backup, invents none, and devices ahead still get new ones', async () => {
    const dirA = join(tmp.dir, 'a');
    const dirB = join(tmp.dir, 'b');
    const backupFile = join(tmp.dir, 'pushwire.backup');
    const a = await spawnServer(dirA);
    procs.push(a.proc);
    // As `serve` without --api-key leaves it: the backup carries it, the restore puts it back.
    writeFileSync(join(dirA, 'api-key'), `${API_KEY}\n`, { mode: 0o600 });

    // Devices: "on" ones listen during the load (their cursors move past the backup), "off" ones
    // only after the restore. on1 and off1 also follow the topic.
    const names = ['on1', 'on2', 'off1', 'off2'] as const;
    type Name = (typeof names)[number];
    const creds = {} as Record<Name, { deviceId: string; token: string }>;
    for (const n of names) creds[n] = await registerDevice(a.url, n.startsWith('on') ? 'on' : 'off');
    for (const n of ['on1', 'off1'] as const) {
      expect((await http(a.url, 'PUT', `/v1/devices/${creds[n].deviceId}/topics/news`)).status).toBe(200);
    }
    const targetsOf: Record<Name, string[]> = {
      on1: ['u:on', 't:news'],
      on2: ['u:on'],
      off1: ['u:off', 't:news'],
      off2: ['u:off'],
    };
    const collectors = Object.fromEntries(names.map((n) => [n, new Collector()])) as Record<Name, Collector>;
    const connect = (n: Name, url: string) => {
      const c = createClient({
        url,
        credentials: creds[n],
        storage: fileStorage(join(tmp.dir, `${n}.json`)),
        heartbeat: { interval: 10, pongTimeout: 5 },
        backoff: { initial: 100, max: 1000 },
      });
      c.on('message', collectors[n].onMessage);
      clients.push(c);
      return c;
    };
    const live = [connect('on1', a.url), connect('on2', a.url)];
    await until(() => live.every((c) => c.state === 'open'), 10_000, 'live devices open');

    // Publishing load: 4 publishers, round robin over the targets, until told to stop.
    const accepted: { id: string; target: string; at: number }[] = [];
    let n = 0;
    let stop = false;
    const publisher = async () => {
      while (!stop) {
        const i = n++;
        const to = TARGETS[i % TARGETS.length]!;
        const r = await http<{ id: string }>(a.url, 'POST', '/v1/messages', {
          to,
          id: `m-${i}`,
          data: { i },
        });
        if (r.status !== 202) throw new Error(`publish ${i}: ${r.status} ${JSON.stringify(r.body)}`);
        accepted.push({ id: r.body.id, target: key(to), at: Date.now() });
      }
    };
    const load = Promise.all([publisher(), publisher(), publisher(), publisher()]);
    await until(() => accepted.length >= 300, 30_000, '300 publishes');

    // The backup, while the load goes on. Everything accepted before this point must survive.
    const before = new Set(accepted.map((m) => m.id));
    const backupStart = Date.now();
    const backup = await cli(['backup', '--data', dirA, '--out', backupFile]);
    const backupEnd = Date.now();
    expect(backup.code, backup.out).toBe(0);
    expect(backup.out).toMatch(/written to .*: \d+ bytes, schema \d+, 4 devices/);
    const during = accepted.filter((m) => m.at > backupStart && m.at < backupEnd).length;
    expect(during, 'publishes accepted while the backup ran').toBeGreaterThan(0);
    // More after it: the live devices receive these, so their cursors pass the backup's heads.
    const target = accepted.length + 150;
    await until(() => accepted.length >= target, 30_000, '150 more publishes');
    stop = true;
    await load;
    const sentTo = (n: Name, ids = accepted) =>
      ids.filter((m) => targetsOf[n].includes(m.target)).map((m) => m.id);
    await until(
      () => (['on1', 'on2'] as const).every((d) => collectors[d].has(sentTo(d))),
      20_000,
      'the live devices to get everything',
    );
    await Promise.all(live.map((c) => c.close())); // cursors saved in their state files

    // restore refuses the data dir of the running server.
    const refused = await cli(['restore', '--from', backupFile, '--data', dirA]);
    expect(refused.code).toBe(1);
    expect(refused.out).toMatch(/data dir of a running pushwire serve \(pid \d+\): stop it/);
    a.proc.kill('SIGKILL'); // the machine is lost
    await new Promise((r) => a.proc.once('exit', r));

    const restored = await cli(['restore', '--from', backupFile, '--data', dirB]);
    expect(restored.code, restored.out).toBe(0);
    expect(readFileSync(join(dirB, 'api-key'), 'utf8').trim()).toBe(API_KEY);
    expect(restored.out).toMatch(/API key restored/);
    // A second restore into the same dir needs --force.
    const again = await cli(['restore', '--from', backupFile, '--data', dirB]);
    expect(again.code).toBe(1);
    expect(again.out).toMatch(/already holds a store: .*--force/);
    // With --force it replaces the store and keeps the old one beside it.
    const forced = await cli(['restore', '--from', backupFile, '--data', dirB, '--force']);
    expect(forced.code, forced.out).toBe(0);
    expect(readdirSync(dirB).filter((f) => f.startsWith('pushwire.db.before-restore-'))).toHaveLength(1);
    expect(statSync(backupFile).mode & 0o777).toBe(0o600);

    const b = await spawnServer(dirB);
    procs.push(b.proc);
    const afterRestore = names.map((d) => connect(d, b.url));
    await until(
      () => afterRestore.every((c) => c.state === 'open'),
      15_000,
      'all devices open on the restored server',
    );

    // New messages after the restore reach every device, those ahead of the restored streams too.
    const fresh: { id: string; target: string }[] = [];
    for (const to of TARGETS) {
      for (let i = 0; i < 3; i++) {
        const r = await http<{ id: string }>(b.url, 'POST', '/v1/messages', { to, data: { fresh: i } });
        expect(r.status).toBe(202);
        fresh.push({ id: r.body.id, target: key(to) });
      }
    }
    const all = new Set([...accepted.map((m) => m.id), ...fresh.map((m) => m.id)]);
    for (const d of names) {
      const mustHave = [
        ...sentTo(
          d,
          accepted.filter((m) => before.has(m.id)),
        ),
        ...fresh.filter((m) => targetsOf[d].includes(m.target)).map((m) => m.id),
      ];
      await until(
        () => collectors[d].has(mustHave),
        20_000,
        `${d}: every message accepted before the backup, and the new ones`,
      ).catch((err: Error) => {
        throw new Error(`${err.message}; lost ${collectors[d].lost(mustHave).length} of ${mustHave.length}`);
      });
    }
    // Let anything extra arrive before counting it.
    const probe = await http<{ id: string }>(b.url, 'POST', '/v1/messages', { to: { user: 'off' } });
    await until(() => collectors.off2.has([probe.body.id]), 10_000, 'probe');
    for (const d of names) {
      const col = collectors[d];
      const mine = new Set([
        ...sentTo(d),
        ...fresh.filter((m) => targetsOf[d].includes(m.target)).map((m) => m.id),
      ]);
      if (d.startsWith('off')) mine.add(probe.body.id);
      expect(col.duplicated, `${d} duplicated`).toBe(0);
      expect(col.outOfOrder(), `${d} out of order`).toEqual([]);
      const invented = col.messages.filter((m) => !all.has(m.id) && m.id !== probe.body.id);
      expect(invented, `${d} invented`).toEqual([]);
      expect(
        col.messages.filter((m) => !mine.has(m.id)),
        `${d} got another device's message`,
      ).toEqual([]);
    }
    expect(existsSync(join(dirB, 'pushwire.db'))).toBe(true);
    console.log(
      `backup/restore: ${accepted.length} accepted (${before.size} before the backup, ${during} while it ran, ` +
        `backup ${backupEnd - backupStart} ms incl. process start), received ${names
          .map((d) => `${d} ${collectors[d].received}`)
          .join(', ')}, lost 0, duplicated 0`,
    );
  }, 120_000);

  it('refuses what is not a backup, and a data dir without a store, clearly and without side effects', async () => {
    const junk = join(tmp.dir, 'junk.backup');
    writeFileSync(junk, 'not a database at all, just some bytes'.repeat(100));
    const dir = join(tmp.dir, 'untouched');
    const notSqlite = await cli(['restore', '--from', junk, '--data', dir]);
    expect(notSqlite.code).toBe(1);
    expect(notSqlite.out).toMatch(/is not a SQLite database/);
    expect(existsSync(dir)).toBe(false);
    const missing = await cli(['restore', '--from', join(tmp.dir, 'nope.backup'), '--data', dir]);
    expect(missing.code).toBe(1);
    expect(missing.out).toMatch(/is not a SQLite database/);
    const noStore = await cli([
      'backup',
      '--data',
      join(tmp.dir, 'empty'),
      '--out',
      join(tmp.dir, 'x.backup'),
    ]);
    expect(noStore.code).toBe(1);
    expect(noStore.out).toMatch(/holds no Pushwire store/);
    expect(existsSync(join(tmp.dir, 'x.backup'))).toBe(false);
  });
});
