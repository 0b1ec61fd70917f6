import { importPKCS8, SignJWT } from 'jose';
import type { WakeToken } from '../store/wake-tokens.js';
import { H2Client, type H2Response, retryAfterMs } from './h2.js';
import type { WakeResult, WakeSender } from './types.js';

/** The fields of a Google service account key file that FCM needs. */
export interface ServiceAccount {
  project_id: string;
  client_email: string;
  private_key: string;
  token_uri?: string;
}

export interface FcmOptions {
  serviceAccount: ServiceAccount;
  /** FCM HTTP v1 base. Default `https://fcm.googleapis.com`. */
  url?: string;
  /** OAuth2 token endpoint. Default the key file's `token_uri`, else `https://oauth2.googleapis.com/token`. */
  tokenUrl?: string;
  /** Extra trusted CA (PEM), for stand-ins in tests. */
  ca?: string | Buffer;
  now?: () => number;
}

const SCOPE = 'https://www.googleapis.com/auth/firebase.messaging';

/** Checks a parsed key file; throws a readable error naming what is missing. */
export function parseServiceAccount(json: unknown): ServiceAccount {
  const sa = json as Partial<ServiceAccount> | null;
  for (const field of ['project_id', 'client_email', 'private_key'] as const) {
    if (typeof sa?.[field] !== 'string' || sa[field] === '')
      throw new Error(`the FCM service account file has no ${field}`);
  }
  return sa as ServiceAccount;
}

/**
 * Content-free wake-ups through FCM HTTP v1: a data-only message (`{"pushwire":"wake"}`, no
 * notification, nothing of any message) with Android priority `high`, and for iOS apps on FCM a
 * background APNs override. The OAuth2 access token comes from the service account (JWT-bearer
 * grant, RS256) and is kept until a minute before it expires, or until FCM answers 401.
 */
export class FcmSender implements WakeSender {
  readonly provider = 'fcm' as const;
  private readonly fcm: H2Client;
  private readonly oauth: H2Client;
  private readonly tokenUrl: URL;
  private readonly now: () => number;
  private access: { token: string; expiresAt: number } | undefined;
  private fetching: Promise<string> | undefined;

  constructor(private readonly opts: FcmOptions) {
    this.now = opts.now ?? Date.now;
    const h2 = { ...(opts.ca !== undefined && { ca: opts.ca }) };
    this.fcm = new H2Client(opts.url ?? 'https://fcm.googleapis.com', h2);
    this.tokenUrl = new URL(
      opts.tokenUrl ?? opts.serviceAccount.token_uri ?? 'https://oauth2.googleapis.com/token',
    );
    this.oauth = new H2Client(this.tokenUrl.origin, h2);
  }

  async send(t: WakeToken): Promise<WakeResult> {
    let res: H2Response;
    try {
      const project = encodeURIComponent(this.opts.serviceAccount.project_id);
      res = await this.fcm.request({
        method: 'POST',
        path: `/v1/projects/${project}/messages:send`,
        headers: { authorization: `Bearer ${await this.accessToken()}`, 'content-type': 'application/json' },
        body: JSON.stringify({
          message: {
            token: t.token,
            data: { pushwire: 'wake' },
            android: { priority: 'high', collapse_key: 'pushwire-wake' },
            apns: {
              headers: { 'apns-push-type': 'background', 'apns-priority': '5' },
              payload: { aps: { 'content-available': 1 } },
            },
          },
        }),
      });
    } catch (err) {
      return { kind: 'retry', reason: err instanceof Error ? err.message : String(err) };
    }
    if (res.status === 200) return { kind: 'sent' };
    const reason = fcmErrorCode(res.body) ?? `HTTP ${res.status}`;
    if (reason === 'UNREGISTERED') return { kind: 'gone', reason };
    if (res.status === 401) {
      this.access = undefined;
      return { kind: 'retry', reason, afterMs: 0 };
    }
    if (res.status === 429 || res.status >= 500) {
      const afterMs = retryAfterMs(res.headers, this.now());
      return { kind: 'retry', reason, ...(afterMs !== undefined && { afterMs }) };
    }
    return { kind: 'failed', reason };
  }

  close(): void {
    this.fcm.close();
    this.oauth.close();
  }

  /** A cached access token, or a new one from the token endpoint (one request at a time). */
  private async accessToken(): Promise<string> {
    if (this.access && this.now() < this.access.expiresAt) return this.access.token;
    this.fetching ??= this.fetchToken().finally(() => {
      this.fetching = undefined;
    });
    return this.fetching;
  }

  private async fetchToken(): Promise<string> {
    const sa = this.opts.serviceAccount;
    const iat = Math.floor(this.now() / 1000);
    const assertion = await new SignJWT({ scope: SCOPE })
      .setProtectedHeader({ alg: 'RS256', typ: 'JWT' })
      .setIssuer(sa.client_email)
      .setAudience(this.tokenUrl.href)
      .setIssuedAt(iat)
      .setExpirationTime(iat + 3600)
      .sign(await importPKCS8(sa.private_key, 'RS256'));
    const res = await this.oauth.request({
      method: 'POST',
      path: `${this.tokenUrl.pathname}${this.tokenUrl.search}`,
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({
        grant_type: 'urn:ietf:params:oauth:grant-type:jwt-bearer',
        assertion,
      }).toString(),
    });
    const body = JSON.parse(res.body || '{}') as {
      access_token?: string;
      expires_in?: number;
      error?: string;
    };
    if (res.status !== 200 || typeof body.access_token !== 'string')
      throw new Error(`FCM OAuth token endpoint answered ${res.status} ${body.error ?? ''}`.trim());
    const lifetime = Math.max(0, (body.expires_in ?? 3600) - 60) * 1000;
    this.access = { token: body.access_token, expiresAt: this.now() + lifetime };
    return body.access_token;
  }
}

/** FCM's error code (`UNREGISTERED`, `INVALID_ARGUMENT`, …) from an error body. */
function fcmErrorCode(body: string): string | undefined {
  try {
    const error = (JSON.parse(body) as { error?: { status?: string; details?: { errorCode?: string }[] } })
      .error;
    return error?.details?.find((d) => typeof d.errorCode === 'string')?.errorCode ?? error?.status;
  } catch {
    return undefined;
  }
}
