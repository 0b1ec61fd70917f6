/**
 * Peer: NATS JetStream, the durable broker peer. `nats-server -js` on a free port with its store
 * (`-sd`) in a temp dir on the same disk as Pushwire's data, one stream with file storage that
 * captures every device subject (`d.>`) and the broadcast subject. Devices are core-NATS
 * subscribers of their own subject (`d.<id>`) and of the broadcast subject; the publisher
 * publishes with a JetStream ack (bench/loadgen/nats-publisher.ts).
 *
 * What the ack means: the stream has appended the message to its file (the OS page cache); the
 * store is fsync'd every `sync_interval` (2 minutes by default), not per message. Core
 * subscribers receive the message as it passes the server, whether or not the stream stored it.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { NATS_PONG, natsConnect, natsPub, parseNats } from '../lib/nats.js';
import { freePort, SERVER_CORE, spawnPinned, stopProcess, TMP } from '../lib/proc.js';
import { benchPayload, sleep, wallMs } from '../lib/util.js';
import { waitForPort } from './net.js';
import type { Peer } from './targets.js';

const HOST = '127.0.0.1';
export const NATS_STREAM = 'BENCH';
export const NATS_TOPIC = 'bench';

/** Path of nats-server (Debian: /usr/sbin/nats-server), or undefined. */
export const NATS_SERVER = (() => {
  for (const p of ['/usr/sbin/nats-server', '/usr/bin/nats-server', '/usr/local/bin/nats-server'])
    if (existsSync(p)) return p;
  try {
    return execFileSync('bash', ['-c', 'command -v nats-server'], { encoding: 'utf8' }).trim() || undefined;
  } catch {
    return undefined;
  }
})();

export function natsVersion(): string {
  if (!NATS_SERVER) return 'not installed';
  try {
    return (
      /v?(\d+\.\d+\.\d+)/.exec(execFileSync(NATS_SERVER, ['--version'], { encoding: 'utf8' }))?.[1] ?? '?'
    );
  } catch {
    return '?';
  }
}

/** A control connection: request/reply over an inbox, and publishes for broadcasts. */
class Control {
  private rest: Buffer | undefined;
  private next = 0;
  private readonly waiting = new Map<string, (payload: string) => void>();
  private constructor(readonly sock: Socket) {}

  static async open(port: number): Promise<Control> {
    const sock = connect({ host: HOST, port });
    sock.setNoDelay(true);
    sock.on('error', () => {});
    const c = new Control(sock);
    await new Promise<void>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error('nats: no PONG after CONNECT')), 5000);
      sock.on('data', (d: Buffer) => {
        const r = parseNats(c.rest ? Buffer.concat([c.rest, d]) : d, {
          msg: (subject, _reply, payload) => {
            const w = c.waiting.get(subject);
            c.waiting.delete(subject);
            w?.(payload.toString('utf8'));
          },
          ping: () => sock.write(NATS_PONG),
          pong: () => {
            clearTimeout(t);
            resolve();
          },
          err: () => {},
        });
        c.rest = r ?? undefined;
      });
      sock.once('connect', () => sock.write(`${natsConnect('bench-control')}SUB _INBOX.ctl.* 1\r\nPING\r\n`));
    });
    return c;
  }

  /** Publishes with a reply inbox; resolves with the reply, or undefined after `timeoutMs`. */
  request(subject: string, payload: string, timeoutMs = 2000): Promise<string | undefined> {
    const inbox = `_INBOX.ctl.${++this.next}`;
    return new Promise((resolve) => {
      const t = setTimeout(() => {
        this.waiting.delete(inbox);
        resolve(undefined);
      }, timeoutMs);
      this.waiting.set(inbox, (p) => {
        clearTimeout(t);
        resolve(p);
      });
      this.sock.write(natsPub(subject, inbox, payload));
    });
  }
}

export async function startNats(): Promise<Peer> {
  const bin = NATS_SERVER;
  if (!bin) throw new Error('nats-server is not installed: run bash bench/setup.sh');
  const port = await freePort();
  const dir = mkdtempSync(join(TMP, 'nats-'));
  const spawnIt = async () => {
    const proc = spawnPinned(bin, ['-js', '-a', HOST, '-p', String(port), '-sd', dir], {
      core: SERVER_CORE,
    });
    proc.stdout?.resume();
    proc.stderr?.resume();
    await waitForPort(port, 10_000);
    return proc;
  };
  let proc = await spawnIt();
  let ctl = await Control.open(port);
  const config = JSON.stringify({
    name: NATS_STREAM,
    subjects: ['d.>', NATS_TOPIC],
    storage: 'file',
    retention: 'limits',
    discard: 'old',
    max_bytes: 2 ** 30,
    num_replicas: 1,
  });
  // JetStream may still be starting when the port opens: retry the create (bounded).
  let created: string | undefined;
  for (let k = 0; k < 10 && !created?.includes('"config"'); k++) {
    created = await ctl.request(`$JS.API.STREAM.CREATE.${NATS_STREAM}`, config);
    if (!created?.includes('"config"')) await sleep(200);
  }
  if (!created?.includes('"config"')) {
    await stopProcess(proc);
    throw new Error(`nats: cannot create the stream: ${created ?? 'no answer'}`);
  }
  return {
    name: 'nats',
    proto: 'nats',
    host: HOST,
    port,
    path: '',
    topic: NATS_TOPIC,
    pid: () => proc.pid!,
    clients: (n) => Array.from({ length: n }, (_, i) => ({ id: String(i) })),
    async broadcast(r, bytes) {
      const t0 = wallMs();
      // A JetStream publish: the stream stores it (and acks); subscribers get it as it passes.
      void ctl.request(NATS_TOPIC, JSON.stringify(benchPayload(r, bytes, t0)), 10_000);
      return t0;
    },
    async kill9() {
      ctl.sock.destroy();
      await stopProcess(proc, 'SIGKILL');
    },
    async restart() {
      const spawnedAt = wallMs();
      proc = await spawnIt();
      ctl = await Control.open(port);
      return { spawnedAt, listeningAt: wallMs() };
    },
    async stop() {
      ctl.sock.destroy();
      await stopProcess(proc);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
