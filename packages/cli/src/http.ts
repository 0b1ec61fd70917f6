import { InvalidArgumentError } from 'commander';

/** A non-2xx answer of the Pushwire HTTP API. */
export class ApiError extends Error {
  override readonly name = 'ApiError';
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

/**
 * Checks a `--server` value: an http(s) URL. `127.0.0.1:8787` (no scheme) gets a message that says
 * what to write instead, rather than a confusing parse or fetch error.
 */
export function checkServerUrl(value: string, websocket = false): string {
  const v = value.trim();
  if (!(websocket ? /^(https?|wss?):\/\//i : /^https?:\/\//i).test(v)) {
    const hint = /^wss?:\/\//i.test(v)
      ? v.replace(/^ws/i, 'http')
      : `http://${v.replace(/^[a-z][a-z0-9+.-]*:\/\//i, '')}`;
    throw new InvalidArgumentError(
      `--server must start with http:// or https:// (got ${JSON.stringify(value)}); did you mean ${hint}?`,
    );
  }
  try {
    new URL(v);
  } catch {
    throw new InvalidArgumentError(`--server is not a valid URL: ${JSON.stringify(value)}`);
  }
  return v;
}

/** Calls the Pushwire HTTP API with JSON in and out; `apiKey` may also be a device credential `Device ID:TOKEN`. */
export async function api<T>(
  server: string,
  apiKey: string,
  method: string,
  path: string,
  body?: unknown,
): Promise<T> {
  const url = new URL(path, server.endsWith('/') ? server : `${server}/`);
  let res: Response;
  try {
    res = await fetch(url, {
      method,
      headers: {
        authorization: apiKey.startsWith('Device ') ? apiKey : `Bearer ${apiKey}`,
        ...(body !== undefined && { 'content-type': 'application/json' }),
      },
      ...(body !== undefined && { body: JSON.stringify(body) }),
    });
  } catch (err) {
    throw new ApiError(
      0,
      'UNREACHABLE',
      `cannot reach ${url.origin}: ${(err as Error & { cause?: Error }).cause?.message ?? String(err)}`,
    );
  }
  const text = await res.text();
  const json = text
    ? (JSON.parse(text) as T & { error?: string; message?: string })
    : ({} as T & { error?: string; message?: string });
  if (!res.ok)
    throw new ApiError(
      res.status,
      json.error ?? 'HTTP_ERROR',
      `${res.status} ${json.error ?? ''}: ${json.message ?? text}`,
    );
  return json;
}
