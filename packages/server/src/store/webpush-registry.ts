/** A Web Push subscription of a device, as the registry keeps it. */
export interface WebPushSubscriptionRecord {
  /** Public id, used to list and revoke it; not a secret. */
  id: string;
  deviceId: string;
  /** SHA-256 (hex) of the endpoint's capability: the capability itself is never stored. */
  capabilityHash: string;
  /** The application server's VAPID public key (base64url, 65 bytes) the subscription is bound to. */
  applicationServerKey?: string;
  /** Secret key that turns a Topic into the collapse key, so the device never learns the topic. */
  topicKey: string;
  createdAt: number;
  /** Set once unsubscribed: the endpoint then answers 410 Gone. */
  revokedAt?: number;
}

/**
 * Durable home of Web Push subscriptions, beside the Store. Every write resolves once durable.
 * Revoked subscriptions stay as tombstones so their endpoints answer 410, not 404, until purged
 * after a retention.
 */
export interface WebPushRegistry {
  create(sub: WebPushSubscriptionRecord): Promise<void>;
  byCapability(capabilityHash: string): Promise<WebPushSubscriptionRecord | undefined>;
  byId(id: string): Promise<WebPushSubscriptionRecord | undefined>;
  listByDevice(deviceId: string): Promise<WebPushSubscriptionRecord[]>;
  /** Marks a subscription revoked; false when there is none with this id. Idempotent. */
  revoke(id: string, at: number): Promise<boolean>;
  /**
   * Optional: deletes subscriptions revoked before `before` (ms); returns how many. Their
   * endpoints then answer 404 instead of 410. Called by the server's sweep.
   */
  purgeRevoked?(before: number): Promise<number>;
}
