import { AuthError, ConfigError, type PushwireError, RegistrationError } from './errors.js';
import type { Credentials } from './storage/types.js';

/** Registration with an API key over HTTP, or a function that obtains credentials (your backend). */
export type RegisterOption = { apiKey: string; user?: string } | (() => Promise<Credentials>);

/** The part of `fetch` registration uses. */
export type FetchLike = (
  url: string,
  init: { method: string; headers: Record<string, string>; body: string },
) => Promise<{ status: number; json(): Promise<unknown> }>;

/** What {@link request} got back: the status, and the JSON body (undefined when there is none). */
export interface Answer {
  status: number;
  body: Record<string, unknown> | undefined;
}

/**
 * One HTTP request to the server with a JSON body (none when `body` is undefined: fetch refuses
 * one on GET, whatever FetchLike's type says) and `authorization`. Uses the `fetch` option, else
 * the global one; a network failure becomes `failed(cause)`.
 */
export async function request(
  fetchImpl: FetchLike | undefined,
  url: string,
  method: string,
  authorization: string,
  body: unknown,
  failed: (cause: unknown) => PushwireError,
): Promise<Answer> {
  const doFetch = fetchImpl ?? (globalThis.fetch as unknown as FetchLike | undefined);
  if (doFetch === undefined) throw new ConfigError('no fetch here: pass the `fetch` option');
  const headers: Record<string, string> = { authorization };
  const init = { method, headers } as Parameters<FetchLike>[1];
  if (body !== undefined) {
    headers['content-type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let res: Awaited<ReturnType<FetchLike>>;
  try {
    res = await doFetch(url, init);
  } catch (cause) {
    throw failed(cause);
  }
  return { status: res.status, body: (await res.json().catch(() => undefined)) as Answer['body'] };
}

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
  const { status, body } = await request(
    fetchImpl,
    `${httpBase}/v1/devices`,
    'POST',
    `Bearer ${register.apiKey}`,
    register.user === undefined ? {} : { user: register.user },
    (cause) => new RegistrationError('device registration request failed', undefined, { cause }),
  );
  // The server's `{error, message}` says why (wrong key, quota, bad alias): keep it in the text.
  const why = [body?.['error'], body?.['message']].filter((v) => typeof v === 'string').join(': ');
  const text = `device registration failed (HTTP ${status}${why ? ` ${why}` : ''})`;
  if (status === 401 || status === 403) throw new AuthError(text, { fatal: true });
  if (status !== 200 && status !== 201) {
    const fatal = status >= 400 && status < 500 && status !== 408 && status !== 429;
    throw new RegistrationError(text, status, { fatal });
  }
  return checkCredentials(body, status);
}

/** Checks the credentials a registration gave (the server's answer, or a custom register function's). */
export function checkCredentials(c: unknown, status?: number): Credentials {
  const o = c as Partial<Credentials> | undefined;
  if (typeof o?.deviceId !== 'string' || typeof o.token !== 'string' || !o.deviceId || !o.token) {
    throw new RegistrationError('registration gave no {deviceId, token}', status);
  }
  return { deviceId: o.deviceId, token: o.token };
}
