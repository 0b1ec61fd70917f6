import { ConfigError } from '../errors.js';
import type { Connection, Transport, TransportHandlers } from './types.js';

/** The part of the WHATWG WebSocket the adapter uses. */
export interface WebSocketLike {
  binaryType: string;
  onopen: ((ev: unknown) => void) | null;
  onmessage: ((ev: { data: unknown }) => void) | null;
  onclose: ((ev: { code: number; reason: string }) => void) | null;
  onerror: ((ev: unknown) => void) | null;
  send(data: string): void;
  close(code?: number, reason?: string): void;
}

/** A WebSocket constructor (the global one, or React Native's, or a test double). */
export type WebSocketConstructor = new (url: string, protocols?: string | string[]) => WebSocketLike;

/**
 * Transport over a WHATWG `WebSocket` (browsers, React Native, Deno, Bun, Node ≥ 22).
 * @param WebSocketImpl the constructor to use; default `globalThis.WebSocket`.
 * @example createClient({ url, credentials, transport: webSocketTransport() })
 */
export function webSocketTransport(WebSocketImpl?: WebSocketConstructor): Transport {
  return {
    connect(url: string, protocol: string, h: TransportHandlers): Connection {
      const Impl = WebSocketImpl ?? (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket;
      if (Impl === undefined) {
        throw new ConfigError('no WebSocket here: pass a transport', { fatal: true });
      }
      const ws = new Impl(url, protocol);
      ws.binaryType = 'arraybuffer';
      ws.onopen = () => h.onOpen();
      ws.onmessage = (ev) => h.onMessage(toText(ev.data));
      ws.onclose = (ev) => h.onClose(ev.code, ev.reason);
      ws.onerror = (ev) => h.onError(ev);
      return {
        send: (text) => ws.send(text),
        close: (code, reason) => {
          ws.onopen = ws.onmessage = ws.onerror = null;
          try {
            ws.close(code, reason);
          } catch {
            ws.close();
          }
        },
      };
    },
  };
}

const decoder = /* @__PURE__ */ (() =>
  typeof TextDecoder === 'undefined' ? undefined : new TextDecoder())();

function toText(data: unknown): string {
  if (typeof data === 'string') return data;
  if (decoder !== undefined && (data instanceof ArrayBuffer || ArrayBuffer.isView(data))) {
    return decoder.decode(data as ArrayBuffer);
  }
  return String(data);
}
