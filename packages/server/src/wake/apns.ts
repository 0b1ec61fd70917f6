import { importPKCS8, SignJWT } from 'jose';
import type { WakeToken } from '../store/wake-tokens.js';
import { H2Client, retryAfterMs } from './h2.js';
import type { WakeResult, WakeSender } from './types.js';

/** Token-based APNs credentials and endpoints. */
export interface ApnsOptions {
  /** The signing key from Apple's developer account (`AuthKey_XXXXXXXXXX.p8`, PKCS#8 PEM). */
  key: string;
  /** Its key id (the `kid` of the JWT). */
  keyId: string;
  /** The team id (the `iss` of the JWT). */
  teamId: string;
  /** Production gateway. Default `https://api.push.apple.com`. */
  url?: string;
  /** Gateway for tokens registered with `environment: "sandbox"`. Default `https://api.sandbox.push.apple.com`; `url` when that is given. */
  sandboxUrl?: string;
  /** `apns-topic` (the app's bundle id) for tokens registered without a topic. */
  topic?: string;
  /**
   * Send a visible alert with this fixed text (push type `alert`, priority 10, `mutable-content`)
   * instead of a silent background push. Never message content.
   */
  alert?: string;
  /** Extra trusted CA (PEM), for stand-ins in tests. */
  ca?: string | Buffer;
  /** Wall clock (ms). Default `Date.now`. */
  now?: () => number;
}

/** Apple accepts a provider token for one hour; a fresh one is made well before. */
const JWT_REFRESH_MS = 50 * 60_000;

/**
 * Content-free wake-ups through APNs (HTTP/2, token-based authentication): a background push
 * `{"aps":{"content-available":1}}` with `apns-push-type: background` and `apns-priority: 5` —
 * or, with `alert` configured, that fixed text as a visible alert. The ES256 provider token is
 * signed once and reused for 50 minutes (Apple refuses tokens older than an hour and throttles
 * ones refreshed too often), and made again at once after `ExpiredProviderToken`.
 */
export class ApnsSender implements WakeSender {
  readonly provider = 'apns' as const;
  private readonly production: H2Client;
  private readonly sandbox: H2Client;
  private readonly now: () => number;
  private jwt: { token: string; at: number } | undefined;
  private signing: Promise<string> | undefined;
  private key: Promise<CryptoKey> | undefined;

  constructor(private readonly opts: ApnsOptions) {
    this.now = opts.now ?? Date.now;
    const h2 = { ...(opts.ca !== undefined && { ca: opts.ca }) };
    this.production = new H2Client(opts.url ?? 'https://api.push.apple.com', h2);
    this.sandbox = new H2Client(opts.sandboxUrl ?? opts.url ?? 'https://api.sandbox.push.apple.com', h2);
  }

  async send(t: WakeToken): Promise<WakeResult> {
    const topic = t.topic ?? this.opts.topic;
    if (topic === undefined)
      return { kind: 'failed', reason: 'no apns-topic: register the token with a topic, or configure one' };
    const alert = this.opts.alert;
    // With an alert, `mutable-content` lets the app's Notification Service Extension fetch the
    // messages and replace the operator's fixed text with theirs.
    const payload =
      alert === undefined
        ? { aps: { 'content-available': 1 } }
        : { aps: { alert, 'content-available': 1, 'mutable-content': 1 } };
    let res: Awaited<ReturnType<H2Client['request']>>;
    try {
      res = await (t.environment === 'sandbox' ? this.sandbox : this.production).request({
        method: 'POST',
        path: `/3/device/${encodeURIComponent(t.token)}`,
        headers: {
          authorization: `bearer ${await this.providerToken()}`,
          'apns-topic': topic,
          'apns-push-type': alert === undefined ? 'background' : 'alert',
          'apns-priority': alert === undefined ? '5' : '10',
          'apns-collapse-id': 'pushwire-wake',
          'content-type': 'application/json',
        },
        body: JSON.stringify(payload),
      });
    } catch (err) {
      return { kind: 'retry', reason: err instanceof Error ? err.message : String(err) };
    }
    if (res.status === 200) return { kind: 'sent' };
    const reason = parseReason(res.body) ?? `HTTP ${res.status}`;
    if (res.status === 410 || reason === 'Unregistered' || reason === 'BadDeviceToken')
      return { kind: 'gone', reason };
    if (reason === 'ExpiredProviderToken') {
      this.jwt = undefined;
      return { kind: 'retry', reason, afterMs: 0 };
    }
    if (res.status === 429 || res.status >= 500) {
      const afterMs = retryAfterMs(res.headers, this.now());
      return { kind: 'retry', reason, ...(afterMs !== undefined && { afterMs }) };
    }
    return { kind: 'failed', reason };
  }

  close(): void {
    this.production.close();
    this.sandbox.close();
  }

  /** The current provider token, signing a new one when it is 50 minutes old. */
  private async providerToken(): Promise<string> {
    const now = this.now();
    if (this.jwt && now - this.jwt.at < JWT_REFRESH_MS) return this.jwt.token;
    this.signing ??= (async () => {
      try {
        this.key ??= importPKCS8(this.opts.key, 'ES256');
        const token = await new SignJWT({})
          .setProtectedHeader({ alg: 'ES256', kid: this.opts.keyId })
          .setIssuer(this.opts.teamId)
          .setIssuedAt(Math.floor(now / 1000))
          .sign(await this.key);
        this.jwt = { token, at: now };
        return token;
      } finally {
        this.signing = undefined;
      }
    })();
    return this.signing;
  }
}

function parseReason(body: string): string | undefined {
  try {
    const r = (JSON.parse(body) as { reason?: unknown }).reason;
    return typeof r === 'string' ? r : undefined;
  } catch {
    return undefined;
  }
}
