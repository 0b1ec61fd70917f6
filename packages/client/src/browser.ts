import type { Disposer } from './emitter.js';

/** The client methods the environment wiring drives. */
export interface EnvironmentTarget {
  setOnline(online: boolean): void;
  networkChanged(): void;
  setBackground(on: boolean): void;
}

interface EventTargetLike {
  addEventListener(type: string, listener: () => void): void;
  removeEventListener(type: string, listener: () => void): void;
}

/** The parts of `window` and `document` the wiring uses. */
export interface BrowserEnvironment {
  window: EventTargetLike & { navigator?: { onLine?: boolean } };
  document?: EventTargetLike & { visibilityState?: string };
}

/**
 * Wires browser events to a client: `offline` stops reconnect attempts until `online`, which
 * reconnects at once (the old socket likely died with the network); `visibilitychange` to hidden
 * switches to background mode. Returns the disposer that removes every listener.
 */
export function wireBrowserEvents(client: EnvironmentTarget, env: BrowserEnvironment): Disposer {
  const { window: win, document: doc } = env;
  const disposers: Disposer[] = [];
  const listen = (target: EventTargetLike, type: string, fn: () => void) => {
    target.addEventListener(type, fn);
    disposers.push(() => target.removeEventListener(type, fn));
  };
  listen(win, 'offline', () => client.setOnline(false));
  listen(win, 'online', () => client.networkChanged());
  if (win.navigator?.onLine === false) client.setOnline(false);
  if (doc !== undefined) {
    const sync = () => client.setBackground(doc.visibilityState === 'hidden');
    listen(doc, 'visibilitychange', sync);
    if (doc.visibilityState === 'hidden') sync();
  }
  return () => {
    for (const dispose of disposers.splice(0)) dispose();
  };
}

/** The browser environment of this global scope, if there is one. */
export function browserEnvironment(): BrowserEnvironment | undefined {
  const g = globalThis as {
    window?: BrowserEnvironment['window'];
    document?: BrowserEnvironment['document'];
  };
  if (g.window === undefined || typeof g.window.addEventListener !== 'function') return undefined;
  return g.document === undefined ? { window: g.window } : { window: g.window, document: g.document };
}
