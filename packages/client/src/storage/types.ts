import type { LearnedHeartbeat } from '../heartbeat.js';

/** A device's identity, from registration. */
export interface Credentials {
  deviceId: string;
  token: string;
}

/**
 * Everything the SDK persists. Saved (coalesced, one save per burst of messages) before any
 * acknowledgement leaves, so a restart resumes exactly where the app stopped.
 */
export interface ClientState {
  /** The device's credentials, once known (given, stored or registered). */
  credentials?: Credentials;
  /** Per stream, the highest seq processed; presented in `hello`. */
  cursors: Record<string, number>;
  /** Recently processed message ids, oldest first (the dedupe window). */
  dedupe: string[];
  /** What the adaptive heartbeat learned, per network key. */
  heartbeat?: Record<string, LearnedHeartbeat>;
  /** The Web Push subscription made by `pushSubscribe`, with its private keys. */
  webpush?: StoredWebPush;
}

/**
 * A Web Push subscription as the SDK keeps it: the server's id and endpoint, and the receiver's
 * keys (`p256dh`, `auth`, private scalar `d`, base64url). `d` never leaves the device.
 */
export interface StoredWebPush {
  subscriptionId: string;
  endpoint: string;
  expirationTime: number | null;
  /** The VAPID public key the subscription is bound to (base64url, no padding), if any. */
  applicationServerKey?: string;
  keys: { p256dh: string; auth: string; d: string };
}

/**
 * Where the SDK keeps its {@link ClientState}. `save` must not resolve before the state is
 * durable (as durable as the adapter can make it): acknowledgements wait for it.
 * React Native apps can wrap AsyncStorage in the same two methods.
 */
export interface StateStore {
  /** The saved state, or undefined when nothing was saved yet. */
  load(): Promise<ClientState | undefined>;
  /** Replaces the saved state. */
  save(state: ClientState): Promise<void>;
}

/** An empty state. */
export function emptyState(): ClientState {
  return { cursors: {}, dedupe: [] };
}
