/**
 * Registered Pushwire devices, cached between runs. Registering (and subscribing) 19,000 devices
 * one request at a time costs one fsync each, so a pool is built once per store schema and count
 * (in .tmp/bench/pool-<schema>-<count>), and each scenario copies its database into a fresh temp
 * data dir. A pool is built in a private directory and renamed into place, so runs that share
 * the tree never see half a pool.
 */
import { createHash } from 'node:crypto';
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { ROOT, TMP } from '../lib/proc.js';
import type { ClientSpec } from '../loadgen/messages.js';
import { startPushwireProcess } from './pushwire-process.js';

export const API_KEY = 'bench-key';
export const TOPIC = 'bench';

export interface DevicePool {
  dir: string;
  devices: ClientSpec[];
  /** How the devices were registered this run ("cached" when the pool already existed). */
  how: string;
  registerMs: number;
}

/** Hash of the store's schema code: a pool built by another schema is not reused. */
function schemaKey(): string {
  const h = createHash('sha256');
  for (const f of ['packages/server/dist/store/schema.js', 'packages/server/dist/store/sqlite.js']) {
    const p = join(ROOT, f);
    if (existsSync(p)) h.update(readFileSync(p));
  }
  return h.digest('hex').slice(0, 12);
}

/** Removes pools of other store schemas and data dirs of interrupted runs, once an hour old. */
function pruneStale(key: string): void {
  const hourAgo = Date.now() - 3600_000;
  for (const d of readdirSync(TMP)) {
    const stale = /^pool-([0-9a-f]+)-\d+$/.exec(d)?.[1] !== key && /^(pool-|pw-data-)/.test(d);
    if (!stale) continue;
    try {
      if (statSync(join(TMP, d)).mtimeMs < hourAgo) rmSync(join(TMP, d), { recursive: true, force: true });
    } catch {}
  }
}

/** A pool of at least `n` devices subscribed to the bench topic; built when missing. */
export async function devicePool(n: number, log: (s: string) => void): Promise<DevicePool> {
  const key = schemaKey();
  mkdirSync(TMP, { recursive: true });
  pruneStale(key);
  const found = readdirSync(TMP)
    .map((d) => /^pool-([0-9a-f]+)-(\d+)$/.exec(d))
    .filter((m): m is RegExpExecArray => m !== null && m[1] === key && Number(m[2]) >= n)
    .sort((a, b) => Number(a[2]) - Number(b[2]))[0];
  if (found) {
    const dir = join(TMP, found[0]);
    const devices = JSON.parse(readFileSync(join(dir, 'devices.json'), 'utf8')) as ClientSpec[];
    return { dir, devices: devices.slice(0, n), how: 'cached', registerMs: 0 };
  }
  const size = n <= 1000 ? 1000 : Math.ceil(n / 1000) * 1000;
  const work = mkdtempSync(join(TMP, 'pool-build-'));
  try {
    const start = performance.now();
    const how = await register(work, size, log);
    const registerMs = performance.now() - start;
    const final = join(TMP, `pool-${key}-${size}`);
    try {
      renameSync(work, final);
    } catch {
      rmSync(work, { recursive: true, force: true }); // someone else built it meanwhile
    }
    const devices = JSON.parse(readFileSync(join(final, 'devices.json'), 'utf8')) as ClientSpec[];
    return { dir: final, devices: devices.slice(0, n), how, registerMs };
  } catch (err) {
    rmSync(work, { recursive: true, force: true });
    throw err;
  }
}

/** A fresh data dir holding a copy of the pool's database. */
export function copyPool(pool: DevicePool): string {
  const dir = mkdtempSync(join(TMP, 'pw-data-'));
  for (const f of readdirSync(pool.dir))
    if (f.startsWith('pushwire.db')) copyFileSync(join(pool.dir, f), join(dir, f));
  return dir;
}

/** A JSON call to a Pushwire server with the bench API key. */
async function call(base: string, method: string, path: string, body?: unknown) {
  const res = await fetch(`${base}${path}`, {
    method,
    headers: {
      authorization: `Bearer ${API_KEY}`,
      ...(body !== undefined && { 'content-type': 'application/json' }),
    },
    ...(body !== undefined && { body: JSON.stringify(body) }),
  });
  const text = await res.text();
  return { status: res.status, body: text ? (JSON.parse(text) as unknown) : undefined };
}

/** Registers `n` devices on a running server through POST /v1/devices/batch (1,000 a request). */
export async function registerDevices(base: string, n: number): Promise<ClientSpec[]> {
  const devices: ClientSpec[] = [];
  for (let guard = 0; devices.length < n && guard < n; guard++) {
    const r = await call(base, 'POST', '/v1/devices/batch', {
      devices: Array.from({ length: Math.min(1000, n - devices.length) }, () => ({})),
    });
    if (r.status >= 300) throw new Error(`bulk registration failed: ${r.status} ${JSON.stringify(r.body)}`);
    for (const d of (r.body as { devices: { deviceId: string; token: string }[] }).devices)
      devices.push({ id: d.deviceId, token: d.token });
  }
  return devices;
}

async function register(dir: string, size: number, log: (s: string) => void): Promise<string> {
  const srv = await startPushwireProcess({ dataDir: dir, port: 0, apiKey: API_KEY, options: {} });
  try {
    const call = async (method: string, path: string, body?: unknown) => {
      const res = await fetch(`${srv.url}${path}`, {
        method,
        headers: {
          authorization: `Bearer ${API_KEY}`,
          ...(body !== undefined && { 'content-type': 'application/json' }),
        },
        ...(body !== undefined && { body: JSON.stringify(body) }),
      });
      const text = await res.text();
      return { status: res.status, body: text ? (JSON.parse(text) as unknown) : undefined };
    };
    const devices: ClientSpec[] = [];
    let how = 'POST /v1/devices (parallel)';
    // A bulk endpoint, when the server has one: POST /v1/devices/batch {devices:[{}…]} → {devices:[…]}.
    const probe = await call('POST', '/v1/devices/batch', { devices: [{}] });
    if (probe.status === 201 || probe.status === 200) {
      how = 'POST /v1/devices/batch';
      for (const d of (probe.body as { devices: { deviceId: string; token: string }[] }).devices) {
        devices.push({ id: d.deviceId, token: d.token });
      }
      for (let guard = 0; devices.length < size && guard < size; guard++) {
        const r = await call('POST', '/v1/devices/batch', {
          devices: Array.from({ length: Math.min(1000, size - devices.length) }, () => ({})),
        });
        if (r.status >= 300)
          throw new Error(`bulk registration failed: ${r.status} ${JSON.stringify(r.body)}`);
        for (const d of (r.body as { devices: { deviceId: string; token: string }[] }).devices) {
          devices.push({ id: d.deviceId, token: d.token });
        }
      }
    }
    const t0 = performance.now();
    let next = devices.length;
    let lastLog = 0;
    const workers = Array.from({ length: 32 }, async () => {
      while (next < size) {
        next++;
        const r = await call('POST', '/v1/devices', {});
        if (r.status !== 201) throw new Error(`registration failed: ${r.status} ${JSON.stringify(r.body)}`);
        const d = r.body as { deviceId: string; token: string };
        devices.push({ id: d.deviceId, token: d.token });
        if (performance.now() - lastLog > 3000) {
          lastLog = performance.now();
          log(`  registering devices: ${devices.length}/${size}`);
        }
      }
    });
    await Promise.all(workers);
    let done = 0;
    const subs = Array.from({ length: 32 }, async (_, w) => {
      for (let i = w; i < devices.length; i += 32) {
        const r = await call('PUT', `/v1/devices/${encodeURIComponent(devices[i]!.id)}/topics/${TOPIC}`);
        if (r.status !== 200) throw new Error(`subscribe failed: ${r.status} ${JSON.stringify(r.body)}`);
        done++;
        if (performance.now() - lastLog > 3000) {
          lastLog = performance.now();
          log(`  subscribing devices to "${TOPIC}": ${done}/${devices.length}`);
        }
      }
    });
    await Promise.all(subs);
    log(`  registered ${devices.length} devices in ${Math.round(performance.now() - t0)} ms (${how})`);
    writeFileSync(join(dir, 'devices.json'), JSON.stringify(devices));
    return how;
  } finally {
    await srv.stop();
  }
}
