import { spawn } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { StreamClient } from './helpers/publish-stream-client.js';
import { API_KEY, CLI, http, registerDevice, startServer } from './helpers/server.js';
import { clientFrame, Op } from './helpers/ws-frames.js';

type Started = Awaited<ReturnType<typeof startServer>>;

describe('publisher stream /v1/publish: protocol, limits, hostile input', () => {
  let s: Started;
  const clients: StreamClient[] = [];
  beforeAll(async () => {
    s = await startServer({ maxPayload: 1024 });
  });
  afterAll(async () => {
    for (const c of clients) c.close();
    await s.stop();
  });

  const open = async (key: string | null = API_KEY, protocol?: string | null) => {
    const c = new StreamClient(s.url, key, protocol);
    clients.push(c);
    await c.until(() => !!(c.ready || c.refused || c.closed), 10_000, 'ready or refusal');
    return c;
  };

  const newKey = async (body: Record<string, unknown>) => {
    const r = await http<{ key: string; id: string }>(s.url, 'POST', '/v1/keys', body);
    expect(r.status).toBe(201);
    return r.body;
  };

  it('announces its bounds, then acks each message after its commit, in frame order, as the 202 body', async () => {
    const dev = await registerDevice(s.url);
    const c = await open();
    expect(c.ready).toMatchObject({ t: 'ready', maxInFlight: 256, maxPayload: 1024, maxFrame: 65536 });
    c.send({ to: { device: dev.deviceId }, id: 'stream-a', data: { k: 1 } });
    c.send({ to: { device: dev.deviceId }, data: { k: 2 }, ttl: 60 });
    c.send({ to: { topic: 'news' }, id: 'stream-c', data: 'x' });
    c.send({ to: { device: dev.deviceId }, id: 'stream-a', data: { k: 1 } }); // a retry
    await c.until(() => c.acks.length === 4, 10_000, '4 acks');
    expect(c.acks.map((a) => a.n)).toEqual([1, 2, 3, 4]);
    expect(c.acks[0]).toMatchObject({
      id: 'stream-a',
      duplicate: false,
      recipients: 1,
      entries: [{ stream: `d:${dev.deviceId}`, seq: 1 }],
    });
    expect(c.acks[1]).toMatchObject({ duplicate: false, ttl: 60, entries: [{ seq: 2 }] });
    expect(c.acks[2]).toMatchObject({ id: 'stream-c', recipients: 0 });
    expect(c.acks[3]).toMatchObject({ id: 'stream-a', duplicate: true, ts: c.acks[0]!.ts });
    // Durable and visible over HTTP like any publish.
    const status = await http(s.url, 'GET', '/v1/messages/stream-a');
    expect(status.status).toBe(200);
  });

  it('refuses bad frames one by one with the HTTP API codes; the stream survives', async () => {
    const dev = await registerDevice(s.url);
    const c = await open();
    c.send('{not json');
    c.send({ to: { device: dev.deviceId }, bogus: 1 });
    c.send({ to: { device: 'no-such-device' }, data: 1 });
    c.send({ to: { device: dev.deviceId }, data: 'y'.repeat(2000) });
    c.send(Buffer.from('{"to":{"topic":"a"}}')); // binary frame
    c.send('['.repeat(100) + ']'.repeat(100));
    c.send({ to: { device: dev.deviceId }, data: 'ok' });
    await c.until(() => c.acks.length === 7, 10_000, '7 acks');
    expect(c.acks.map((a) => [a.n, a.error, a.status])).toEqual([
      [1, 'MALFORMED_JSON', 400],
      [2, 'BAD_REQUEST', 400],
      [3, 'UNKNOWN_DEVICE', 404],
      [4, 'PAYLOAD_TOO_LARGE', 413],
      [5, 'UNSUPPORTED_MEDIA_TYPE', 415],
      [6, 'JSON_TOO_DEEP', 400],
      [7, undefined, undefined],
    ]);
    expect(c.acks[6]).toMatchObject({ duplicate: false, recipients: 1 });
    expect(c.closed).toBeUndefined();
  });

  it('checks the key before the upgrade: none, wrong, revoked, without the publish scope, no subprotocol', async () => {
    expect((await open(null)).refused).toMatchObject({ status: 401, body: { error: 'UNAUTHORIZED' } });
    expect((await open('wrong')).refused).toMatchObject({ status: 401, body: { error: 'UNAUTHORIZED' } });
    const reg = await newKey({ scopes: ['register'] });
    expect((await open(reg.key)).refused).toMatchObject({
      status: 403,
      body: { error: 'FORBIDDEN' },
    });
    const gone = await newKey({ scopes: ['publish'] });
    expect((await http(s.url, 'DELETE', `/v1/keys/${gone.id}`)).status).toBe(204);
    expect((await open(gone.key)).refused).toMatchObject({ status: 401 });
    expect((await open(API_KEY, null)).refused).toMatchObject({
      status: 426,
      body: { error: 'UPGRADE_REQUIRED' },
    });
    const plain = await http(s.url, 'GET', '/v1/publish');
    expect(plain.status).toBe(426);
  });

  it('a restricted key reaches only its targets, per message', async () => {
    const dev = await registerDevice(s.url);
    const k = await newKey({ scopes: ['publish'], topics: ['alerts/*'] });
    const c = await open(k.key);
    c.send({ to: { device: dev.deviceId }, data: 1 });
    c.send({ to: { topic: 'alerts/fire' }, data: 2 });
    await c.until(() => c.acks.length === 2, 10_000, 'acks');
    expect(c.acks[0]).toMatchObject({ n: 1, error: 'FORBIDDEN', status: 403 });
    expect(c.acks[1]).toMatchObject({ n: 2, duplicate: false });
  });

  it("applies the key's rate per message (429 RATE_LIMITED with retryAfter)", async () => {
    const k = await newKey({ scopes: ['publish'], rate: 2 });
    const c = await open(k.key); // the handshake spends one of the 2 tokens
    for (let i = 0; i < 4; i++) c.send({ to: { topic: 'rated' }, data: i });
    await c.until(() => c.acks.length === 4, 10_000, 'acks');
    const limited = c.acks.filter((a) => a.error === 'RATE_LIMITED');
    expect(limited.length).toBeGreaterThanOrEqual(2);
    expect(limited[0]).toMatchObject({ status: 429, retryAfter: expect.any(Number) });
  });

  it('closes a stream whose key is revoked through the API at once (4001)', async () => {
    const k = await newKey({ scopes: ['publish'] });
    const c = await open(k.key);
    c.send({ to: { topic: 'r' }, data: 1 });
    await c.until(() => c.acks.length === 1, 10_000, 'ack');
    expect((await http(s.url, 'DELETE', `/v1/keys/${k.id}`)).status).toBe(204);
    await c.until(() => c.closed !== undefined, 10_000, 'close');
    expect(c.closed?.code).toBe(4001);
  });

  it('re-reads the key from the store: a key revoked elsewhere closes the stream within the recheck period', async () => {
    const k = await newKey({ scopes: ['publish'] });
    const c = await open(k.key);
    // Revoked in the store only (as another node, or `pushwire keys revoke`, would): no local signal.
    await s.server.options.store.apiKeys?.revoke(k.id, Date.now());
    await c.until(() => c.closed !== undefined, 9_000, 'close after recheck');
    expect(c.closed?.code).toBe(4001);
  });

  it('closes with 4008 when a client passes maxInFlight unacknowledged frames', async () => {
    const c = await open();
    const max = c.ready?.maxInFlight as number;
    // All frames in one write: the server reads them in one go, before any commit can complete.
    const frames: Buffer[] = [];
    for (let i = 0; i <= max + 10; i++)
      frames.push(clientFrame(Op.Text, JSON.stringify({ to: { topic: 'flood' }, data: i })));
    (c.ws as unknown as { _socket: { write(b: Buffer): void } })._socket.write(Buffer.concat(frames));
    await c.until(() => c.closed !== undefined, 5_000, 'close');
    expect(c.closed?.code).toBe(4008);
    expect(c.closed?.reason).toMatch(/TOO_MANY_IN_FLIGHT/);
    // What was accepted before the bound is acked or at least durable: nothing past it was stored.
    expect(c.acks.length).toBeLessThanOrEqual(max);
  });

  it('closes with 1009 on a frame larger than the limit; other streams are unaffected', async () => {
    const other = await open();
    const c = await open();
    c.send(JSON.stringify({ to: { topic: 'big' }, data: 'z'.repeat(70_000) }));
    await c.until(() => c.closed !== undefined, 10_000, 'close');
    expect(c.closed?.code).toBe(1009);
    other.send({ to: { topic: 'big' }, data: 'fine' });
    await other.until(() => other.acks.length === 1, 10_000, 'ack');
    expect(other.acks[0]).toMatchObject({ n: 1, duplicate: false });
  });

  it('bounds streams per key (429 TOO_MANY_STREAMS before the upgrade)', async () => {
    const k = await newKey({ scopes: ['publish'] });
    const opened: StreamClient[] = [];
    for (let i = 0; i < 16; i++) opened.push(await open(k.key));
    expect(opened.every((c) => c.ready)).toBe(true);
    const extra = await open(k.key);
    expect(extra.refused).toMatchObject({ status: 429, body: { error: 'TOO_MANY_STREAMS' } });
    opened[0]!.close();
    await opened[0]!.until(() => opened[0]!.closed !== undefined, 5000, 'closed');
    await expect.poll(async () => !!(await open(k.key)).ready, { timeout: 5000, interval: 50 }).toBe(true);
  });
});

describe('publisher stream and server drain', () => {
  it('a drain closes open streams with 1001 (the publisher resends what was not acked, by id)', async () => {
    const s = await startServer();
    const c = new StreamClient(s.url, API_KEY);
    await c.opened();
    c.send({ to: { topic: 'd' }, id: 'before-drain', data: 1 });
    await c.until(() => c.acks.length === 1, 10_000, 'ack');
    const drained = s.server.drain(200);
    await c.until(() => c.closed !== undefined, 10_000, 'close');
    expect(c.closed?.code).toBe(1001);
    await drained;
    await s.stop();
  });
});

describe('pushwire publish --stream', () => {
  const run = (url: string, input: string, extra: string[] = []) =>
    new Promise<{ code: number | null; out: string; err: string }>((resolve) => {
      const p = spawn(process.execPath, [
        CLI,
        'publish',
        '--stream',
        '--server',
        url,
        '--api-key',
        API_KEY,
        ...extra,
      ]);
      let out = '';
      let err = '';
      p.stdout.on('data', (d) => {
        out += d;
      });
      p.stderr.on('data', (d) => {
        err += d;
      });
      p.on('close', (code) => resolve({ code, out, err }));
      p.stdin.end(input);
    });

  it('publishes each stdin line over the stream and prints one ack per line, in order; a refusal exits 2', async () => {
    const s = await startServer();
    try {
      const dev = await registerDevice(s.url);
      const lines = Array.from({ length: 300 }, (_, i) =>
        JSON.stringify({ to: { device: dev.deviceId }, id: `cli-${i}` }),
      );
      const ok = await run(s.url, `${lines.join('\n')}\n\n`);
      expect(ok.code).toBe(0);
      const acks = ok.out
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l));
      expect(acks.map((a) => a.n)).toEqual(Array.from({ length: 300 }, (_, i) => i + 1));
      expect(acks.every((a, i) => a.id === `cli-${i}` && a.duplicate === false)).toBe(true);
      const bad = await run(s.url, `${lines[0]}\n{"to":{"device":"nobody"}}\n`);
      expect(bad.code).toBe(2);
      expect(
        bad.out
          .trim()
          .split('\n')
          .map((l) => JSON.parse(l)),
      ).toMatchObject([
        { n: 1, id: 'cli-0', duplicate: true },
        { n: 2, error: 'UNKNOWN_DEVICE', status: 404 },
      ]);
      const flags = await run(s.url, '', ['--device', dev.deviceId]);
      expect(flags.code).toBe(1);
      expect(flags.err).toMatch(/--stream reads each message from stdin/);
    } finally {
      await s.stop();
    }
  }, 30_000);
});
