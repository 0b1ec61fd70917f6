/**
 * @packageDocumentation
 * Pushwire client SDK, Node entry: the same API as the neutral entry, with the `ws` package as
 * the default transport (Node 20 has no global WebSocket) and {@link fileStorage}.
 */
import { createPushwireClient, type PushwireClient } from './client.js';
import type { ClientOptions } from './options.js';
import { wsTransport } from './transport/ws.js';

export * from './common.js';
export { fileStorage } from './storage/file.js';
export { wsTransport } from './transport/ws.js';

/**
 * Creates a client and starts connecting (on the next microtask).
 * @example
 * import { createClient, fileStorage } from '@pushwire/client/node';
 * const client = createClient({ url: 'http://localhost:8080', register: { apiKey }, storage: fileStorage('state.json') });
 * for await (const m of client) console.log(m.id, m.data);
 */
export function createClient(options: ClientOptions): PushwireClient {
  return createPushwireClient(options, { defaultTransport: () => wsTransport() });
}
