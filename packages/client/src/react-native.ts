/**
 * @packageDocumentation
 * Pushwire client SDK, React Native entry (the `react-native` export condition, which Metro
 * picks): the same API, with React Native's global `WebSocket` as the default transport and
 * `AppState` wiring instead of browser events. It needs nothing Hermes lacks: no `URL`,
 * `TextEncoder`, `queueMicrotask` or `structuredClone`; timers, socket, storage and randomness can
 * all be injected (`clock`, `transport`, `storage`, `random`). Web Push (`pushSubscribe`) needs
 * WebCrypto, which React Native does not have: use wake tokens (`setWakeToken`) on phones.
 */
import { createPushwireClient, type PushwireClient } from './client.js';
import type { Disposer } from './emitter.js';
import type { ClientOptions } from './options.js';
import { webSocketTransport } from './transport/websocket.js';

export * from './common.js';
export { type AsyncStorageLike, asyncStorage } from './storage/async.js';

/** The part of React Native's `AppState` the wiring uses. */
export interface AppStateLike {
  /** `'active'`, `'background'`, `'inactive'` (iOS), … */
  currentState?: string | null;
  addEventListener(type: 'change', listener: (state: string) => void): { remove(): void };
}

/** Options of the React Native entry's `createClient`. */
export interface ReactNativeClientOptions extends ClientOptions {
  /**
   * React Native's `AppState`: anything but `'active'` switches the client to background mode
   * (acks leave at once, the background heartbeat applies). Optional: without it, call
   * `setBackground` yourself.
   */
  appState?: AppStateLike;
}

/**
 * Creates a client and starts connecting (on the next microtask).
 * @example
 * import { AppState } from 'react-native';
 * import AsyncStorage from '@react-native-async-storage/async-storage';
 * import { asyncStorage, createClient } from '@pushwire/client';
 * const client = createClient({
 *   url: 'https://push.example.com',
 *   register: { apiKey: 'pk_…', user: 'alice' },
 *   storage: asyncStorage(AsyncStorage),
 *   appState: AppState,
 * });
 */
export function createClient(options: ReactNativeClientOptions): PushwireClient {
  return createPushwireClient(options, {
    defaultTransport: () => webSocketTransport(),
    attach: (client) => (options.appState === undefined ? undefined : wireAppState(client, options.appState)),
  });
}

/** Background mode follows `AppState`; returns the disposer that removes the listener. */
export function wireAppState(client: { setBackground(on: boolean): void }, appState: AppStateLike): Disposer {
  const sync = (state: string | null | undefined) => {
    if (state !== null && state !== undefined) client.setBackground(state !== 'active');
  };
  const subscription = appState.addEventListener('change', sync);
  sync(appState.currentState);
  return () => subscription.remove();
}
