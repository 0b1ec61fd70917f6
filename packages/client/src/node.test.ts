import { mkdtemp, readFile, rm } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type ClientFrame, decodeClientFrame, encodeFrame } from '@pushwire/protocol';
import { afterEach, describe, expect, it } from 'vitest';
import { WebSocketServer } from 'ws';
import * as browser from './index.js';
import { createClient, fileStorage, type PushMessage } from './node.js';

describe('node entry against a real WebSocket server', () => {
  let server: WebSocketServer | undefined;
  let dir: string | undefined;
  afterEach(async () => {
    await new Promise((r) => server?.close(r));
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('connects over ws by default, receives, persists to a file, acks after the save', async () => {
    const received: ClientFrame[] = [];
    server = new WebSocketServer({ port: 0, host: '127.0.0.1', handleProtocols: () => 'pushwire.v1' });
    server.on('connection', (ws) => {
      ws.on('message', (data) => {
        const frame = decodeClientFrame(data.toString());
        received.push(frame);
        if (frame.t === 'hello') {
          ws.send(
            encodeFrame({
              t: 'welcome',
              v: 1,
              session: 's1',
              hb: frame.hb ?? 60,
              idle: 75,
              maxPayload: 4096,
              topics: [],
            }),
          );
          for (let seq = 1; seq <= 3; seq++) {
            ws.send(
              encodeFrame({ t: 'msg', id: `m${seq}`, stream: 'd:dev1', seq, ts: Date.now(), data: { seq } }),
            );
          }
          ws.send(encodeFrame({ t: 'msg', id: 'm3', stream: 'd:dev1', seq: 3, ts: Date.now() })); // a duplicate
        }
      });
    });
    await new Promise((r) => server?.once('listening', r));
    const { port } = server.address() as AddressInfo;
    dir = await mkdtemp(join(tmpdir(), 'pushwire-node-'));
    const path = join(dir, 'state.json');

    const client = createClient({
      url: `http://127.0.0.1:${port}`,
      credentials: { deviceId: 'dev1', token: 'tok' },
      storage: fileStorage(path),
    });
    const seen: PushMessage[] = [];
    for await (const m of client) {
      seen.push(m);
      if (seen.length === 3) break;
    }
    const deadline = Date.now() + 5000;
    while (!received.some((f) => f.t === 'ack') && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 10));
    await client.close();

    expect(seen.map((m) => [m.id, m.seq, m.data])).toEqual([
      ['m1', 1, { seq: 1 }],
      ['m2', 2, { seq: 2 }],
      ['m3', 3, { seq: 3 }],
    ]);
    expect(received[0]).toMatchObject({ t: 'hello', v: 1, device: 'dev1', token: 'tok', hb: 60 });
    expect(received.find((f) => f.t === 'ack')).toEqual({ t: 'ack', acks: { 'd:dev1': 3 } });
    const saved = JSON.parse(await readFile(path, 'utf8'));
    expect(saved).toMatchObject({ cursors: { 'd:dev1': 3 }, dedupe: ['m1', 'm2', 'm3'] });
  });

  it('both entries export the same API; the node entry adds wsTransport and a working fileStorage', async () => {
    const node = await import('./node.js');
    const shared = Object.keys(browser).sort();
    expect(Object.keys(node).sort()).toEqual([...shared, 'wsTransport'].sort());
    expect(() => browser.fileStorage('x.json')).toThrow(/needs Node/);
    expect(typeof node.fileStorage('x.json').load).toBe('function');
    for (const name of [
      'createClient',
      'memoryStorage',
      'localStorageStorage',
      'fixedHeartbeat',
      'adaptiveHeartbeat',
    ]) {
      expect(shared).toContain(name);
    }
    for (const name of [
      'PushwireError',
      'ConnectionError',
      'ProtocolViolationError',
      'AuthError',
      'TimeoutError',
    ]) {
      expect(shared).toContain(name);
    }
  });
});
