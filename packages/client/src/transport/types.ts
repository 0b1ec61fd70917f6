/**
 * The SDK's only view of a socket. One factory per runtime: {@link webSocketTransport} for
 * browsers, React Native and Deno (WHATWG `WebSocket`), `wsTransport` for Node (the `ws` package).
 *
 * Contract:
 * - `connect` starts opening a WebSocket to `url` offering subprotocol `protocol`, and returns at
 *   once. It may throw (bad URL); it must not call any handler synchronously.
 * - Handlers: `onOpen` once when the socket is open; `onMessage` per text message (binary
 *   messages are decoded as UTF-8); `onClose` at most once with the close code (1006 when the
 *   socket died without a close frame); `onError` on failure, possibly followed by `onClose`.
 * - `send` queues one text message. `close` starts closing and must release the socket promptly
 *   even when the peer is gone; the client ignores every event of a connection after closing it.
 */
export interface Transport {
  connect(url: string, protocol: string, handlers: TransportHandlers): Connection;
}

/** Callbacks a transport calls for one connection. */
export interface TransportHandlers {
  onOpen(): void;
  onMessage(text: string): void;
  onClose(code: number, reason: string): void;
  onError(error: unknown): void;
}

/** One open (or opening) connection. */
export interface Connection {
  send(text: string): void;
  close(code?: number, reason?: string): void;
}
