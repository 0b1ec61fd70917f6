import { AuthError, ConfigError, RegistrationError } from './errors.js';
import type { Credentials } from './storage/types.js';

/** Registration with an API key over HTTP, or a function that obtains credentials (your backend). */
export type RegisterOption = { apiKey: string; user?: string } | (() => Promise<Credentials>);

/** The part of `fetch` registration uses. */
export type FetchLike = (
  url: string,
  init: { method: string; headers: Record<string, string>; body: string },
) => Promise<{ status: number; json(): Promise<unknown> }>;

/**
 * Registers a device: `POST <http>/v1/devices` with `Authorization: Bearer <apiKey>` and body
 * `{user?}`; the answer (201) is `{deviceId, token}`.
 *
 * 401/403 throw a fatal {@link AuthError}; other 4xx answers (except 408 and 429) throw a fatal
 * {@link RegistrationError} (retrying cannot help); network errors, 408, 429 and 5xx throw a
 * retryable {@link RegistrationError}.
 */
export async function registerDevice(
  httpBase: string,
  register: { apiKey: string; user?: string },
  fetchImpl: FetchLike | undefined,
): Promise<Credentials> {
  const doFetch = fetchImpl ?? (globalThis.fetch as unknown as FetchLike | undefined);
  if (doFetch === undefined)
    throw new ConfigError('no fetch here: pass the `fetch` option to register', { fatal: true });
  let res: Awaited<ReturnType<FetchLike>>;
  try {
    res = await doFetch(`${httpBase}/v1/devices`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${register.apiKey}` },
      body: JSON.stringify(register.user === undefined ? {} : { user: register.user }),
    });
  } catch (cause) {
    throw new RegistrationError('device registration request failed', undefined, { cause });
  }
  const { status } = res;
  if (status === 401 || status === 403) {
    throw new AuthError(`device registration refused (HTTP ${status})`, { fatal: true });
  }
  if (status !== 200 && status !== 201) {
    const fatal = status >= 400 && status < 500 && status !== 408 && status !== 429;
    throw new RegistrationError(`device registration failed (HTTP ${status})`, status, { fatal });
  }
  const body = await res.json().catch(() => undefined);
  const o = body as Partial<Credentials> | undefined;
  if (typeof o?.deviceId !== 'string' || typeof o.token !== 'string' || !o.deviceId || !o.token) {
    throw new RegistrationError('device registration answered without deviceId and token', status);
  }
  return { deviceId: o.deviceId, token: o.token };
}

/** Checks credentials returned by a custom register function. */
export function checkCredentials(c: unknown): Credentials {
  const o = c as Partial<Credentials> | undefined;
  if (typeof o?.deviceId !== 'string' || typeof o.token !== 'string' || !o.deviceId || !o.token) {
    throw new RegistrationError('register() must resolve to {deviceId, token}', undefined);
  }
  return { deviceId: o.deviceId, token: o.token };
}
