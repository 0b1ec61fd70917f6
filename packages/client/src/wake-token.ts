import { type FetchLike, request } from './credentials.js';
import { ConfigError, ConnectionError, RequestError } from './errors.js';
import type { StateKeeper } from './keeper.js';

/** A platform push token for content-free wake-ups (see docs/mobile.md). */
export interface WakeTokenOptions {
  /** `apns` for an iOS device token, `fcm` for a Firebase registration token. */
  provider: 'apns' | 'fcm';
  /** The token the OS gave the app (APNs: hex string of the device token). */
  token: string;
  /** APNs: the app's bundle id, if the server has no default for it. */
  topic?: string;
  /** APNs: `sandbox` for development builds. Default production. */
  environment?: 'production' | 'sandbox';
}

/** What {@link sendWakeToken} needs from the client. */
export interface WakeTokenDeps {
  keeper: Pick<StateKeeper, 'credentials'>;
  http(): string;
  fetch: FetchLike | undefined;
}

/**
 * Registers (`PUT /v1/devices/:id/wake`) or, with null, removes (`DELETE`) the device's wake
 * token, with the device's own credentials. Throws {@link ConfigError} for a malformed token,
 * {@link RequestError} when the server refuses, {@link ConnectionError} when it cannot be reached.
 */
export async function sendWakeToken(d: WakeTokenDeps, wake: WakeTokenOptions | null): Promise<void> {
  if (wake !== null) {
    if (typeof wake !== 'object' || (wake.provider !== 'apns' && wake.provider !== 'fcm'))
      throw new ConfigError('setWakeToken needs {provider: "apns" | "fcm", token}');
    if (typeof wake.token !== 'string' || wake.token.length === 0)
      throw new ConfigError('setWakeToken needs a non-empty token');
  }
  const creds = await d.keeper.credentials();
  const path = `/v1/devices/${encodeURIComponent(creds.deviceId)}/wake`;
  const method = wake === null ? 'DELETE' : 'PUT';
  const body =
    wake === null
      ? undefined
      : {
          provider: wake.provider,
          token: wake.token,
          ...(wake.topic !== undefined && { topic: wake.topic }),
          ...(wake.environment !== undefined && { environment: wake.environment }),
        };
  const { status, body: got } = await request(
    d.fetch,
    d.http() + path,
    method,
    `Device ${creds.deviceId}:${creds.token}`,
    body,
    (cause) =>
      new ConnectionError(`${method} ${path}: ${cause instanceof Error ? cause.message : String(cause)}`, {
        cause,
      }),
  );
  if (status === 200 || status === 204) return;
  const code = typeof got?.error === 'string' ? got.error : `HTTP ${status}`;
  const why = typeof got?.message === 'string' ? `: ${got.message}` : '';
  throw new RequestError(`${method} ${path}: ${code}${why}`);
}

/**
 * Rotates the device token (`POST /v1/devices/:id/token` with the current one); resolves with the
 * new token. The server closes the session that used the old one (`TOKEN_ROTATED`).
 */
export async function rotateToken(
  d: Omit<WakeTokenDeps, 'keeper'>,
  creds: { deviceId: string; token: string },
): Promise<string> {
  const path = `/v1/devices/${encodeURIComponent(creds.deviceId)}/token`;
  const { status, body } = await request(
    d.fetch,
    d.http() + path,
    'POST',
    `Device ${creds.deviceId}:${creds.token}`,
    {},
    (cause) =>
      new ConnectionError(`POST ${path}: ${cause instanceof Error ? cause.message : String(cause)}`, {
        cause,
      }),
  );
  if (status === 200 && typeof body?.token === 'string' && body.token) return body.token;
  const code = typeof body?.error === 'string' ? body.error : `HTTP ${status}`;
  const why = typeof body?.message === 'string' ? `: ${body.message}` : '';
  throw new RequestError(`POST ${path}: ${code}${why}`);
}
