import type { ErrorCode } from '@pushwire/protocol';

/**
 * Stable codes of the SDK's errors. One class per condition; `code` never changes meaning.
 *
 * | code | class | when |
 * |---|---|---|
 * | `ERR_CONFIG` | {@link ConfigError} | invalid options (thrown by `createClient`) or no way to get credentials |
 * | `ERR_CONNECTION` | {@link ConnectionError} | the socket failed or closed, or the server ended the session with a fatal error |
 * | `ERR_TIMEOUT` | {@link TimeoutError} | no pong within the pong deadline, or no `welcome` within the connect deadline |
 * | `ERR_PROTOCOL` | {@link ProtocolViolationError} | the server sent a frame the codec refuses, or refused one of ours |
 * | `ERR_UNSUPPORTED_VERSION` | {@link VersionError} | the server does not speak protocol version 1 (fatal) |
 * | `ERR_AUTH` | {@link AuthError} | wrong device or token, or registration refused (fatal) |
 * | `ERR_RATE_LIMITED` | {@link RateLimitedError} | admission control; the client waits `retryAfter` ms |
 * | `ERR_REQUEST` | {@link RequestError} | the server refused a subscribe/unsubscribe ({@link ForbiddenError} for a topic the device may not follow) |
 * | `ERR_CLOSED` | {@link ClosedError} | the client was closed while a request was pending |
 * | `ERR_STORAGE` | {@link StorageError} | the state store failed to load or save |
 * | `ERR_REGISTRATION` | {@link RegistrationError} | device registration over HTTP failed |
 * | `ERR_LISTENER` | {@link ListenerError} | an event listener threw |
 * | `ERR_WEBPUSH` | {@link WebPushError} | a Web Push subscribe/unsubscribe failed, or a Web Push message could not be decrypted |
 * | `ERR_INTERNAL` | {@link PushwireError} | a bug in the SDK (an impossible state transition) |
 */
export type PushwireErrorCode =
  | 'ERR_CONFIG'
  | 'ERR_CONNECTION'
  | 'ERR_TIMEOUT'
  | 'ERR_PROTOCOL'
  | 'ERR_UNSUPPORTED_VERSION'
  | 'ERR_AUTH'
  | 'ERR_RATE_LIMITED'
  | 'ERR_REQUEST'
  | 'ERR_CLOSED'
  | 'ERR_STORAGE'
  | 'ERR_REGISTRATION'
  | 'ERR_LISTENER'
  | 'ERR_WEBPUSH'
  | 'ERR_INTERNAL';

/** Details an error may carry besides its message. */
export interface PushwireErrorOptions {
  cause?: unknown;
  /** Code of the server's `error` frame behind this error. */
  serverCode?: ErrorCode;
  /** WebSocket close code behind this error. */
  closeCode?: number;
  /** True when the client stopped (went to `closed`) because of this error. */
  fatal?: boolean;
}

/** Base class of every error the SDK emits or throws. */
export class PushwireError extends Error {
  override name = 'PushwireError';
  /** Code of the server's `error` frame behind this error, if any. */
  readonly serverCode?: ErrorCode;
  /** WebSocket close code behind this error, if any. */
  readonly closeCode?: number;
  /** True when the client stopped because of this error: it will not reconnect by itself. */
  readonly fatal: boolean;

  constructor(
    /** Stable code; see {@link PushwireErrorCode}. */
    readonly code: PushwireErrorCode,
    message: string,
    options: PushwireErrorOptions = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.serverCode = options.serverCode;
    this.closeCode = options.closeCode;
    this.fatal = options.fatal ?? false;
  }
}

/** Invalid options, or no credentials and no way to register. */
export class ConfigError extends PushwireError {
  override name = 'ConfigError';
  constructor(message: string, options?: PushwireErrorOptions) {
    super('ERR_CONFIG', message, options);
  }
}

/** The socket failed or closed, or the server ended the session; the client reconnects. */
export class ConnectionError extends PushwireError {
  override name = 'ConnectionError';
  constructor(message: string, options?: PushwireErrorOptions) {
    super('ERR_CONNECTION', message, options);
  }
}

/** A deadline passed: no pong after a ping, or no `welcome` after connecting. */
export class TimeoutError extends PushwireError {
  override name = 'TimeoutError';
  constructor(message: string, options?: PushwireErrorOptions) {
    super('ERR_TIMEOUT', message, options);
  }
}

/** The server sent a frame the codec refuses, or refused a frame of ours (`BAD_FRAME`, …). */
export class ProtocolViolationError extends PushwireError {
  override name = 'ProtocolViolationError';
  constructor(message: string, options?: PushwireErrorOptions) {
    super('ERR_PROTOCOL', message, options);
  }
}

/** The server does not support protocol version 1. Fatal. */
export class VersionError extends PushwireError {
  override name = 'VersionError';
  constructor(message: string, options?: PushwireErrorOptions) {
    super('ERR_UNSUPPORTED_VERSION', message, options);
  }
}

/** Unknown device or wrong token (`UNAUTHORIZED`, close code 4001), or registration refused. Fatal. */
export class AuthError extends PushwireError {
  override name = 'AuthError';
  constructor(message: string, options?: PushwireErrorOptions) {
    super('ERR_AUTH', message, options);
  }
}

/** The server's admission control refused the session; the client waits `retryAfter` ms. */
export class RateLimitedError extends PushwireError {
  override name = 'RateLimitedError';
  constructor(
    message: string,
    /** Milliseconds the server asked the client to wait, if it said. */
    readonly retryAfter: number | undefined,
    options?: PushwireErrorOptions,
  ) {
    super('ERR_RATE_LIMITED', message, options);
  }
}

/** The server refused a subscribe or unsubscribe (`serverCode` says why, e.g. `BAD_TOPIC`). */
export class RequestError extends PushwireError {
  override name = 'RequestError';
  constructor(message: string, options?: PushwireErrorOptions) {
    super('ERR_REQUEST', message, options);
  }
}

/**
 * The server refused a subscription the device is not allowed (`FORBIDDEN`: the topic matches none
 * of the patterns of the key that registered the device). Not fatal: the session goes on.
 */
export class ForbiddenError extends RequestError {
  override name = 'ForbiddenError';
}

/** The client is closed (or was closed while the request waited). */
export class ClosedError extends PushwireError {
  override name = 'ClosedError';
  constructor(message = 'the client is closed', options?: PushwireErrorOptions) {
    super('ERR_CLOSED', message, options);
  }
}

/** The state store failed to load or save. */
export class StorageError extends PushwireError {
  override name = 'StorageError';
  constructor(message: string, options?: PushwireErrorOptions) {
    super('ERR_STORAGE', message, options);
  }
}

/** Registering the device over HTTP failed (network error, or an unexpected answer). */
export class RegistrationError extends PushwireError {
  override name = 'RegistrationError';
  constructor(
    message: string,
    /** HTTP status of the answer, if one came. */
    readonly status: number | undefined,
    options?: PushwireErrorOptions,
  ) {
    super('ERR_REGISTRATION', message, options);
  }
}

/** An event listener threw; the error it threw is the `cause`. The client carries on. */
export class ListenerError extends PushwireError {
  override name = 'ListenerError';
  constructor(event: string, cause: unknown) {
    super('ERR_LISTENER', `a "${event}" listener threw`, { cause });
  }
}

/**
 * Why a {@link WebPushError} happened:
 * - `BAD_APPLICATION_SERVER_KEY`: the key is not a base64url (or binary) uncompressed P-256 point;
 * - `KEY_MISMATCH`: already subscribed with another `applicationServerKey` (unsubscribe first);
 * - `SUBSCRIBE_FAILED` / `UNSUBSCRIBE_FAILED`: the HTTP request failed (`status`, `serverError`);
 * - `NO_SUBSCRIPTION`: a Web Push message for a subscription whose keys this client does not hold;
 * - `DECRYPT_FAILED`: the payload does not decrypt with the stored keys (`cause` says why);
 * - `UNSUPPORTED`: no WebCrypto (`globalThis.crypto.subtle`) here.
 */
export type WebPushErrorReason =
  | 'BAD_APPLICATION_SERVER_KEY'
  | 'KEY_MISMATCH'
  | 'SUBSCRIBE_FAILED'
  | 'UNSUBSCRIBE_FAILED'
  | 'NO_SUBSCRIPTION'
  | 'DECRYPT_FAILED'
  | 'UNSUPPORTED';

/**
 * Web Push went wrong: `pushSubscribe`/`pushUnsubscribe` reject with it; a message that cannot be
 * decrypted is emitted as one (with its `messageId`) and skipped — acknowledged, not handed over.
 */
export class WebPushError extends PushwireError {
  override name = 'WebPushError';
  /** HTTP status of the server's answer, if one came. */
  readonly status?: number;
  /** The server's error code (`error` of its JSON body), if it gave one. */
  readonly serverError?: string;
  /** Id of the message that could not be decrypted. */
  readonly messageId?: string;

  constructor(
    readonly reason: WebPushErrorReason,
    message: string,
    options: PushwireErrorOptions & { status?: number; serverError?: string; messageId?: string } = {},
  ) {
    super('ERR_WEBPUSH', message, options);
    this.status = options.status;
    this.serverError = options.serverError;
    this.messageId = options.messageId;
  }

  /** True when trying again later may help: a request that failed on the network, 408, 429 or 5xx. */
  get retryable(): boolean {
    if (this.reason !== 'SUBSCRIBE_FAILED' && this.reason !== 'UNSUBSCRIBE_FAILED') return false;
    const s = this.status;
    return s === undefined || s === 408 || s === 429 || s >= 500;
  }
}

/** Wraps anything thrown into a {@link PushwireError}, keeping PushwireErrors as they are. */
export function toPushwireError(error: unknown, wrap: (cause: unknown) => PushwireError): PushwireError {
  return error instanceof PushwireError ? error : wrap(error);
}
