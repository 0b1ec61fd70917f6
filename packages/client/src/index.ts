/**
 * @packageDocumentation
 * Pushwire client SDK, neutral/browser entry: default transport `globalThis.WebSocket`; in a
 * browser, `online`/`offline` and `visibilitychange` are wired to the client. Node users get the
 * `node` entry (default transport `ws`, plus `fileStorage`) through the `node` export condition
 * or `@pushwire/client/node`.
 */
import { type BrowserEnvironment, browserEnvironment, wireBrowserEvents } from './browser.js';
import { createPushwireClient, type PushwireClient } from './client.js';
import type { ClientOptions } from './options.js';
import { webSocketTransport } from './transport/websocket.js';

export * from './common.js';
/** Node only: the real one is in the Node entry (see storage/file-unavailable.ts). */
export { fileStorage } from './storage/file-unavailable.js';

/** Options of the browser entry's `createClient`. */
export interface BrowserClientOptions extends ClientOptions {
  /**
   * Wire `online`/`offline` (offline: stop trying; online: reconnect now) and `visibilitychange`
   * (hidden: background mode). `true` (default) uses the global `window`/`document` when present;
   * pass an environment to wire another one; `false` to skip.
   */
  browserEvents?: boolean | BrowserEnvironment;
}

/**
 * Creates a client and starts connecting (on the next microtask, so listeners added right after
 * see every state change).
 * @example
 * const client = createClient({
 *   url: 'https://push.example.com',
 *   register: { apiKey: 'pk_…', user: 'alice' },
 *   storage: localStorageStorage(),
 *   heartbeat: 'adaptive',
 * });
 * client.on('notification', (m) => new Notification(m.notification.title ?? 'New message'));
 */
export function createClient(options: BrowserClientOptions): PushwireClient {
  const wiring = options.browserEvents ?? true;
  return createPushwireClient(options, {
    defaultTransport: () => webSocketTransport(),
    attach: (client) => {
      const env = wiring === true ? browserEnvironment() : wiring === false ? undefined : wiring;
      return env === undefined ? undefined : wireBrowserEvents(client, env);
    },
  });
}
