/**
 * "One message per request", as an application backend publishes: undici's `Pool` (an ordinary
 * HTTP/1.1 client pool), `connections` keep-alive connections, no pipelining, `window` requests in
 * flight per connection (the pool queues what does not fit on a connection). Each POST
 * /v1/messages carries one message; it counts as accepted on its 202.
 */
import { Pool } from 'undici';
import { benchPayload, sleep } from '../lib/util.js';
import { countStatus, newPublishResult, openLoop, type PublishCmd, type PublishResult } from './messages.js';

/** Open loop: requests queued in the pool at most before new ones are counted as overload. */
const MAX_QUEUED = 5000;

export async function poolPublish(cmd: PublishCmd, stopped: () => boolean): Promise<PublishResult> {
  const res = newPublishResult();
  const connections = Math.max(1, cmd.connections);
  const pool = new Pool(`http://${cmd.host}:${cmd.port}`, {
    connections,
    pipelining: 1,
    keepAliveTimeout: 60_000,
    headersTimeout: 30_000,
    bodyTimeout: 30_000,
  });
  const headers = { authorization: `Bearer ${cmd.apiKey}`, 'content-type': 'application/json' };
  const count = (k: string) => countStatus(res, k);
  let inFlight = 0;
  const one = async (): Promise<void> => {
    const to = cmd.targets[Math.floor(Math.random() * cmd.targets.length)]!;
    const body = `{"to":{"device":${JSON.stringify(to)}},"data":${JSON.stringify(benchPayload(0, cmd.payloadBytes))}}`;
    inFlight++;
    res.sent++;
    try {
      const r = await pool.request({ path: '/v1/messages', method: 'POST', headers, body });
      const text = await r.body.text();
      count(String(r.statusCode));
      if (r.statusCode !== 202) res.failed++;
      else {
        res.accepted++;
        if (cmd.keepAccepted) {
          const e = (JSON.parse(text) as { entries?: { stream: string; seq: number }[] }).entries ?? [];
          for (const x of e) res.acceptedEntries.push([x.stream, x.seq]);
        }
      }
    } catch (err) {
      count((err as { code?: string }).code ?? 'error');
      res.unanswered++;
    } finally {
      inFlight--;
    }
  };
  const start = performance.now();
  const end = start + cmd.durationMs;
  const live = () => !stopped() && performance.now() < end;
  if (cmd.rate === 0) {
    // Closed loop: connections × window lanes, each sends its next request when the last answered.
    const lanes = Array.from({ length: connections * Math.max(1, cmd.window) }, async () => {
      while (live()) await one();
    });
    await Promise.all(lanes);
    res.elapsedMs = performance.now() - start;
  } else {
    const pending = new Set<Promise<void>>();
    await openLoop(cmd.rate, start, live, () => {
      if (inFlight >= MAX_QUEUED) {
        count('overload');
        res.sent++;
        res.failed++;
        return;
      }
      const p = one();
      pending.add(p);
      p.finally(() => pending.delete(p));
    });
    res.elapsedMs = performance.now() - start;
    await Promise.race([Promise.all(pending), sleep(15_000)]);
  }
  await pool.destroy().catch(() => {});
  return res;
}
