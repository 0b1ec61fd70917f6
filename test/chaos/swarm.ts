/**
 * A swarm of SDK clients in one child process, for the reconnect-storm scenarios: the parent
 * forks it (`node --import tsx test/chaos/swarm.ts`), sends a {@link SwarmConfig} over IPC, and
 * gets batched {@link SwarmEvent}s back (every 100 ms), with wall-clock times from this process.
 * `{cmd: 'close'}` closes every client and exits.
 */
import { join } from 'node:path';
import { createClient, fileStorage, memoryStorage, type PushwireClient } from '@pushwire/client/node';

export interface SwarmConfig {
  cmd: 'start';
  url: string;
  devices: { deviceId: string; token: string }[];
  /** Index of the first device in the parent's list (events carry global indexes). */
  offset: number;
  /** `file`: one state file per client under `dir` (fsync per save). Default memory. */
  storage?: 'memory' | 'file';
  dir?: string;
  /** Client backoff `stableAfter` (ms): test sessions live seconds, not hours. */
  stableAfter?: number;
}

export type SwarmEvent =
  | { k: 'state'; i: number; to: string; t: number }
  | { k: 'msg'; i: number; id: string; t: number }
  | { k: 'err'; i: number; code: string; t: number };

export type SwarmMessage = { k: 'batch'; events: SwarmEvent[] } | { k: 'closed' };

if (process.send) {
  const send = process.send.bind(process);
  let batch: SwarmEvent[] = [];
  const flush = () => {
    if (batch.length === 0) return;
    send({ k: 'batch', events: batch } satisfies SwarmMessage);
    batch = [];
  };
  const flusher = setInterval(flush, 100);
  const clients: PushwireClient[] = [];

  process.on('message', async (m: SwarmConfig | { cmd: 'close' }) => {
    if (m.cmd === 'start') {
      for (const [j, creds] of m.devices.entries()) {
        const i = m.offset + j;
        const storage =
          m.storage === 'file' && m.dir ? fileStorage(join(m.dir, `client-${i}.json`)) : memoryStorage();
        const c = createClient({
          url: m.url,
          credentials: creds,
          storage,
          ...(m.stableAfter !== undefined && { backoff: { stableAfter: m.stableAfter } }),
        });
        c.on('state', ({ to }) => batch.push({ k: 'state', i, to, t: Date.now() }));
        c.on('message', (msg) => batch.push({ k: 'msg', i, id: msg.id, t: Date.now() }));
        c.on('error', (e) => batch.push({ k: 'err', i, code: e.code, t: Date.now() }));
        clients.push(c);
      }
      return;
    }
    await Promise.all(clients.map((c) => c.close()));
    clearInterval(flusher);
    flush();
    send({ k: 'closed' } satisfies SwarmMessage, () => process.exit(0));
  });
  // The parent died: do not linger.
  process.on('disconnect', () => process.exit(0));
}
