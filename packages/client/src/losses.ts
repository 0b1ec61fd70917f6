import type { ErrorFrame } from '@pushwire/protocol';
import { type BackoffOptions, backoffDelay, goawayDelay, type Random, rateLimitedDelay } from './backoff.js';
import {
  AuthError,
  ConfigError,
  ConnectionError,
  type PushwireError,
  RateLimitedError,
  TimeoutError,
  toPushwireError,
  VersionError,
} from './errors.js';
import type { SessionLoss } from './session.js';

/**
 * How a connection attempt or a session ended, and so what comes next: pure classification of
 * server error frames, socket endings and exceptions.
 */
export type Loss =
  | { kind: 'fatal'; error: PushwireError }
  | { kind: 'failure'; error: PushwireError }
  | { kind: 'rate-limited'; retryAfter: number | undefined; error: PushwireError }
  | { kind: 'goaway'; after: number };

/** Close codes of a socket that died rather than being closed: evidence for the heartbeat policy. */
const SILENT_CLOSES = new Set([1006, 4010]);

/** Whether a session's end says something about the path's idle timeout (a silent death). */
export function isSilentDeath(loss: SessionLoss): boolean {
  return loss.kind !== 'closed' || SILENT_CLOSES.has(loss.code);
}

/** A fatal `error` frame: UNAUTHORIZED and UNSUPPORTED_VERSION stop the client; others reconnect. */
export function lossOfErrorFrame(f: ErrorFrame): Loss {
  const text = `${f.code}: ${f.message}`;
  const opts = { serverCode: f.code, fatal: true };
  const fatal =
    f.code === 'UNAUTHORIZED' ? AuthError : f.code === 'UNSUPPORTED_VERSION' ? VersionError : undefined;
  if (fatal) return { kind: 'fatal', error: new fatal(text, opts) };
  opts.fatal = false;
  if (f.code === 'RATE_LIMITED') {
    return {
      kind: 'rate-limited',
      retryAfter: f.retryAfter,
      error: new RateLimitedError(text, f.retryAfter, opts),
    };
  }
  return { kind: 'failure', error: new ConnectionError(text, opts) };
}

/** The end of a socket: close code 4001 is fatal, 4029 is rate limiting, the rest reconnects. */
export function lossOfSession(loss: SessionLoss, pongTimeout: number): Loss {
  if (loss.kind === 'pong-timeout') {
    return { kind: 'failure', error: new TimeoutError(`no pong within ${pongTimeout} s`) };
  }
  if (loss.kind === 'error') {
    const detail = loss.error instanceof Error && loss.error.message ? `: ${loss.error.message}` : '';
    return {
      kind: 'failure',
      error: new ConnectionError(`the socket failed${detail}`, { cause: loss.error }),
    };
  }
  const opts = { closeCode: loss.code };
  const text = `the socket closed (${loss.code}${loss.reason ? ` ${loss.reason}` : ''})`;
  if (loss.code === 4001) return { kind: 'fatal', error: new AuthError(text, { ...opts, fatal: true }) };
  if (loss.code === 4029) {
    return {
      kind: 'rate-limited',
      retryAfter: undefined,
      error: new RateLimitedError(text, undefined, opts),
    };
  }
  return { kind: 'failure', error: new ConnectionError(text, opts) };
}

/** An exception thrown while connecting (storage, registration, transport). */
export function lossOfException(error: unknown): Loss {
  const e = toPushwireError(error, (cause) => new ConnectionError('connecting failed', { cause }));
  if (e.fatal) return { kind: 'fatal', error: e };
  if (e instanceof ConfigError)
    return { kind: 'fatal', error: new ConfigError(e.message, { cause: e, fatal: true }) };
  return { kind: 'failure', error: e };
}

/** Milliseconds to wait before reconnecting after a non-fatal loss at backoff attempt `attempt`. */
export function retryDelay(
  loss: Exclude<Loss, { kind: 'fatal' }>,
  attempt: number,
  backoff: BackoffOptions,
  random: Random,
): number {
  if (loss.kind === 'goaway') return goawayDelay(loss.after, random);
  if (loss.kind === 'rate-limited') return rateLimitedDelay(loss.retryAfter ?? 0, attempt, backoff, random);
  return backoffDelay(attempt, backoff, random);
}
