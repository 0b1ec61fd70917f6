import WebSocket, { type ClientOptions } from 'ws';
import type { Connection, Transport, TransportHandlers } from './types.js';

/** Largest server frame accepted: 256 Ki characters of UTF-8 can take 768 KiB. */
const MAX_PAYLOAD = 1024 * 1024;
/** After close(), a peer that does not finish the closing handshake is cut off after this. */
const TERMINATE_AFTER_MS = 2000;

/**
 * Transport over the `ws` package (Node). Options go to the `ws` constructor (TLS settings,
 * headers, an `agent` for proxies, …).
 * @example createClient({ url, credentials, transport: wsTransport({ headers: { 'user-agent': 'my-app' } }) })
 */
export function wsTransport(options: ClientOptions = {}): Transport {
  return {
    connect(url: string, protocol: string, h: TransportHandlers): Connection {
      const ws = new WebSocket(url, protocol, {
        maxPayload: MAX_PAYLOAD,
        perMessageDeflate: false,
        ...options,
      });
      let closed = false;
      ws.on('open', () => h.onOpen());
      ws.on('message', (data) => h.onMessage(toText(data)));
      ws.on('close', (code, reason) => {
        closed = true;
        h.onClose(code, reason.toString('utf8'));
      });
      ws.on('error', (error) => h.onError(error));
      return {
        send: (text) => ws.send(text),
        close: (code, reason) => {
          if (closed) return;
          try {
            ws.close(code, reason);
          } catch {
            ws.terminate();
          }
          // A dead peer never answers the closing handshake: do not hold the socket for ws's 30 s.
          setTimeout(() => {
            if (!closed) ws.terminate();
          }, TERMINATE_AFTER_MS).unref();
        },
      };
    },
  };
}

/** Text frames and (refused later by the codec) binary ones alike become UTF-8 text. */
function toText(data: WebSocket.RawData): string {
  if (Array.isArray(data)) return Buffer.concat(data).toString('utf8');
  if (data instanceof ArrayBuffer) return Buffer.from(data).toString('utf8');
  return data.toString('utf8');
}
