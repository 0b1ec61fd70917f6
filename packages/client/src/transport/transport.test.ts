import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { WebSocketServer } from 'ws';
import type { Connection, TransportHandlers } from './types.js';
import { type WebSocketLike, webSocketTransport } from './websocket.js';
import { wsTransport } from './ws.js';

function recorder() {
  const events: unknown[][] = [];
  let resolveNext: (() => void) | undefined;
  const push = (...e: unknown[]) => {
    events.push(e);
    resolveNext?.();
  };
  const handlers: TransportHandlers = {
    onOpen: () => push('open'),
    onMessage: (text) => push('message', text),
    onClose: (code, reason) => push('close', code, reason),
    onError: (error) => push('error', error),
  };
  const until = async (pred: () => boolean) => {
    while (!pred()) await new Promise<void>((r) => (resolveNext = r));
  };
  return { events, handlers, until };
}

describe('wsTransport (real ws server on port 0)', () => {
  let server: WebSocketServer | undefined;
  afterEach(async () => {
    await new Promise((r) => server?.close(r));
  });

  it('offers the subprotocol, carries text both ways, decodes binary, reports the close code', async () => {
    const protocols: string[] = [];
    server = new WebSocketServer({
      port: 0,
      host: '127.0.0.1',
      handleProtocols: (set) => {
        protocols.push(...set);
        return 'pushwire.v1';
      },
    });
    server.on('connection', (ws) => {
      ws.on('message', (data) => {
        ws.send(`echo:${data.toString()}`);
        ws.send(Buffer.from('P'), { binary: true });
        ws.close(4011, 'replaced');
      });
    });
    await new Promise((r) => server?.once('listening', r));
    const { port } = server.address() as AddressInfo;
    const r = recorder();
    const conn: Connection = wsTransport().connect(
      `ws://127.0.0.1:${port}/v1/connect`,
      'pushwire.v1',
      r.handlers,
    );
    await r.until(() => r.events.some((e) => e[0] === 'open'));
    conn.send('p');
    await r.until(() => r.events.some((e) => e[0] === 'close'));
    expect(protocols).toEqual(['pushwire.v1']);
    expect(r.events).toEqual([
      ['open'],
      ['message', 'echo:p'],
      ['message', 'P'],
      ['close', 4011, 'replaced'],
    ]);
  });

  it('reports a refused connection as an error then a close', async () => {
    const r = recorder();
    wsTransport().connect('ws://127.0.0.1:1/v1/connect', 'pushwire.v1', r.handlers);
    await r.until(() => r.events.some((e) => e[0] === 'close'));
    expect(r.events.map((e) => e[0])).toEqual(['error', 'close']);
    expect(r.events.at(-1)?.[1]).toBe(1006);
  });
});

describe('webSocketTransport (WHATWG WebSocket)', () => {
  class FakeWebSocket implements WebSocketLike {
    static last: FakeWebSocket | undefined;
    binaryType = 'blob';
    onopen: WebSocketLike['onopen'] = null;
    onmessage: WebSocketLike['onmessage'] = null;
    onclose: WebSocketLike['onclose'] = null;
    onerror: WebSocketLike['onerror'] = null;
    sent: string[] = [];
    closed: [number | undefined, string | undefined] | undefined;
    constructor(
      readonly url: string,
      readonly protocols?: string | string[],
    ) {
      FakeWebSocket.last = this;
    }
    send(data: string) {
      this.sent.push(data);
    }
    close(code?: number, reason?: string) {
      this.closed = [code, reason];
    }
  }

  it('maps the socket’s events and methods; binary arrives as text; close detaches handlers', () => {
    const r = recorder();
    const conn = webSocketTransport(FakeWebSocket).connect('wss://x/v1/connect', 'pushwire.v1', r.handlers);
    const ws = FakeWebSocket.last as FakeWebSocket;
    expect([ws.url, ws.protocols, ws.binaryType]).toEqual([
      'wss://x/v1/connect',
      'pushwire.v1',
      'arraybuffer',
    ]);
    ws.onopen?.({});
    ws.onmessage?.({ data: 'P' });
    ws.onmessage?.({ data: new TextEncoder().encode('{"t":"pong"}').buffer });
    conn.send('p');
    ws.onclose?.({ code: 1006, reason: '' });
    conn.close(1000, 'bye');
    ws.onmessage?.({ data: 'late' }); // detached: ignored
    expect(ws.sent).toEqual(['p']);
    expect(ws.closed).toEqual([1000, 'bye']);
    expect(r.events).toEqual([['open'], ['message', 'P'], ['message', '{"t":"pong"}'], ['close', 1006, '']]);
  });
});
