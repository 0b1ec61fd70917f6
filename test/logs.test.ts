import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { killSqliteWriter } from './helpers/fault.js';
import { RawClient } from './helpers/raw-client.js';
import { http, registerDevice, startServer, until } from './helpers/server.js';

/** A pino logger at `level` whose JSON lines are kept in memory. */
function captureLogger(level: string) {
  const lines: { level: number; msg: string }[] = [];
  const logger = pino({ level }, { write: (line: string) => void lines.push(JSON.parse(line)) });
  return { logger, lines };
}

const N = 200;

/** Connects, publishes N messages to the device, receives and acks them all, closes. */
async function traffic(url: string, device: { deviceId: string; token: string }, lines: unknown[]) {
  const c = new RawClient(url);
  await c.opened();
  c.hello(device.deviceId, device.token);
  await c.next('welcome');
  const before = lines.length;
  for (let i = 0; i < N; i++) {
    const r = await http(url, 'POST', '/v1/messages', { to: { device: device.deviceId }, data: { i } });
    expect(r.status).toBe(202);
  }
  let last = -1;
  let received = 0;
  for (let i = 0; i < N; i++) {
    const m = await c.next('msg');
    if (last >= 0) expect(m.seq).toBe(last + 1);
    last = m.seq;
    received++;
  }
  c.send(JSON.stringify({ t: 'ack', acks: { [`d:${device.deviceId}`]: last } }));
  c.send(JSON.stringify({ t: 'ping' }));
  await c.next('pong');
  const during = lines.length - before;
  c.close();
  await c.whenClosed();
  return { received, during };
}

describe('structured logs (pino)', () => {
  it(`writes nothing per message at info (${N} publishes, deliveries and acks)`, async () => {
    const { logger, lines } = captureLogger('info');
    const s = await startServer({ logger });
    try {
      const device = await registerDevice(s.url);
      const { received, during } = await traffic(s.url, device, lines);
      expect(received).toBe(N);
      expect(during).toBe(0);
      expect(lines.filter((l) => l.level < 30)).toEqual([]);
    } finally {
      await s.stop();
    }
  });

  it('writes one line per connection lifecycle event at debug, still nothing per message', async () => {
    const { logger, lines } = captureLogger('debug');
    const s = await startServer({ logger });
    try {
      const device = await registerDevice(s.url);
      const { during } = await traffic(s.url, device, lines);
      expect(during).toBe(0);
      await traffic(s.url, device, lines);
      // A wrong token: refused, one line.
      const bad = new RawClient(s.url);
      await bad.opened();
      bad.hello(device.deviceId, 'not-the-token');
      await bad.whenClosed();
      const count = (msg: string) => lines.filter((l) => l.msg === msg).length;
      // The refusal is logged when the server closes the socket: wait for that line, not a while.
      await until(() => count('session refused: unauthorized') >= 1, 5000, 'the refusal line');
      expect(count('session open')).toBe(2);
      expect(count('session closed')).toBe(2);
      expect(count('session refused: unauthorized')).toBe(1);
      const lifecycle = lines.filter((l) => l.level === 20);
      expect(lifecycle).toHaveLength(5);
      expect(lines.filter((l) => l.level === 20 && /message|publish|deliver|ack/.test(l.msg))).toEqual([]);
    } finally {
      await s.stop();
    }
  });

  it('logs a failing store once per 10 s, with a count, not once per ack', async () => {
    const { logger, lines } = captureLogger('info');
    const s = await startServer({ logger });
    try {
      const device = await registerDevice(s.url);
      const c = new RawClient(s.url);
      await c.opened();
      c.hello(device.deviceId, device.token);
      await c.next('welcome');
      const r = await http<{ entries: { seq: number }[] }>(s.url, 'POST', '/v1/messages', {
        to: { device: device.deviceId },
        data: {},
      });
      const seq = r.body.entries[0]!.seq;
      await c.next('msg');
      // Fault injection: the store's writer thread goes away; every ack now fails.
      await killSqliteWriter(s.server.options.store);
      for (let i = 0; i < 50; i++) {
        c.send(JSON.stringify({ t: 'ack', acks: { [`d:${device.deviceId}`]: seq } }));
        c.send(JSON.stringify({ t: 'ping' }));
        await c.next('pong');
      }
      const failed = lines.filter((l) => l.msg === 'ack failed');
      expect(failed).toHaveLength(1);
      c.close();
      await c.whenClosed();
    } finally {
      await s.stop();
    }
  });
});
