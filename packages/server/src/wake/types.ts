import type { WakeProvider, WakeToken } from '../store/wake-tokens.js';

/**
 * What a provider said to one wake: delivered; the token is dead (remove it); try again later
 * (429, 5xx, a network failure; `afterMs` from `Retry-After`); or refused for good (a
 * misconfiguration such as a wrong topic: logged, counted, the token kept).
 */
export type WakeResult =
  | { kind: 'sent' }
  | { kind: 'gone'; reason: string }
  | { kind: 'retry'; reason: string; afterMs?: number }
  | { kind: 'failed'; reason: string };

/** Sends one content-free wake through a platform's push service. Never rejects. */
export interface WakeSender {
  readonly provider: WakeProvider;
  send(token: WakeToken): Promise<WakeResult>;
  close(): void;
}

/** Time and timers (the real ones in the server, virtual ones in tests). */
export interface WakeClock {
  now(): number;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

/** Every timeout a wake component takes, by default the process's real timers, unref'd. */
export const realWakeClock: WakeClock = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => {
    const t = setTimeout(fn, ms);
    t.unref();
    return t;
  },
  clearTimeout: (h) => clearTimeout(h as ReturnType<typeof setTimeout>),
};
