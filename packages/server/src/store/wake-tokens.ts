/** A platform push service that can wake an app: Apple's (APNs) or Google's (FCM). */
export type WakeProvider = 'apns' | 'fcm';

/**
 * A device's wake token: how to reach its app through the platform's push service while the app
 * has no socket. One per device; registering again replaces it.
 */
export interface WakeToken {
  deviceId: string;
  provider: WakeProvider;
  /** The APNs device token (hex) or FCM registration token. A credential: never shown in full. */
  token: string;
  /** APNs: the app's bundle id (`apns-topic`); absent: the server's configured default. */
  topic?: string;
  /** APNs: which gateway issued the token. Default production. */
  environment?: 'production' | 'sandbox';
  /** When it was registered, ms since epoch. */
  updatedAt: number;
}

/**
 * Durable home of wake tokens, part of a {@link Store} (`store.wakeTokens`). A device's token goes
 * with the device when it is deleted.
 */
export interface WakeTokenStore {
  /** Registers or replaces the device's token; rejects with `STORE_NOT_FOUND` for an unknown device. */
  set(token: WakeToken): Promise<void>;
  get(deviceId: string): Promise<WakeToken | undefined>;
  /**
   * Removes the device's token; with `token`, only if it is still that one (a provider's
   * "unregistered" answer for an old token must not remove a newer one). True when one was removed.
   */
  delete(deviceId: string, token?: string): Promise<boolean>;
}

/** The token as it may be shown: its provider, and only the last 6 characters of the token. */
export function maskedWakeToken(t: WakeToken): Omit<WakeToken, 'deviceId' | 'token'> & { token: string } {
  return {
    provider: t.provider,
    token: `…${t.token.slice(-6)}`,
    ...(t.topic !== undefined && { topic: t.topic }),
    ...(t.environment !== undefined && { environment: t.environment }),
    updatedAt: t.updatedAt,
  };
}
